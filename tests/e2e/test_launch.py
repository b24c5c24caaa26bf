"""A launched command stands as it would untraced: its environment, its
signals (each once), its children, its end and its wait status are its own."""
import os
import resource
import signal
import subprocess
import tempfile
import time

from harness import TOOL, Lines, check, check_eq, reports, run_tool, workload


def start_tool(args, **kw):
    return subprocess.Popen([TOOL] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def finish(p, timeout=60):
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
    return p.returncode, out, err


def counts(line):
    """signal_count's last line: {"INT": n, ..., "nofile": n, "blocked": hex}."""
    words = line.split()
    return dict(zip(words[0::2], words[1::2]))


def test_clone_without_exit_signal_runs_as_untraced():
    """A child cloned with no exit signal (which the clone option attaches)
    execs and is waited for, as untraced; it used to hang for ever."""
    status, out, err = run_tool(["--output", "/dev/null", "--", workload("clone_noexit")],
                                timeout=30)
    check_eq((status, out), (0, "child exited 0\n"), "status and output (stderr: %s)" % err[-300:])


def signal_run(send, args=("3",), extra=()):
    """signal_count under the tracer in a session of its own; send(tool) once
    it is ready. Returns (status, counts, stderr, final report)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as rep:
        tool = start_tool(["--json", "--output", rep.name] + list(extra) + ["--",
                          workload("signal_count")] + list(args), start_new_session=True)
        try:
            check_eq(tool.stdout.readline(), "ready\n", "the command's first line")
            send(tool)
        finally:
            status, out, err = finish(tool)
        rs = reports(open(rep.name).read())
    check(rs and rs[-1]["final"], "no final report (stderr: %s)" % err[-300:])
    return status, counts(out.splitlines()[-1]), err, rs[-1]


def test_signals_to_the_group_reach_the_command_once():
    """Ctrl-C, systemd's stop, a hang-up: sent to the process group, each
    reaches the command once, and the tracer ends with it."""
    def send(tool):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT):
            os.killpg(tool.pid, sig)
            time.sleep(0.2)
    status, got, err, _ = signal_run(send)
    check_eq(status, 7, "exit status (stderr: %s)" % err[-300:])
    check_eq([got[k] for k in ("INT", "TERM", "HUP", "QUIT")], ["2", "1", "1", "1"],
             "signals the command got")


def test_signals_to_the_tracer_alone_are_passed_on():
    """kill PID-of-the-tracer: each signal is passed to the command, which
    decides; the tracer never leaves it running."""
    def send(tool):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            tool.send_signal(sig)
            time.sleep(0.2)
    status, got, err, _ = signal_run(send)
    check_eq(status, 7, "exit status (stderr: %s)" % err[-300:])
    check_eq([got[k] for k in ("INT", "TERM", "HUP")], ["2", "1", "1"], "signals the command got")


def test_count_reached_waits_for_the_command():
    """INTERVAL COUNT with a command: the reports stop, the command runs on
    untraced, and the tracer's end and status are still the command's."""
    status, got, err, final = signal_run(lambda tool: None, extra=("0.3", "2"))
    check_eq(status, 7, "exit status (stderr: %s)" % err[-300:])
    check_eq(final["seq"], 2, "reports written")
    check("runs on untraced" in err, "not said on stderr: " + err[-300:])


def limited():
    """In the child: a soft open-files limit under the hard one, and two
    signals blocked, as a service manager or a shell may leave them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGWINCH})


def test_the_command_inherits_limits_and_signal_mask_as_untraced():
    argv = [workload("signal_count"), "0.1"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30, preexec_fn=limited)
    want = counts(p.stdout.splitlines()[-1])
    check_eq((want["nofile"], want["blocked"]), ("1024", "8000200"), "untraced")
    tool = subprocess.run([TOOL, "--output", "/dev/null", "--"] + argv, capture_output=True,
                          text=True, timeout=60, preexec_fn=limited)
    got = counts(tool.stdout.splitlines()[-1])
    check_eq((tool.returncode, got["nofile"], got["blocked"]), (7, "1024", "8000200"),
             "traced: status, soft limit, blocked signals (stderr: %s)" % tool.stderr[-300:])


def test_a_command_killed_by_a_signal_gives_the_same_wait_status():
    argv = ["sh", "-c", "kill -SEGV $$"]
    want = subprocess.run(argv, timeout=30).returncode
    check_eq(want, -signal.SIGSEGV, "untraced")
    status, _, err = run_tool(["--output", "/dev/null", "--"] + argv)
    check_eq(status, want, "traced (stderr: %s)" % err[-300:])


def test_thread_exits_do_not_wait_for_the_tracer():
    """Threads of the command exit and are joined while the tracer is stopped."""
    tool = subprocess.Popen([TOOL, "--output", "/dev/null", "--", workload("thread_exit")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out = Lines(tool.stdout)
        out.wait_for("ready", 30)
        tool.send_signal(signal.SIGSTOP)
        tool.stdin.write("go\n")
        tool.stdin.flush()
        out.wait_for("joined", 20)
    finally:
        tool.send_signal(signal.SIGCONT)
        status, _, err = finish(tool)
    check_eq(status, 0, "exit status (stderr: %s)" % err[-300:])


def test_output_closed_the_tracer_ends_with_the_command():
    """`memleak-bpf --json -- CMD | head -1`: the reader goes; the tracer does
    not die of SIGPIPE leaving the command behind: it stops reporting, waits
    for the command (which meets the closed pipe itself) and ends as it did."""
    r, w = os.pipe()
    tool = subprocess.Popen([TOOL, "--json", "0.2", "--", workload("signal_count"), "2"],
                            stdout=w, stderr=subprocess.PIPE, text=True)
    os.close(w)
    reader = os.fdopen(r)
    pid = None
    while pid is None:
        line = reader.readline()
        check(line, "no report before the end of output")
        if line.startswith('{"type":"report"') and reports(line)[0]["processes"]:
            pid = reports(line)[0]["processes"][0]["pid"]
    reader.close()
    status, _, err = finish(tool)
    check_eq(status, -signal.SIGPIPE, "exit status: the command's (stderr: %s)" % err[-300:])
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    check(not alive, "the command runs on after the tracer")


def check_whole_lines(text):
    """Every line is the command's whole line or a whole report."""
    import json
    import re
    reps, torn = [], []
    for line in text.splitlines():
        if line.startswith('{"type":"report"'):
            try:
                reps.append(json.loads(line))
                continue
            except ValueError:
                pass
        if not re.fullmatch(r"line \d{9} \.{86}", line):
            torn.append(line[:80])
    check_eq(torn[:3], [], "torn lines (%d in all)" % len(torn))
    check(len(reps) >= 2 and reps[-1]["final"], "%d reports, the last not final" % len(reps))


def test_json_reports_among_a_chatty_commands_lines_stay_whole():
    """--json -- CMD sharing stdout with a command that writes lines without
    pause: each report is one write, whole among them, to a file and to a
    pipe (a report of 24 KB: a pipe holds 64 KB)."""
    argv = ["--json", "-T", "20", "0.2", "--", workload("chatty"), "2"]
    with tempfile.TemporaryFile(mode="w+") as f:
        status = subprocess.run([TOOL] + argv, stdout=f, stderr=subprocess.PIPE,
                                timeout=60).returncode
        check_eq(status, 0, "exit status to a file")
        f.seek(0)
        check_whole_lines(f.read())
    status, out, err = run_tool(argv)
    check_eq(status, 0, "exit status to a pipe (stderr: %s)" % err[-300:])
    check_whole_lines(out)


def test_a_hundred_short_commands_in_a_row():
    """CI's use: 100 short commands, each launched traced, run as untraced
    (output, status) and cost at most 1 s more each in all, against the
    same commands untraced in this test. Tracing one costs about 0.4 s (the
    verifier's check of the BPF programs, most of it); detaching the probe
    links one after another cost 2 s a command."""
    commands = [["/bin/true"], ["/bin/sh", "-c", "echo hi; exit 3"]] * 50

    def run_all(prefix):
        start, results = time.monotonic(), []
        for c in commands:
            p = subprocess.run(prefix + c, stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=60)
            results.append((p.returncode, p.stdout))
        return time.monotonic() - start, results

    untraced_s, untraced = run_all([])
    traced_s, traced = run_all([TOOL, "--output", "/dev/null", "--"])
    check_eq(traced, untraced, "statuses and output")
    check_eq(untraced[:2], [(0, ""), (3, "hi\n")], "the commands' own statuses and output")
    check(traced_s - untraced_s <= len(commands) * 1.0,
          "100 launches took %.1f s traced, %.1f s untraced" % (traced_s, untraced_s))
