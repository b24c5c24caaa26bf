"""System-wide mode: processes that start later are picked up, and those that exit
leave no state behind in the BPF maps, user heap and kernel alike."""
import json
import os
import struct
import subprocess
import tempfile
import time

from harness import ROOT, TOOL, check, check_eq, reports, wait_attached, workload

SHORT_LIVED = 2000


def bpftool(*args):
    out = subprocess.run(["bpftool", "-j"] + list(args), capture_output=True, text=True,
                         timeout=120).stdout
    return json.loads(out or "[]")


def entries_owned(name, pids):
    """Entries of our maps called name (in the heap and the kernel object) owned by pids:
    a live block's owner is in its slot, every other map's in its key."""
    found = 0
    for m in bpftool("map", "show"):
        if m.get("name") != name:
            continue
        if name == "blocks":  # an array of slots: read by the helper
            out = subprocess.run([os.path.join(ROOT, "build", "live_blocks"), str(m["id"])],
                                 capture_output=True, text=True, check=True).stdout
            found += sum(int(owner) in pids for owner in out.split())
            continue
        for e in bpftool("map", "dump", "id", str(m["id"])):
            field = e.get("key")
            if not isinstance(field, list):
                continue  # deleted while bpftool walked the map
            raw = bytes(int(b, 16) for b in field)
            owner = struct.unpack_from("<I", raw, 0)[0]
            found += owner in pids
    return found


def system_wide(args, work):
    """memleak-bpf ARGS (reports to a file: a pipe nobody reads would fill
    and stall the tool) while work() runs; stopped with SIGINT, it must exit
    0. Returns (its reports, its stderr, what work returned)."""
    out_file = tempfile.TemporaryFile(mode="w+")
    tool = subprocess.Popen([TOOL] + args, stdout=out_file, stderr=subprocess.PIPE, text=True)
    try:
        wait_attached(tool)
        got = work(tool)
    finally:
        tool.send_signal(2)
        _, err = tool.communicate(timeout=60)
        out_file.seek(0)
    check_eq(tool.returncode, 0, "exit status: " + err[-500:])
    return reports(out_file.read()), err, got


def test_late_processes_picked_up_and_exited_ones_forgotten():
    def work(tool):
        started = []
        for _ in range(SHORT_LIVED):
            p = subprocess.Popen([workload("short_lived")])
            p.wait(timeout=30)
            started.append(p.pid)
        # Each exited process is reported once, then forgotten: the tool may be
        # some reports behind the spawning, so wait for it (a bounded time).
        pids = set(started)
        deadline = time.time() + 60
        while True:
            time.sleep(2.5)
            left = {name: entries_owned(name, pids)
                    for name in ("procs", "ended", "stack_counts", "blocks")}
            if not any(left.values()) or time.time() > deadline:
                return pids, left
    rs, err, (pids, left) = system_wide(["--all-stacks", "-k", "--json", "0.5"], work)
    seen = {p["pid"] for r in rs for p in r["processes"]}
    check(len(seen & pids) >= SHORT_LIVED * 0.9,
          "only %d of %d started processes reported" % (len(seen & pids), SHORT_LIVED))
    leaks = [p for r in rs for p in r["processes"] if p["pid"] in pids and not p["alive"]]
    check(all(p["heap"]["outstanding_bytes"] == 3584 for p in leaks[:50]),  # 7 x 512
          "exited processes' leaks: %r" % [p["heap"] for p in leaks[:3]])
    names = {p["comm"] for p in leaks}
    check_eq(names, {"short_lived"}, "names of the short-lived processes once exited")
    check(any(p["kernel_allocs"] > 0 for p in leaks), "no kernel allocations counted to them")
    check_eq(left, {"procs": 0, "ended": 0, "stack_counts": 0, "blocks": 0},
             "map entries left by exited processes")


STACK_PROCS = 60  # x 2,048 distinct stacks each: 3.75 times the stacks table
STACKS_TABLE = 32768


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])


def test_stack_table_reclaimed_as_processes_come_and_go():
    def work(tool):
        pids, rss = [], []
        for i in range(STACK_PROCS):
            # The first stays 1 s: its program's unwind table is built from a
            # live process's maps, and one that lives 10 ms is caught alive
            # only now and then (the cheaper the walks, the shorter its life).
            p = subprocess.Popen([workload("many_stacks")] + (["1"] if i == 0 else []))
            p.wait(timeout=30)
            pids.append(p.pid)
            time.sleep(0.5)
            if i in (STACK_PROCS // 3, STACK_PROCS - 1):
                rss.append(rss_kib(tool.pid))
        time.sleep(4)  # the last ones reported, forgotten, their stacks swept
        return pids, rss
    rs, err, (pids, rss) = system_wide(["--all-stacks", "--json", "0.5"], work)
    last = rs[-1]
    check(last["dropped"]["stacks"] == 0,
          "allocations that lost their stack: %r, %r" % (last["dropped"], last["stack_table"]))
    # A process that ran and ended between two samples before the program's
    # unwind table was built (it is built from a live process's maps) has
    # its stacks cut at the first frame (no_table): all but 2,048 distinct
    # stacks from each of the others passed through the table. (Without the
    # first one's second: 24 to 34 of 60 cut, with this session's walks.)
    cut = {p["pid"] for r in rs for p in r["processes"] if p["pid"] in set(pids)
           for st in p["stacks"] if st.get("truncated") == "no_table"}
    whole = STACK_PROCS - len(cut)
    check(whole >= STACK_PROCS // 2, "processes with whole stacks: %d" % whole)
    check(last["stack_table"]["reclaimed"] >= whole * 2048 - STACKS_TABLE,
          "stacks reclaimed: %r, %d processes with whole stacks" % (last["stack_table"], whole))
    check(last["stack_table"]["entries"] < STACKS_TABLE // 4,
          "stacks left once they exited: %r" % last["stack_table"])
    seen = {p["pid"]: p for r in rs for p in r["processes"] if p["pid"] in set(pids)}
    check_eq(len(seen), STACK_PROCS, "many_stacks processes reported")
    check_eq({p["comm"] for p in seen.values()}, {"many_stacks"}, "their names")
    check(all(p["heap"]["outstanding_bytes"] == 100 for p in seen.values()),
          "their leaks: %r" % [p["heap"] for p in list(seen.values())[:3]])
    check(rss[1] <= rss[0] + 16 * 1024, "tool RSS grew from %d to %d KiB" % tuple(rss))


def check_pid_reused(args):
    """pid_reuse under --all-stacks: the first process, which exited holding
    100 blocks, and the second, under the same pid within one sample, are
    each reported with their own blocks."""
    def work(tool):
        p = subprocess.run([workload("pid_reuse")] + args, capture_output=True, text=True,
                           timeout=120)
        time.sleep(2.5)  # a report after the second has exited
        return p
    rs, err, p = system_wide(["--all-stacks", "--json", "-T", "20", "1"], work)
    words = p.stdout.split()
    check(len(words) == 4 and words[1] == words[3], "the pid was not reused: %r" % p.stdout)
    pid = int(words[1])
    seen = [(q["alive"], q["heap"]["outstanding_allocs"], sorted(
        (s["frames"][0]["symbol"], s["outstanding_allocs"]) for s in q["stacks"]
        if s["frames"] and s["frames"][0]["symbol"])) for r in rs
        for q in r["processes"] if q["pid"] == pid]
    first = [s for s in seen if s[1] == 100]
    second = [s for s in seen if dict(s[2]).get("leak_in_second") == 50
              and "leak_in_first" not in dict(s[2])]
    check(first and not first[0][0], "the first process's 100 blocks, once exited: %r" % seen)
    check(second, "the second's 50 blocks alone: %r" % seen)
    check(all(s[1] in (100, 50) for s in seen), "blocks counted together: %r" % seen)


def test_pid_reused_within_a_sample_fork():
    check_pid_reused([])


def test_pid_reused_within_a_sample_exec():
    check_pid_reused(["exec"])
