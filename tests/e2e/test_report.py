"""Reports that parse and add up: --output keeps a command's stdout its own,
and each process's stacks, the stacks beyond -T and the blocks without a
stack sum to its heap exactly."""
import json
import os
import subprocess
import tempfile
import time

from harness import (TOOL, check, check_eq, final_process, reports, run_tool, wait_attached,
                     workload)


def adds_up(proc, what):
    """The listed heap stacks + stacks_rest + no_stack == heap, exactly."""
    heap = proc["heap"]
    listed = [s for s in proc["stacks"] if not s["kernel"]]
    got = (sum(s["outstanding_bytes"] for s in listed) + proc["stacks_rest"]["outstanding_bytes"]
           + proc["no_stack"]["outstanding_bytes"],
           sum(s["outstanding_allocs"] for s in listed) + proc["stacks_rest"]["outstanding_allocs"]
           + proc["no_stack"]["outstanding_allocs"])
    check_eq(got, (heap["outstanding_bytes"], heap["outstanding_allocs"]),
             "%s: stacks + rest + no stack (bytes, blocks) against the heap" % what)


def test_output_file_keeps_the_commands_stdout():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "reports.json")
        status, out, err = run_tool(["--json", "--output", path, "--",
                                     workload("cxx_template")])
        check_eq(status, 0, "exit status (stderr: %s)" % err.strip())
        check_eq(out, "5 items\n", "stdout: the command's own")
        with open(path) as f:
            rs = reports(f.read())
        check(rs and rs[-1]["final"], "no final report in the --output file")
        text = os.path.join(d, "reports.txt")
        status, out, err = run_tool(["--output", text, "--", workload("cxx_template")])
        check_eq((status, out), (0, "5 items\n"), "text: status and stdout")
        with open(text) as f:
            check("final report" in f.read(), "no final text report in the --output file")
    # Without --output the command shares stdout: each report is one line
    # starting {"type":"report" (as the README says), the command's lines are its own.
    status, out, err = run_tool(["--json", "--", workload("cxx_template")])
    lines = out.splitlines()
    check_eq([l for l in lines if not l.startswith('{"type":"report"')], ["5 items"],
             "stdout lines that are not reports")


def test_heap_adds_up_with_top_and_sampling():
    # deep_nofp: 6 blocks on 4 stacks; -T 2 leaves 2 stacks out; -s 2 records
    # about half of them without a stack. Exact at the final report (it exited).
    for extra in (["-T", "2"], ["-T", "2", "-s", "2"], ["-T", "50"]):
        status, out, err = run_tool(["--json"] + extra + ["--", workload("deep_nofp")])
        check_eq(status, 0, "exit status (stderr: %s)" % err.strip())
        proc = reports(out)[-1]["processes"][0]
        check_eq(proc["heap"]["outstanding_bytes"], 4966, "heap %r" % extra)
        adds_up(proc, " ".join(extra))
        if extra == ["-T", "2"]:
            check_eq((len(proc["stacks"]), proc["stacks_rest"]["stacks"]), (2, 2),
                     "(stacks listed, beyond -T)")
    status, out, err = run_tool(["-T", "2", "-s", "1000", "--", workload("deep_nofp")])
    check("more stacks (-T shows more)" in out or "with no stack recorded" in out,
          "the text report does not show the rest of the heap:\n" + out)


def test_every_process_adds_up_system_wide():
    tool = subprocess.Popen([TOOL, "--all-stacks", "--json", "-T", "3", "-s", "3", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_attached(tool)
        pids = []
        for name in ("deep_nofp", "leaky_all", "cxx_template", "deep_fp"):
            p = subprocess.Popen([workload(name)], stdout=subprocess.DEVNULL)
            p.wait(timeout=60)
            pids.append(p.pid)
        time.sleep(2.5)
    finally:
        tool.send_signal(2)
        out, err = tool.communicate(timeout=60)
    check_eq(tool.returncode, 0, "exit status: " + err[-500:])
    seen = {}
    for r in reports(out):
        for proc in r["processes"]:
            if proc["pid"] in pids and not proc["alive"]:
                adds_up(proc, "pid %d (%s) report %d" % (proc["pid"], proc["comm"], r["seq"]))
                seen[proc["pid"]] = proc
    check_eq(sorted(seen), sorted(pids), "exited workloads reported")


def test_oldest_age_follows_the_blocks():
    """The oldest block of a stack, as BPF's counts know it, then (its oldest
    freed) as a walk of the live blocks finds it, as the block a walk found
    stays live, and at the exit: each report's birth of the oldest block
    (elapsed_s - oldest_age_s) is the allocation time of the right one."""
    status, out, err = run_tool(["--json", "0.25", "--", workload("oldest")])
    check_eq(status, 0, "exit status (stderr: %s)" % err.strip())
    rs = reports(out)
    # Blocks of 100, 200, 400, 800 B taken 1 s apart, then A, C, B freed 1 s apart:
    # the stack's outstanding bytes say which block is the oldest.
    oldest = {100: "A", 300: "A", 700: "A", 1500: "A", 1400: "B", 1000: "B", 800: "D"}
    after_a = {"A": 0.0, "B": 1.0, "D": 3.0}
    held = []  # (outstanding bytes, birth of the oldest), report by report
    for r in rs:
        for p in r["processes"]:
            for s in p["stacks"]:
                if s["frames"] and s["frames"][0]["symbol"] == "hold":
                    check(s["outstanding_bytes"] in oldest,
                          "hold's stack holds %d B" % s["outstanding_bytes"])
                    held.append((s["outstanding_bytes"], r["elapsed_s"] - s["oldest_age_s"]))
    check_eq(sorted({b for b, _ in held}), sorted(oldest),
             "the stack's outstanding bytes over the reports")
    a = held[0][1]
    for i, (b, born) in enumerate(held):
        names = {oldest[b]}
        # The counts are read, then the oldest block looked for: a block freed
        # in between gives the last report of a state the next state's oldest.
        if i + 1 < len(held) and held[i + 1][0] != b:
            names.add(oldest[held[i + 1][0]])
        check(any(after_a[n] - 0.02 <= born - a <= after_a[n] + 0.3 for n in names),
              "holding %d B, the oldest block (%s) was born %.3f s after A" % (
                  b, "/".join(sorted(names)), born - a))
    last = [s for s in rs[-1]["processes"][0]["stacks"] if s["frames"][0]["symbol"] == "hold"]
    check_eq([s["outstanding_bytes"] for s in last], [800], "the final report: D leaked")


def test_max_stacks_sizes_the_table():
    """2,048 stacks that each keep a block, in a table of 1,024: the stacks
    that did not fit are counted in dropped and no_stack, and the heap adds up."""
    status, out, err = run_tool(["--json", "--max-stacks", "1024", "-T", "5000", "--",
                                 workload("many_stacks"), "0", "32", "keep"])
    check_eq(status, 0, "exit status: " + err)
    last = reports(out)[-1]
    proc = final_process(out)
    holding = [s for s in proc["stacks"] if s["outstanding_allocs"]]
    check(0 < len(holding) <= 1024, "%d stacks listed from a table of 1,024" % len(holding))
    check(last["dropped"]["stacks"] >= 2048 - 1024, "dropped stacks: %r" % last["dropped"])
    check(proc["no_stack"]["outstanding_allocs"] >= 2048 - len(holding),
          "blocks without a stack: %r" % proc["no_stack"])
    adds_up(proc, "a full stack table")
