"""Reachability scans: every block a traced process holds, in valgrind's leak
kinds (lost, indirect, possible, reachable), at a launched command's exit and
live (-p, SIGUSR1); valgrind on the same binary is the oracle."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from harness import (TOOL, Lines, check, check_eq, final_process, reports, run_tool,
                     traced_redis, wait_attached, wait_for_redis, workload)
from test_profiles import pprof_top

KINDS = ("lost", "indirect", "possible", "reachable")
VG_KINDS = {"definitely lost": "lost", "indirectly lost": "indirect",
            "possibly lost": "possible", "still reachable": "reachable"}
RECORD = re.compile(r"([\d,]+)(?: \(([\d,]+) direct, [\d,]+ indirect\))? bytes in ([\d,]+) "
                    r"blocks are (definitely lost|indirectly lost|possibly lost|still reachable)"
                    r" in loss record")
FRAME = re.compile(r"(?:at|by) 0x[0-9A-Fa-f]+: (\S+)")
KINDS_WORKLOAD = workload("reach_kinds")
# What reach_kinds leaves, by allocating function and kind (bytes).
EXPECTED = {
    "drop_pointers": {"lost": 400},
    "keep_in_global": {"reachable": 200},
    "keep_in_tls": {"reachable": 300},
    "keep_middle": {"possible": 400},
    "tree_root": {"lost": 500},
    "tree_child": {"indirect": 192},
    "cycle_node": {"lost": 48, "indirect": 48},
    "keep_on_stack": {"reachable": 700},
}


def kinds_of(d):
    return {k: d.get(k, 0) for k in KINDS}


def valgrind_kinds(argv, extra=()):
    """{allocating function: {kind: bytes}} from valgrind's loss records: the
    first frame past its allocator replacement."""
    p = subprocess.run(["valgrind", "--leak-check=full", "--show-leak-kinds=all",
                        "--run-libc-freeres=no", "--run-cxx-freeres=no", "--num-callers=4"]
                       + list(extra) + argv, capture_output=True, text=True, timeout=600)
    return parse_valgrind(p.stderr)


def parse_valgrind(text):
    out, lines = {}, text.splitlines()
    for i, line in enumerate(lines):
        m = RECORD.search(line)
        if not m:
            continue
        fn = None
        for f in lines[i + 1:i + 30]:
            fm = FRAME.search(f)
            if not fm:
                break
            if "vgpreload" not in f:
                fn = fm.group(1)
                break
        d = out.setdefault(fn, kinds_of({}))
        d[VG_KINDS[m.group(4)]] += int((m.group(2) or m.group(1)).replace(",", ""))
    check(out, "valgrind printed no loss record:\n" + text[-2000:])
    return out


def our_kinds(proc):
    """{allocating function: {kind: bytes}} of a scanned process; checks that
    each stack's kinds add up to what it holds, and the stacks to the scan's."""
    out, total = {}, kinds_of({})
    check("scan" in proc, "pid %d has no scan" % proc["pid"])
    for s in proc["stacks"]:
        fn = s["frames"][0]["symbol"] if s["frames"] else None
        d = out.setdefault(fn, kinds_of({}))
        for k in KINDS:
            d[k] += s[k + "_bytes"]
            total[k] += s[k + "_bytes"]
        check_eq(sum(s[k + "_bytes"] for k in KINDS), s["outstanding_bytes"],
                 "a stack's kinds against its bytes (%s)" % fn)
        check_eq(sum(s[k + "_allocs"] for k in KINDS), s["outstanding_allocs"],
                 "a stack's kinds against its blocks (%s)" % fn)
    if not proc["stacks_rest"]["stacks"]:
        check_eq(total, {k: proc["scan"][k + "_bytes"] for k in KINDS},
                 "the stacks' kinds against the scan's")
    return out


def same_names(kinds):
    """Function names as either side may spell one symbol: strdup and
    __strdup, f and f.localalias; no name (a stripped binary) and ???."""
    out = {}
    for fn, d in kinds.items():
        name = "?" if fn in (None, "???") else fn.split(".")[0].lstrip("_")
        acc = out.setdefault(name, kinds_of({}))
        for k in KINDS:
            acc[k] += d[k]
    return out


def check_against(ours, theirs, functions, what):
    """Per function: lost and indirect together (which block of a lost cycle
    leads it depends on addresses), possible and reachable each."""
    for fn in functions:
        a, b = kinds_of(ours.get(fn, {})), kinds_of(theirs.get(fn, {}))
        check_eq((a["lost"] + a["indirect"], a["possible"], a["reachable"]),
                 (b["lost"] + b["indirect"], b["possible"], b["reachable"]),
                 "%s: %s (lost+indirect, possible, reachable)" % (what, fn))


def check_expected(ours, expected):
    for fn, want in expected.items():
        got = kinds_of(ours.get(fn, {}))
        if fn == "cycle_node":  # one leads the cycle: lost; the other indirect
            check_eq((got["lost"], got["indirect"]), (48, 48), "the lost cycle's kinds")
            continue
        check_eq(got, kinds_of(want), "kinds of %s's blocks" % fn)


def test_exit_scan_equals_valgrind_per_function():
    """And go tool pprof's lost_space names what is unreachable, by function."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "heap.pb.gz")
        status, out, err = run_tool(["--json", "--pprof", path, "-T", "50", "60", "--",
                                     KINDS_WORKLOAD])
        check_eq(status, 0, "exit status (stderr: %s)" % err[-300:])
        flat, total, _ = pprof_top(path, "lost_space", "B")
    ours = our_kinds(final_process(out))
    check_expected(ours, EXPECTED)
    check_against(ours, valgrind_kinds([KINDS_WORKLOAD]), EXPECTED, "against valgrind")
    flat = {fn: n for fn, n in flat.items() if n}
    check_eq((flat, total), ({"tree_root": 500, "drop_pointers": 400, "tree_child": 192,
                              "cycle_node": 96}, 1188), "go tool pprof's lost_space")


def test_fail_on_leak_from_the_scan():
    """A program that drops its pointers and exits at once fails, 3 runs of 3;
    one that keeps them all passes; without a scan, nothing proves a leak."""
    for run in range(3):
        status, out, err = run_tool(["--fail-on-leak", "--", KINDS_WORKLOAD])
        check_eq(status, 3, "run %d: status with lost blocks (stderr: %s)" % (run, err[-300:]))
        check("LOST 1.2 KiB" in out, "no LOST in the headline:\n" + out[:600])
        check("lost 400 B in 4" in out, "no lost figure on drop_pointers' stack")
    status, out, err = run_tool(["--fail-on-leak", "--json", "--", KINDS_WORKLOAD, "kept"])
    check_eq(status, 0, "status when every block is reachable (stderr: %s)" % err[-300:])
    scan = final_process(out)["scan"]
    check_eq((scan["lost_bytes"], scan["indirect_bytes"], scan["reachable_bytes"]), (0, 0, 1200),
             "the kept run's scan")
    status, out, err = run_tool(["--fail-on-leak", "--no-scan", "--json", "--", KINDS_WORKLOAD])
    check_eq(status, 0, "status with --no-scan (stderr: %s)" % err[-300:])
    check("scan" not in final_process(out), "--no-scan scanned")


def test_a_shell_that_execs_is_scanned_as_the_program_it_became():
    """A shell that allocates and then execs the program (a test wrapper's
    way) is scanned as the program run alone: the shell's blocks went with
    its memory. They used to be called lost, and failed the kept run."""
    script = 'for i in {1..300}; do a[$i]=$i; done; exec "$0" "$@"'
    scans = []
    for argv in ([KINDS_WORKLOAD, "kept"], ["/bin/bash", "-c", script, KINDS_WORKLOAD, "kept"]):
        status, out, err = run_tool(["--fail-on-leak", "--json", "--"] + argv)
        check_eq(status, 0, "%s: status, every block reachable (stderr: %s)" % (argv[0],
                                                                                 err[-300:]))
        scans.append([final_process(out)["scan"][k + "_bytes"] for k in KINDS])
    check_eq(scans[0][0:2] + scans[0][3:], [0, 0, 1200], "the kept run's lost, indirect, reachable")
    check_eq(scans[1], scans[0], "the scan after the exec against the program's alone")
    status, out, err = run_tool(["--json", "-T", "50", "--", "/bin/bash", "-c", script,
                                 KINDS_WORKLOAD])
    check_eq(status, 0, "exit status (stderr: %s)" % err[-300:])
    check_expected(our_kinds(final_process(out)), EXPECTED)


def say(p, text="\n"):
    p.stdin.write(text)
    p.stdin.flush()


def kill_all(*procs):
    for p in procs:
        if p and p.poll() is None:
            p.kill()


def attached_and_set(argv, tool_args, tool_stdout=subprocess.PIPE):
    """argv (a program that sets up after a line on stdin and says "set")
    with the tracer attached (-p) before it sets up; then a scan is asked
    for (SIGUSR1). Returns both, running."""
    prog = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    tool = subprocess.Popen([TOOL] + tool_args + ["-p", str(prog.pid)], stdout=tool_stdout,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_attached(tool)
        say(prog)
        check_eq(prog.stdout.readline(), "set\n", "the program's first line")
        tool.send_signal(signal.SIGUSR1)
    except Exception:
        kill_all(prog, tool)
        raise
    return prog, tool


def test_live_scan_on_sigusr1_equals_the_exit_scan():
    """-p, then SIGUSR1: the same kinds as valgrind at exit, and a register's
    block reachable; the program goes on and ends as it would."""
    prog, tool = attached_and_set([KINDS_WORKLOAD, "live"], ["--json", "-T", "50", "1"])
    try:
        line = Lines(tool.stdout).wait_for('"scan"', 30)
        say(prog)
        check_eq(prog.stdout.read(), "done\n", "the program's output after the scan")
        check_eq(prog.wait(timeout=30), 0, "the program's exit status")
        check_eq(tool.wait(timeout=30), 0, "the tracer's exit status")
    finally:
        kill_all(prog, tool)
    proc = [p for p in reports(line)[0]["processes"] if p["pid"] == prog.pid][0]
    ours = our_kinds(proc)
    check_expected(ours, dict(EXPECTED, hold_in_register={"reachable": 900}))
    check_against(ours, valgrind_kinds([KINDS_WORKLOAD]), EXPECTED, "live against valgrind")


def test_live_scan_of_a_launched_command():
    """SIGUSR1 to the tracer of `-- COMMAND`: the command is scanned where it
    runs and never gets the signal; its output and status are its own."""
    tool = subprocess.Popen([TOOL, "--json", "-T", "50", "1", "--", KINDS_WORKLOAD, "live"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out = Lines(tool.stdout)
        out.wait_for('"type":"report"', 30)  # probes on: it runs
        say(tool)
        out.wait_for("set", 30)
        tool.send_signal(signal.SIGUSR1)
        line = out.wait_for('"scan"', 30)
        say(tool)
        rest = out.rest()
        check_eq(tool.wait(timeout=30), 0, "exit status (the command's)")
    finally:
        kill_all(tool)
    check(any(l == "done\n" for l in rest), "the command's last line is missing")
    ours = our_kinds(reports(line)[0]["processes"][0])
    check_expected(ours, dict(EXPECTED, hold_in_register={"reachable": 900}))


def tracer_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return 0


def state_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_tracer_killed_during_a_live_scan_leaves_the_program_running():
    prog, tool = attached_and_set([workload("reach_many"), "300000", "200"], ["--json", "1"],
                                  subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while tracer_of(prog.pid) != tool.pid and time.time() < deadline:
            time.sleep(0.0005)
        check_eq(tracer_of(prog.pid), tool.pid, "the tracer holding the program")
        tool.kill()
        tool.wait(timeout=10)
        time.sleep(0.2)
        check_eq(tracer_of(prog.pid), 0, "the program's tracer after the tracer died")
        check(state_of(prog.pid) in "SR", "the program is stopped: " + state_of(prog.pid))
        say(prog)
        check_eq(prog.stdout.read(), "done\n", "the program's output")
        check_eq(prog.wait(timeout=30), 0, "the program's exit status")
    finally:
        kill_all(prog, tool)


def test_a_process_under_a_debugger_is_traced_but_not_scanned():
    strace = shutil.which("strace")
    check(strace, "strace is not installed (scripts/install-deps.sh)")
    holder = subprocess.Popen([strace, "-o", "/dev/null", KINDS_WORKLOAD, "live"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    tool = None
    try:
        pid = 0
        for _ in range(100):  # strace's child: the program
            kids = open("/proc/%d/task/%d/children" % (holder.pid, holder.pid)).read().split()
            if kids:
                pid = int(kids[0])
                break
            time.sleep(0.05)
        check(pid, "strace started no program")
        tool = subprocess.Popen([TOOL, "--json", "1", "-p", str(pid)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_attached(tool)
        say(holder)
        check_eq(holder.stdout.readline(), "set\n", "the program's first line")
        tool.send_signal(signal.SIGUSR1)
        err = Lines(tool.stderr)
        line = err.wait_for("cannot be scanned", 20)
        check("pid %d traces it" % holder.pid in line, "the reason: " + line)
        say(holder)
        check_eq(holder.stdout.read(), "done\n", "the program's output")
        check_eq(holder.wait(timeout=30), 0, "the program's exit status")
        out = tool.communicate(timeout=30)[0]
        check_eq(tool.returncode, 0, "the tracer's status")
        proc = final_process(out, pid)
        check("scan" not in proc, "a scan is reported")
        check(proc["heap"]["outstanding_bytes"] > 0, "tracing did not go on")
    finally:
        kill_all(holder, tool)


def test_python3_and_sqlite3_at_exit_no_block_valgrind_reaches_is_lost():
    """Debian's python3 and sqlite3: our kinds per allocating function equal
    valgrind's (its heuristics for interior pointers included)."""
    runs = [["/usr/bin/python3", "-c", "import json, sqlite3; x = [str(i) for i in "
             "range(10000)]; print(len(json.dumps(x)))"]]
    tmp = tempfile.mkdtemp()
    sql = os.path.join(tmp, "fill.sql")
    with open(sql, "w") as f:
        f.write("create table t(a integer primary key, b text);\n"
                "with recursive c(x) as (select 1 union all select x + 1 from c where x < 20000)"
                " insert into t select x, printf('row %d', x) from c;\n"
                "create index tb on t(b);\nselect count(*), sum(length(b)) from t;\n")
    runs.append(["sqlite3", ":memory:", "-init", sql, ".quit"])
    for argv in runs:
        path = os.path.join(tmp, "report.json")
        status, out, err = run_tool(["--json", "--output", path, "-T", "10000", "600", "--"]
                                    + argv)
        check_eq(status, 0, "%s: exit status (stderr: %s)" % (argv[0], err[-300:]))
        with open(path) as f:
            proc = final_process(f.read())
        ours, theirs = same_names(our_kinds(proc)), same_names(valgrind_kinds(argv))
        check(sum(d["reachable"] for d in ours.values()) > 0, "%s: nothing reachable" % argv[0])
        check_against(ours, theirs, set(ours) | set(theirs), argv[0])
    shutil.rmtree(tmp)


def test_redis_exit_scan_finds_nothing_lost():
    """Debian's redis-server (jemalloc) after SETs and LPUSHes: every block
    reachable or possibly so at its shutdown (valgrind with jemalloc's
    functions replaced says the same: nothing lost)."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as f:
        status, _, err = traced_redis(["--json", "--output", f.name, "-T", "10000", "600"],
                                      "6397", ["-n", "3000", "-t", "set,lpush", "-r", "1000"])
        check_eq(status, 0, "exit status (stderr: %s)" % err[-300:])
        proc = final_process(f.read())
    ours = our_kinds(proc)
    check_eq((proc["scan"]["lost_bytes"], proc["scan"]["indirect_bytes"]), (0, 0),
             "redis's lost and indirect bytes")
    check(proc["scan"]["reachable_bytes"] > 500000, "redis's reachable bytes: %r" % proc["scan"])
    check(sum(d["reachable"] for d in ours.values()) > 0, "no reachable stack")


def test_scan_option_scans_at_the_final_report():
    """-p with --scan and a COUNT: the final report carries a scan of the
    process, which runs on untraced after it."""
    prog = subprocess.Popen([KINDS_WORKLOAD, "live"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    tool = subprocess.Popen([TOOL, "--json", "--scan", "-T", "50", "1", "3", "-p",
                             str(prog.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_attached(tool)
        say(prog)
        check_eq(prog.stdout.readline(), "set\n", "the program's first line")
        out, err = tool.communicate(timeout=60)
        check_eq(tool.returncode, 0, "the tracer's status (stderr: %s)" % err[-300:])
        say(prog)
        check_eq(prog.stdout.read(), "done\n", "the program's output")
        check_eq(prog.wait(timeout=30), 0, "the program's exit status")
    finally:
        kill_all(prog, tool)
    check_expected(our_kinds(final_process(out, prog.pid)),
                   dict(EXPECTED, hold_in_register={"reachable": 900}))


def next_scan(out, pid, after):
    """The next report's scan of pid made at another time than after."""
    deadline = time.time() + 30
    while time.time() < deadline:
        line = out.wait_for('"scan"', 30)
        procs = [p for p in reports(line)[0]["processes"] if p["pid"] == pid]
        if procs and "scan" in procs[0] and procs[0]["scan"]["time"] != after:
            return procs[0]["scan"]
    raise AssertionError("no new scan of pid %d within 30 s" % pid)


def test_redis_scanned_live_while_it_serves():
    """-p on redis-server under redis-benchmark, scanned twice on SIGUSR1
    while it serves: nothing lost, every request served, and a usual
    shutdown."""
    tmp = tempfile.mkdtemp()
    server, port = os.path.join(tmp, "redis-server"), "6398"
    os.symlink(shutil.which("redis-check-rdb"), server)
    redis = subprocess.Popen([server, "--port", port, "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tool = bench = None
    try:
        wait_for_redis(port)
        tool = subprocess.Popen([TOOL, "--json", "-T", "5", "1", "-p", str(redis.pid)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_attached(tool)
        bench = subprocess.Popen(["redis-benchmark", "-p", port, "-q", "-n", "40000", "-t",
                                  "set,lpush", "-r", "10000"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        out, scans = Lines(tool.stdout), []
        for _ in range(2):
            time.sleep(0.5)
            tool.send_signal(signal.SIGUSR1)
            scans.append(next_scan(out, redis.pid, scans[-1]["time"] if scans else None))
        bench_out, bench_err = bench.communicate(timeout=120)
        check_eq(bench.returncode, 0, "redis-benchmark's status (%s)" % bench_err[-300:])
        check("requests per second" in bench_out, "redis-benchmark: %r" % bench_out[-300:])
        subprocess.run(["redis-cli", "-p", port, "shutdown", "nosave"], capture_output=True)
        check_eq(redis.wait(timeout=30), 0, "redis-server's exit status")
        check_eq(tool.wait(timeout=30), 0, "the tracer's exit status")
    finally:
        kill_all(redis, tool, bench)
        shutil.rmtree(tmp)
    for scan in scans:
        check_eq((scan["lost_bytes"], scan["indirect_bytes"]), (0, 0), "lost and indirect")
        check(scan["reachable_bytes"] > 0 and scan["pause_ms"] < 1000, "the scan: %r" % scan)
