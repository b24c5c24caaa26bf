"""-- COMMAND follows the processes the command and its descendants start
(fork, vfork, clone of a process, exec), each its own process in the
reports; --no-follow traces the command alone. The figures of each are
checked against valgrind --trace-children=yes on the same run."""
import json
import os
import re
import signal
import subprocess

from harness import (TOOL, Lines, check, check_eq, leaks_by_function, reports, run_tool,
                     wait_attached, workload)
from test_accounting import CXX_EH_POOL


def final_procs(out):
    last = reports(out)[-1]
    check(last["final"], "the last report is not final")
    return last["processes"]


def by_comm(procs):
    """{comm: [process, ...]} in the order the processes started (pid order)."""
    out = {}
    for p in sorted(procs, key=lambda p: p["pid"]):
        out.setdefault(p["comm"], []).append(p)
    return out


def figures(proc):
    return proc["heap"]["outstanding_bytes"], proc["heap"]["outstanding_allocs"]


def valgrind_children(argv):
    """valgrind --trace-children=yes: each process's program (its base name;
    None for a fork that did not exec) and its "in use at exit" (bytes,
    blocks), in the order the processes started."""
    p = subprocess.run(["valgrind", "--trace-children=yes", "--run-libc-freeres=no",
                        "--run-cxx-freeres=no"] + argv, capture_output=True, text=True,
                       timeout=300)
    command, in_use = {}, {}
    for line in p.stderr.splitlines():
        m = re.match(r"==(\d+)== Command: (\S+)", line)
        if m:
            command[int(m.group(1))] = os.path.basename(m.group(2))
        m = re.match(r"==(\d+)==\s+in use at exit: ([\d,]+) bytes in ([\d,]+) blocks", line)
        if m:
            in_use[int(m.group(1))] = (int(m.group(2).replace(",", "")),
                                       int(m.group(3).replace(",", "")))
    check(in_use and set(command) <= set(in_use), "valgrind's summaries: " + p.stderr[-2000:])
    return [(command.get(pid), in_use[pid]) for pid in sorted(in_use)]


def valgrinds_environment():
    """The environment valgrind gives its client (it adds LD_PRELOAD and
    three more), with its preload under another name: the shell keeps one
    32-byte block per variable, so the traced run sees as many."""
    p = subprocess.run(["valgrind", "-q", "env", "-0"], capture_output=True, text=True,
                       timeout=120)
    env = dict(kv.split("=", 1) for kv in p.stdout.split("\0") if "=" in kv)
    check("LD_PRELOAD" in env, "valgrind's environment: %r" % sorted(env))
    env["VALGRIND_PRELOAD_STANDIN"] = env.pop("LD_PRELOAD")
    return env


def test_shell_and_its_child_equal_valgrind():
    """sh -c 'short_lived; true': the shell forks, the child execs the
    program that keeps 7 x 512 B. The shell's figures and the program's each
    equal valgrind --trace-children=yes's "in use at exit" for it."""
    env = valgrinds_environment()
    argv = ["sh", "-c", workload("short_lived") + "; true"]
    want = valgrind_children(argv)
    check_eq([c for c, _ in want], ["sh", "short_lived"], "valgrind's processes")
    status, out, err = run_tool(["--json", "5", "--"] + argv, env=env)
    check_eq(status, 0, "exit status: " + err[-300:])
    got = by_comm(final_procs(out))
    check_eq(sorted(got), ["sh", "short_lived"], "processes traced")
    check_eq(figures(got["sh"][0]), want[0][1], "the shell against valgrind")
    check_eq(figures(got["short_lived"][0]), want[1][1], "the child against valgrind")
    check_eq(figures(got["short_lived"][0]), (3584, 7), "the child's known figures")
    check_eq(leaks_by_function(got["short_lived"][0]).get("leak_before_exit"), [3584, 7],
             "the child's stack")


def test_fork_without_exec_leaks_in_the_child_alone():
    """LLVM's fork_and_leak: the forked child leaks 10 x 1337 B, the parent
    nothing. Each exact, equal to valgrind's, and the child's exit scan
    finds them lost."""
    argv = [workload("fork_leak")]
    want = valgrind_children(argv)
    status, out, err = run_tool(["--json", "5", "--"] + argv)
    check_eq(status, 0, "exit status: " + err[-300:])
    procs = sorted(final_procs(out), key=lambda p: p["pid"])
    check_eq(len(procs), 2, "processes")
    check_eq([figures(p) for p in procs], [w for _, w in want], "against valgrind")
    parent, child = procs
    check_eq((figures(parent), figures(child)), ((0, 0), (13370, 10)), "known figures")
    check_eq(leaks_by_function(child).get("leak_in_child"), [13370, 10], "the child's stack")
    # Nine for certain; the tenth's address may linger in a register at _exit.
    check(child["scan"]["leaked_bytes"] >= 9 * 1337, "the child's scan: %r" % child["scan"])
    check_eq(parent["scan"]["leaked_bytes"], 0, "the parent's scan")


def test_forked_child_inherits_its_parents_blocks():
    """The parent keeps 20 x 100 B, forks; the child frees 5 of them and
    leaks 10 x 1337 B of its own. As valgrind says: the parent holds its 20
    at exit, the child the 15 it inherited and its 10, each block with the
    stack that allocated it."""
    argv = [workload("fork_leak"), "inherit"]
    want = valgrind_children(argv)
    status, out, err = run_tool(["--json", "5", "--"] + argv)
    check_eq(status, 0, "exit status: " + err[-300:])
    parent, child = sorted(final_procs(out), key=lambda p: p["pid"])
    check_eq([figures(parent), figures(child)], [w for _, w in want], "against valgrind")
    check_eq((figures(parent), figures(child)), ((2000, 20), (1500 + 13370, 25)),
             "known figures")
    check_eq(leaks_by_function(child).get("keep_in_parent"), [1500, 15], "inherited blocks")
    check_eq(leaks_by_function(child).get("leak_in_child"), [13370, 10], "its own")


def test_prefork_server_one_worker_leaks():
    """A pre-forking server: 4 workers serve for 12 s, worker 2 loses 1 in
    10 of its 512-byte headers (600 of them). It alone is a leak, at
    handle_request, proven by its exit scan; the others read steady."""
    status, out, err = run_tool(["--json", "2", "--", workload("prefork")])
    check_eq(status, 0, "exit status: " + err[-300:])
    lines = out.splitlines()
    workers = dict(re.findall(r"^worker (\d) pid (\d+)$", out, re.M))
    check_eq(sorted(workers), ["1", "2", "3", "4"], "the workers' lines: %r" % lines[:8])
    procs = {str(p["pid"]): p for p in final_procs("\n".join(l for l in lines if l[:1] == "{"))}
    check_eq(len(procs), 5, "processes: the server and its workers")
    leaky = procs[workers["2"]]
    check_eq(leaky["verdict"]["state"], "leak", "worker 2's verdict")
    check_eq(leaks_by_function(leaky).get("handle_request"), [307200, 600], "worker 2's leak")
    check_eq(leaky["scan"]["leaked_bytes"], 307200, "worker 2's lost bytes")
    for w in "134":
        p = procs[workers[w]]
        check_eq((p["verdict"]["state"], p["scan"]["leaked_bytes"]), ("steady", 0),
                 "worker %s" % w)


def test_pipeline_both_sides_traced():
    """sh -c 'A | B': both sides of the pipe are followed."""
    status, out, err = run_tool(["--json", "5", "--output", "/dev/stderr", "--", "sh", "-c",
                                 workload("short_lived") + " | cat"])
    check_eq((status, out), (0, ""), "status and output")
    got = by_comm(final_procs(err[err.index("{"):]))
    check_eq(sorted(got), ["cat", "sh", "short_lived"], "processes traced")
    check_eq(figures(got["short_lived"][0]), (3584, 7), "the writer's figures")


def test_child_execs_a_jemalloc_program():
    """The shell's child execs a program linked with jemalloc: its allocator
    is found and probed before it runs, and its figures are exact."""
    status, out, err = run_tool(["--json", "5", "--", "sh", "-c",
                                 workload("leaky_cxx_je") + "; true"])
    check_eq(status, 0, "exit status: " + err[-300:])
    got = by_comm(final_procs(out))
    check_eq(figures(got["leaky_cxx_je"][0]), (600 + CXX_EH_POOL, 10), "its figures")


def test_no_follow_traces_the_shell_alone():
    status, out, err = run_tool(["--json", "--no-follow", "5", "--", "sh", "-c",
                                 workload("short_lived") + "; true"])
    check_eq(status, 0, "exit status: " + err[-300:])
    check_eq([p["comm"] for p in final_procs(out)], ["sh"], "processes traced")


def test_ended_by_a_signal_as_untraced():
    """A command killed by a signal ends the tracer by the same signal (its
    final report written first); an exit status is passed through."""
    untraced = subprocess.run(["sh", "-c", "kill -USR2 $$"])
    check_eq(untraced.returncode, -signal.SIGUSR2, "untraced")
    traced = subprocess.run([TOOL, "--json", "5", "--", "sh", "-c", "kill -USR2 $$"],
                            capture_output=True, text=True, timeout=60)
    check_eq(traced.returncode, -signal.SIGUSR2, "traced (stderr: %s)" % traced.stderr[-300:])
    check(final_procs(traced.stdout), "no final report")
    status, out, err = run_tool(["5", "--", "sh", "-c", "exit 7"])
    check_eq(status, 7, "sh -c 'exit 7' (stderr: %s)" % err[-300:])


def test_a_thousand_short_children_none_missing():
    """A shell starting 1,000 short programs: every one is in a report,
    nothing dropped."""
    status, out, err = run_tool(["--json", "5", "--", "sh", "-c",
                                 "i=0; while [ $i -lt 1000 ]; do /bin/true; i=$((i+1)); done"],
                                timeout=300)
    check_eq(status, 0, "exit status: " + err[-300:])
    rs = reports(out)
    seen = {(p["pid"], p["comm"]) for r in rs for p in r["processes"]}
    check_eq(sum(1 for _, c in seen if c == "true"), 1000, "children in the reports")
    check_eq({k: v for k, v in rs[-1]["dropped"].items() if v}, {}, "dropped")


def attached_to_a_shell(extra):
    """-p on a shell that starts demo_leaky (2 s, from its first request
    on, one 256-byte header in 10 lost) once the tracer is ready."""
    shell = subprocess.Popen(["sh", "-c", "read go; %s 2000 1; true" % workload("demo_leaky")],
                             stdin=subprocess.PIPE, text=True)
    tool = subprocess.Popen([TOOL, "--json", "-p", str(shell.pid), "1"] + extra,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_attached(tool)
        shell.stdin.write("go\n")
        shell.stdin.close()
        out, err = tool.communicate(timeout=60)
    finally:
        for p in (shell, tool):
            if p.poll() is None:
                p.kill()
                p.wait()
    check_eq(tool.returncode, 0, "exit status (stderr: %s)" % err[-300:])
    return by_comm(final_procs(out)), shell.pid


def test_attached_process_children_followed():
    """-p follows the children its process starts after attaching: each is
    probed when the tracer sees it (within a sample), and counted from then
    on, as -p counts; --no-follow leaves them alone."""
    got, pid = attached_to_a_shell([])
    check_eq(sorted(got), ["demo_leaky", "sh"], "processes traced")
    check_eq(got["sh"][0]["pid"], pid, "the shell")
    child = got["demo_leaky"][0]
    lost = leaks_by_function(child).get("parse_header")
    check(lost and lost[0] == 256 * lost[1] and 150 <= lost[1] <= 200,
          "parse_header's lost copies, counted from the probe on: %r" % lost)
    got, _ = attached_to_a_shell(["--no-follow"])
    check_eq(sorted(got), ["sh"], "--no-follow: processes traced")


def test_daemon_outlives_the_command():
    """A grandchild that daemonises outlives the command: the run goes on
    while it lives, SIGINT ends it with a final report that lists it
    alive, and it runs on, untraced and unharmed."""
    tool = subprocess.Popen([TOOL, "--json", "1", "--", "sh", "-c",
                             "setsid sleep 60 </dev/null >/dev/null 2>&1 & echo started"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    daemon = None
    try:
        out = Lines(tool.stdout)
        out.wait_for("started", 30)
        line = out.wait_for('"seq":2,', 30)  # reports go on after the shell's exit
        daemon = [p for p in json.loads(line)["processes"] if p["comm"] == "sleep"]
        check(daemon and daemon[0]["alive"], "the daemon in the second report: %s" % line[:300])
        daemon = daemon[0]["pid"]
        tool.send_signal(signal.SIGINT)
        check_eq(tool.wait(timeout=30), 0, "the tracer's status (the shell's)")
        last = json.loads([l for l in out.rest() if l.startswith("{")][-1])
        check(last["final"], "no final report")
        check_eq([(p["comm"], p["alive"]) for p in last["processes"] if p["pid"] == daemon],
                 [("sleep", True)], "the daemon in the final report")
        status = dict(l.split(":", 1) for l in open("/proc/%d/status" % daemon))
        check_eq((status["State"].split()[0], status["TracerPid"].strip()), ("S", "0"),
                 "the daemon after the tracer")
    finally:
        if tool.poll() is None:
            tool.kill()
        if daemon:
            os.kill(daemon, signal.SIGKILL)
