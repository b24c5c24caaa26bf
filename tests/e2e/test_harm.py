"""Doing no harm: a traced program behaves as untraced, and what tracing
sees stays exact across failing new, exec from any thread and re-probing."""
import json
import os
import signal
import subprocess
import tempfile
import time

from harness import (TOOL, Lines, check, check_eq, leaks_by_function, reports, run_tool,
                     valgrind_in_use, wait_attached, workload)

JEMALLOC = {"LD_PRELOAD": "libjemalloc.so.2"}


def split(stdout):
    """The JSON reports, and the lines the launched program printed among them."""
    reports, program = [], []
    for line in stdout.splitlines():
        if line.startswith('{"type":"report"'):
            reports.append(json.loads(line))
        elif line.strip():
            program.append(line)
    return reports, program


def untraced(argv, env=None):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout.splitlines(), p.stderr


def traced(argv, env=None, extra=(), nprocs=1):
    """The command's run; its process is the first started (the lowest pid
    but for wrap-around: the one that is not another's child here)."""
    status, out, err = run_tool(["--json", "-T", "50"] + list(extra) + ["--"] + argv, env=env)
    reps, program = split(out)
    check(reps and reps[-1]["final"], "no final report (stderr: %s)" % err[-500:])
    procs = reps[-1]["processes"]
    check_eq(len(procs), nprocs, "processes in the final report")
    return status, program, err, min(procs, key=lambda p: p["pid"]), reps[-1]


def check_new_fails_as_untraced(env, program="new_fails"):
    argv = [workload(program)]
    want_status, want_out, _ = untraced(argv, env)
    check_eq((want_status, want_out), (7, ["bad_alloc caught 200, nothrow null 200"]),
             "untraced run")
    status, program, err, proc, _ = traced(argv, env)
    check_eq((status, program), (want_status, want_out),
             "traced run: status and output (stderr: %s)" % err[-300:])
    check("terminate" not in err, "the program was terminated: " + err[-300:])
    check_eq(leaks_by_function(proc).get("leak_some()"), [200, 5], "leak_some() (bytes, blocks)")


def test_failing_new_behaves_as_untraced_glibc():
    check_new_fails_as_untraced(None)


def test_failing_new_behaves_as_untraced_jemalloc():
    """jemalloc's own operator new: watched at its ret instructions."""
    check_new_fails_as_untraced(JEMALLOC)
    check_new_fails_as_untraced(None, "new_fails_je")


def test_failing_new_behaves_as_untraced_tcmalloc():
    """tcmalloc's operator new leaves through its own PLT (tail calls to its
    slow paths): watched at the ret instructions it reaches there."""
    check_new_fails_as_untraced(None, "new_fails_tc")
    check_new_fails_as_untraced({"LD_PRELOAD": "libtcmalloc_minimal.so.4"})


def check_exec_from_thread(target, want):
    argv = [workload("exec_thread"), workload(target)]
    status, _, err, proc, _ = traced(argv)
    check_eq(status, 0, "exit status (stderr: %s)" % err[-300:])
    check_eq(proc["comm"], target, "the process's name after exec")
    heap = proc["heap"]
    got = (heap["outstanding_bytes"], heap["outstanding_allocs"])
    check_eq(got, want, "the new image's (bytes, blocks)")
    return got


def test_exec_from_a_second_thread_equals_valgrind():
    got = check_exec_from_thread("leaky_all_vg", (6088, 23))
    check_eq(got, valgrind_in_use(["--trace-children=yes", workload("exec_thread"),
                                   workload("leaky_all_vg")]), "against valgrind")


def test_exec_from_a_thread_into_jemalloc_program():
    got = check_exec_from_thread("leaky_cxx_je", (600 + 72704, 10))
    check_eq(got, valgrind_in_use(["--trace-children=yes", workload("exec_thread"),
                                   workload("leaky_cxx_je")]), "against valgrind")


def test_reprobed_mid_storm_counts_exactly():
    """Probed, unprobed and probed again while four threads allocate without
    pause: what they leak after the second probe is counted to the block."""
    out_file = tempfile.TemporaryFile(mode="w+")
    tool = subprocess.Popen([TOOL, "--exact", "--json", "1"], stdout=out_file, stderr=subprocess.PIPE,
                            text=True)
    storm = None
    try:
        err = Lines(tool.stderr)
        err.wait_for("watching", 30)
        storm = subprocess.Popen([workload("storm"), "12"])
        tag = "pid %d (storm)" % storm.pid
        err.wait_for(tag + " left its steady band", 90)
        err.wait_for(tag + " is steady again", 120)
        storm.send_signal(signal.SIGUSR2)  # grow again
        err.wait_for(tag + " left its steady band", 90)
        time.sleep(1)
        storm.send_signal(signal.SIGUSR1)  # leak 4 x 600 blocks, then exit
        check_eq(storm.wait(timeout=60), 0, "storm's exit status")
        time.sleep(2.5)
    finally:
        if storm and storm.poll() is None:
            storm.kill()
        tool.send_signal(signal.SIGINT)
        tool.wait(timeout=60)
    check_eq(tool.returncode, 0, "exit status")
    out_file.seek(0)
    rs = reports(out_file.read())
    last = [p for r in rs for p in r["processes"] if p["pid"] == storm.pid][-1]
    check_eq(leaks_by_function(last).get("leak_after_reprobe"), [2400 * 48, 2400],
             "leaks after the second probe (bytes, blocks)")
    check_eq(rs[-1]["calls_nested"], 0, "allocator calls taken for nested ones")


def test_attached_process_execs_from_a_thread():
    """-p: a process whose second thread execs a new program is probed again
    (at the next sample); what the new program leaks after that is exact."""
    target = subprocess.Popen([workload("exec_thread"), "-w", workload("attach_target")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    tool = subprocess.Popen([TOOL, "--json", "-p", str(target.pid)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        Lines(tool.stderr).wait_for("tracing", 30)
        target.stdin.write("exec\n")
        target.stdin.flush()
        check_eq(target.stdout.readline(), "ready\n", "the new program's first line")
        time.sleep(2)  # a sample or two: the new program's allocator is probed
        target.stdin.write("go\n")
        target.stdin.flush()
        check_eq(target.stdout.readline(), "done\n", "the new program's second line")
        target.stdin.close()
        target.wait(timeout=30)
        out, _ = tool.communicate(timeout=60)
    finally:
        for p in (tool, target):
            if p.poll() is None:
                p.kill()
    proc = reports(out)[-1]["processes"][0]
    check_eq(proc["comm"], "attach_target", "the process's name after exec")
    check_eq(leaks_by_function(proc).get("leak_after_attach"), [3584, 7],
             "leak_after_attach (bytes, blocks)")


def test_realloc_racing_malloc_in_threads_equals_valgrind():
    argv = [workload("realloc_race")]
    for _ in range(3):  # the race is rare: a few runs
        status, _, err, proc, _ = traced(argv)
        check_eq(status, 0, "exit status (stderr: %s)" % err[-300:])
        check_eq(leaks_by_function(proc).get("leak_after_race"), [4000, 100],
                 "leak_after_race (bytes, blocks)")
        heap = proc["heap"]
        check_eq(heap["allocs"] - heap["frees"], heap["outstanding_allocs"], "allocs - frees")
    check_eq((heap["outstanding_bytes"], heap["outstanding_allocs"]), valgrind_in_use(argv),
             "(bytes, blocks) against valgrind")


def test_realloc_of_a_block_never_seen_frees_nothing_else():
    """-p: blocks from before the attach are realloc'd (freeing addresses the
    tracer never saw allocated) while another thread keeps every block it
    mallocs at those addresses: each kept block is counted."""
    target = subprocess.Popen([workload("realloc_unknown")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, GLIBC_TUNABLES="glibc.malloc.tcache_count=0"))
    tool = subprocess.Popen([TOOL, "--json", "-T", "50", "-p", str(target.pid)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        check_eq(target.stdout.readline(), "ready\n", "the target's first line")
        wait_attached(tool)
        target.stdin.write("go\n")
        target.stdin.flush()
        kept = int(target.stdout.readline().split()[1])
        target.stdin.close()
        target.wait(timeout=30)
        out, err = tool.communicate(timeout=60)
    finally:
        for p in (tool, target):
            if p.poll() is None:
                p.kill()
    check(kept > 10000, "the keeper kept only %d blocks" % kept)
    proc = reports(out)[-1]["processes"][0]
    # A stack may be cut (map_busy while the other thread maps): summed by its first frame.
    stacks = [s for s in proc["stacks"] if s["frames"] and s["frames"][0]["symbol"] == "keep_blocks"]
    got = [sum(s[k] for s in stacks) for k in ("outstanding_bytes", "outstanding_allocs", "allocs")]
    check_eq(got, [100 * kept, kept, kept], "keep_blocks (bytes, blocks, allocs)")


def test_signal_handler_allocating_inside_a_call_loses_nothing():
    """A 2 kHz timer's handler mallocs and frees while main leaks: a call the
    handler interrupts still counts when it returns."""
    status, program, err, proc, rep = traced([workload("signal_alloc")])
    check_eq(status, 0, "exit status (stderr: %s)" % err[-300:])
    handled = int(program[-1].split()[2])
    check(handled > 100, "the handler ran only %d times" % handled)
    check_eq(leaks_by_function(proc).get("leak_in_main"), [100 * 200000, 200000],
             "leak_in_main (bytes, blocks)")
    heap = proc["heap"]
    # main's 200,000, stdout's buffer, and 4 a handler run, all freed
    check_eq((heap["allocs"], heap["frees"]), (200001 + 4 * handled, 4 * handled),
             "allocations and frees")
    check_eq(rep["dropped"]["calls_too_deep"], 0, "calls too deep")


def attached(args, **kw):
    """memleak-bpf -p on attach_target (which waits on its input); returns
    (tool, target) once tracing."""
    target = subprocess.Popen([workload("attach_target")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    check_eq(target.stdout.readline(), "ready\n", "the target's first line")
    tool = subprocess.Popen([TOOL, "-p", str(target.pid)] + args, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)
    wait_attached(tool)
    return tool, target


def test_stdout_closed_with_sigpipe_ignored_ends_tracing():
    """`(trap '' PIPE; memleak-bpf --json -p PID 0.3 | head -1)`: the write
    that fails ends tracing, as the signal would."""
    tool, target = attached(["--json", "0.3"], restore_signals=False)  # SIGPIPE ignored
    try:
        check(tool.stdout.readline().startswith('{"type":"report"'), "no first report")
        tool.stdout.close()
        status = tool.wait(timeout=30)
    finally:
        for p in (tool, target):
            if p.poll() is None:
                p.kill()
    check_eq(status, -signal.SIGPIPE, "exit status")


def test_hangup_and_quit_end_tracing_with_a_final_report():
    """A dropped SSH session (SIGHUP) or SIGQUIT: the final report is written
    and the status is 0, as for SIGINT."""
    for sig in (signal.SIGHUP, signal.SIGQUIT):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            tool, target = attached(["--json", "--output", out.name])
            try:
                tool.send_signal(sig)
                status = tool.wait(timeout=30)
            finally:
                for p in (tool, target):
                    if p.poll() is None:
                        p.kill()
            rs = reports(open(out.name).read())
        check_eq(status, 0, "exit status after %s" % sig.name)
        check(rs and rs[-1]["final"] and rs[-1]["processes"][0]["pid"] == target.pid,
              "no final report of the target after %s" % sig.name)


def test_clone_vm_child_frees_its_parents_blocks():
    """A process sharing its parent's memory (clone(CLONE_VM), no thread)
    frees the parent's 100 blocks: they are freed (valgrind cannot run it).
    The child is followed, a process of its own that allocated nothing."""
    status, program, err, proc, rep = traced([workload("clone_vm_free")], nprocs=2)
    child = max(rep["processes"], key=lambda p: p["pid"])
    check_eq((child["heap"]["allocs"], child["heap"]["outstanding_bytes"]), (0, 0),
             "the child's own figures")
    check_eq((status, program), (0, ["freed"]), "status and output (stderr: %s)" % err[-300:])
    check_eq(leaks_by_function(proc).get("keep_blocks"), None, "keep_blocks's blocks left")
    heap = proc["heap"]
    check_eq((heap["allocs"], heap["frees"]), (101, 100), "allocations (stdout's buffer too) and frees")
