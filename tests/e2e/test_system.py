"""System-wide mode: processes that start later are picked up, and those that exit
leave no state behind in the BPF maps."""
import json
import subprocess
import tempfile
import time

from harness import TOOL, check, check_eq, reports, workload

SHORT_LIVED = 300


def map_tgids(name, key_bytes):
    """The tgids (first 4 bytes of each key) in one of our BPF maps."""
    out = subprocess.run(["bpftool", "-j", "map", "dump", "name", name], capture_output=True,
                         text=True, timeout=60).stdout
    tgids = set()
    for entry in json.loads(out or "[]"):
        key = entry["key"]
        if isinstance(key, list) and len(key) == key_bytes:
            tgids.add(int("".join(b[2:] for b in reversed(key[:4])), 16))
        elif isinstance(key, dict):  # with BTF, bpftool shows the key's fields
            tgids.add(key.get("tgid", key))
        elif isinstance(key, int):
            tgids.add(key)
    return tgids


def test_late_processes_picked_up_and_exited_ones_forgotten():
    # Reports go to a file: a pipe nobody reads would fill and stall the tool.
    out_file = tempfile.TemporaryFile(mode="w+")
    tool = subprocess.Popen([TOOL, "--json", "0.5"], stdout=out_file, stderr=subprocess.PIPE,
                            text=True)
    try:
        check("tracing" in tool.stderr.readline(), "tool did not attach")
        started = []
        for _ in range(SHORT_LIVED):
            p = subprocess.Popen([workload("attach_target")], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            p.communicate("\n\n", timeout=30)
            started.append(p.pid)
        time.sleep(2.5)  # a few reports: each exited process reported once, then forgotten
        left = {"procs": map_tgids("procs", 4) & set(started),
                "stack_counts": map_tgids("stack_counts", 16) & set(started),
                "allocs": map_tgids("allocs", 16) & set(started)}
    finally:
        tool.send_signal(2)
        _, err = tool.communicate(timeout=60)
        out_file.seek(0)
        out = out_file.read()
    check_eq(tool.returncode, 0, "exit status: " + err[-500:])
    seen = {p["pid"] for r in reports(out) for p in r["processes"]}
    check(len(seen & set(started)) >= SHORT_LIVED * 0.9,
          "only %d of %d started processes reported" % (len(seen & set(started)),
                                                         SHORT_LIVED))
    leaks = [p for r in reports(out) for p in r["processes"]
             if p["pid"] in started and not p["alive"]]
    check(all(p["heap"]["outstanding_bytes"] == 3584 for p in leaks[:50]),
          "exited processes' leaks: %r" % [p["heap"] for p in leaks[:3]])
    check_eq({k: len(v) for k, v in left.items()}, {"procs": 0, "stack_counts": 0, "allocs": 0},
             "map entries left by exited processes")
