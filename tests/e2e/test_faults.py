"""Faults: the tracer killed, two tracers at once, a target that forks, execs
and is killed, files deleted under a traced process. The target never suffers
and nothing is lost or left behind."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from harness import TOOL, Lines, check, check_eq, leaks_by_function, reports, workload

OUR_PROGS = {"malloc_enter", "calloc_enter", "realloc_enter", "free_enter", "alloc_end",
             "new_wrapper_ent", "memalign_enter", "pvalloc_enter", "reallocarray_en",
             "posix_memalign_"}


def bpftool_json(*args):
    p = subprocess.run(["bpftool", "-j"] + list(args), capture_output=True, text=True,
                       timeout=60)
    check_eq(p.returncode, 0, "bpftool %s: %s" % (" ".join(args), p.stderr))
    return json.loads(p.stdout or "[]")


def our_probes():
    """Our uprobe programs loaded, and the links that attach programs to uprobes."""
    progs = [p["id"] for p in bpftool_json("prog", "show") if p.get("name") in OUR_PROGS]
    links = [l for l in bpftool_json("link", "show") if l.get("prog_id") in progs]
    return len(progs), len(links)


def test_tracer_killed_leaves_target_unharmed_and_nothing_behind():
    before = our_probes()  # other tracers may run (a soak): ours must come and go
    target = subprocess.Popen([workload("survivor"), "4"], stdout=subprocess.PIPE, text=True)
    tool = subprocess.Popen([TOOL, "-p", str(target.pid)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        Lines(tool.stderr).wait_for("tracing", 30)
        during = our_probes()
        check(during[0] > before[0] and during[1] > before[1],
              "bpftool does not see the tracer's probes: %r then %r" % (before, during))
        time.sleep(1)
        tool.send_signal(signal.SIGKILL)
        tool.wait(timeout=30)
        out, _ = target.communicate(timeout=60)
    finally:
        for p in (tool, target):
            if p.poll() is None:
                p.kill()
    check_eq((target.returncode, out), (0, "ok: every failing new caught\n"),
             "the target after its tracer was killed")
    deadline = time.time() + 10  # links go with the last reference to them
    while our_probes() != before and time.time() < deadline:
        time.sleep(0.5)
    check_eq(our_probes(), before, "our (programs, links) after the tracer was killed")


def test_two_tracers_at_once_are_both_exact():
    target = subprocess.Popen([workload("attach_target")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    tools = []
    try:
        check_eq(target.stdout.readline(), "ready\n", "target's first line")
        for _ in range(2):
            tools.append(subprocess.Popen([TOOL, "--json", "-p", str(target.pid)],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
            Lines(tools[-1].stderr).wait_for("tracing", 30)
        target.stdin.write("go\n")
        target.stdin.flush()
        check_eq(target.stdout.readline(), "done\n", "target's second line")
        target.stdin.close()
        target.wait(timeout=30)
        outs = [t.communicate(timeout=60)[0] for t in tools]
    finally:
        for p in tools + [target]:
            if p.poll() is None:
                p.kill()
    for out in outs:
        proc = reports(out)[-1]["processes"][0]
        check_eq(leaks_by_function(proc).get("leak_after_attach"), [3584, 7],
                 "leak_after_attach (bytes, blocks) seen by each tracer")
        check_eq((proc["heap"]["allocs"], proc["heap"]["frees"]), (10007, 10000),
                 "allocations and frees since attach")


def test_target_that_forks_execs_and_is_killed():
    tool = subprocess.Popen([TOOL, "--json", "--", workload("fork_exec"), workload("leaky_all")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = Lines(tool.stdout)
        out.wait_for("looping", 60)  # its children have exec'd and exited
        time.sleep(0.5)
        pid = int(subprocess.run(["pgrep", "-o", "-x", "fork_exec"], capture_output=True,
                                 text=True).stdout.split()[0])
        os.kill(pid, signal.SIGKILL)
        tool.wait(timeout=60)
        err = tool.stderr.read()
        time.sleep(0.5)
    finally:
        if tool.poll() is None:
            tool.kill()
    check_eq(tool.returncode, -signal.SIGKILL, "ended by the command's signal (stderr: %s)"
             % err[-300:])
    lines = [l for l in out.seen if l.startswith("{")] + [
        l for l in out.rest() if l.startswith("{")]
    check(lines, "no report")
    last = json.loads(lines[-1])
    check(last["final"], "the last report is not final")
    proc = [p for p in last["processes"] if p["pid"] == pid][0]
    heap = proc["heap"]
    check(heap["allocs"] > 1000 and heap["allocs"] - heap["frees"] in (0, 1),
          "the killed loop's figures: %r" % heap)


def test_deleted_executable_and_allocator():
    """A server whose executable and allocator (jemalloc, preloaded) were
    deleted after it started, as after an upgrade: still traced exactly."""
    d = tempfile.mkdtemp()
    prog, lib = os.path.join(d, "server"), os.path.join(d, "libjemalloc.so.2")
    shutil.copy(workload("attach_target"), prog)
    shutil.copy("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", lib)
    target = subprocess.Popen([prog], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, LD_PRELOAD=lib))
    try:
        check_eq(target.stdout.readline(), "ready\n", "target's first line")
        shutil.rmtree(d)
        tool = subprocess.Popen([TOOL, "--json", "-p", str(target.pid)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        Lines(tool.stderr).wait_for("tracing", 30)
        target.stdin.write("go\n")
        target.stdin.flush()
        check_eq(target.stdout.readline(), "done\n", "target's second line")
        target.stdin.close()
        target.wait(timeout=30)
        out, _ = tool.communicate(timeout=60)
    finally:
        if target.poll() is None:
            target.kill()
    check_eq(tool.returncode, 0, "exit status")
    proc = reports(out)[-1]["processes"][0]
    heap = proc["heap"]
    check_eq((heap["outstanding_bytes"], heap["outstanding_allocs"]), (3584, 7),
             "(bytes, blocks) leaked after attach")
    frames = proc["stacks"][0]["frames"]
    check(frames and frames[0]["module"].endswith("server (deleted)"),
          "the leak's first frame: %r" % frames[:1])


def test_exec_into_an_unprobeable_program():
    """-p on a shell that execs a static, stripped program: its allocator
    cannot be probed, which is said once; the old image's probes come off
    once (a second detach at exit crashed the tracer), and the report is
    final and whole."""
    target = subprocess.Popen(["sh", "-c", "sleep 2; exec %s 3" % workload("static_stripped")])
    try:
        time.sleep(0.5)
        p = subprocess.run([TOOL, "--json", "-p", str(target.pid), "1"], capture_output=True,
                           text=True, timeout=60)
    finally:
        target.kill()
        target.wait()
    check_eq(p.returncode, 0, "exit status (stderr: %s)" % p.stderr.strip())
    warned = [l for l in p.stderr.splitlines() if "cannot be probed" in l]
    check(len(warned) == 1 and "static_stripped" not in warned[0] and
          "stripped static binary" in warned[0], "warning: %r" % p.stderr)
    last = reports(p.stdout)[-1]
    check(last["final"] and last["processes"][0]["pid"] == target.pid, "final report: %r" % last)
