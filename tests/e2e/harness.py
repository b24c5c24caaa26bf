"""Running memleak-bpf and its workloads, and reading what it reports."""
import json
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.environ.get("MEMLEAK_BPF_UNDER_TEST", os.path.join(ROOT, "memleak-bpf"))
WORKLOADS = os.path.join(ROOT, "build", "workloads")


def workload(name):
    return os.path.join(WORKLOADS, name)


def run_tool(args, env=None, timeout=120, input=None):
    """Run memleak-bpf; returns (exit status, stdout, stderr)."""
    full_env = dict(os.environ, **(env or {}))
    p = subprocess.run([TOOL] + args, capture_output=True, text=True, timeout=timeout,
                       env=full_env, input=input)
    return p.returncode, p.stdout, p.stderr


def reports(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def final_process(stdout, pid=None):
    """The final report's process (the only one, or the one with pid)."""
    last = reports(stdout)[-1]
    assert last["final"], "the last report is not marked final"
    procs = last["processes"]
    if pid is not None:
        procs = [p for p in procs if p["pid"] == pid]
    assert len(procs) == 1, "expected one process, got %d" % len(procs)
    return procs[0]


def leaks_by_function(proc):
    """{allocating function: [bytes, blocks]}, summed over its stacks."""
    out = {}
    for s in proc["stacks"]:
        fn = s["frames"][0]["symbol"] if s["frames"] else None
        acc = out.setdefault(fn, [0, 0])
        acc[0] += s["outstanding_bytes"]
        acc[1] += s["outstanding_allocs"]
    return out


def valgrind_in_use(argv, env=None):
    """valgrind's "in use at exit" (bytes, blocks), with nothing freed for it at exit."""
    p = subprocess.run(["valgrind", "--run-libc-freeres=no", "--run-cxx-freeres=no"] + argv,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, **(env or {})))
    m = re.search(r"in use at exit: ([\d,]+) bytes in ([\d,]+) blocks", p.stderr)
    assert m, "no valgrind summary:\n" + p.stderr[-2000:]
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def check_eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


class Lines:
    """The lines a pipe gives, read as they come, waited for by what they hold."""

    def __init__(self, pipe):
        import queue
        import threading
        self.seen, self._q = [], queue.Queue()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe):
        for line in pipe:
            self._q.put(line)
        self._q.put(None)

    def wait_for(self, text, timeout):
        """The first line from now on that holds text; fails after timeout seconds."""
        import queue
        import time
        deadline = time.time() + timeout
        while True:
            try:
                line = self._q.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError("no line with %r within %d s; last lines:\n%s"
                                     % (text, timeout, "".join(self.seen[-8:])))
            self.seen.append(line)
            if text in line:
                return line

    def rest(self):
        """Every line still to come, once the pipe has closed."""
        lines = []
        while True:
            line = self._q.get(timeout=30)
            if line is None:
                return lines
            lines.append(line)


def wait_attached(tool):
    """Reads the tool's stderr up to its "tracing" line (warnings about the
    machine's allocators may come first); fails if it never comes."""
    lines = [tool.stderr.readline()]
    while "tracing" not in lines[-1] and lines[-1] and len(lines) < 50:
        lines.append(tool.stderr.readline())
    check("tracing" in lines[-1], "tool did not attach: %r" % lines)


def wait_for_redis(port):
    """Until the redis-server on port answers PING (10 s at most)."""
    import time
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", port, "ping"], capture_output=True,
                          text=True).stdout.strip() == "PONG":
            return
        time.sleep(0.1)


def traced_redis(tool_args, port, bench_args):
    """memleak-bpf TOOL_ARGS -- redis-server (Debian's redis-check-rdb through a
    symlink of that name) on port, under redis-benchmark BENCH_ARGS, then shut
    down; returns the tool's (exit status, stdout, stderr)."""
    import shutil
    import tempfile
    import time
    tmp = tempfile.mkdtemp()
    server = os.path.join(tmp, "redis-server")
    os.symlink(shutil.which("redis-check-rdb"), server)
    tool = subprocess.Popen([TOOL] + tool_args + ["--", server, "--port", port, "--save", "",
                                                  "--appendonly", "no"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_redis(port)
        bench = subprocess.run(["redis-benchmark", "-p", port, "-q"] + bench_args,
                               capture_output=True, text=True, timeout=300)
        check_eq(bench.returncode, 0, "redis-benchmark status")
        subprocess.run(["redis-cli", "-p", port, "shutdown", "nosave"], capture_output=True)
        out, err = tool.communicate(timeout=60)
    finally:
        if tool.poll() is None:
            tool.kill()
        shutil.rmtree(tmp)
    return tool.returncode, out, err
