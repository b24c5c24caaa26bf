"""System-wide watching with -k: a steady server, a leaking one, a process that
leaks kernel memory (pipes it never closes, a page written into each), one whose
RSS climbs with a file it reads through (page cache, not a leak) and a cache that
fills for 15 s and then holds, all started after tracing began. The leaking one is named a leak and, once its allocator is
probed, drip() is its only suspect stack; the steady one and the file reader never
(nor is the reader probed); the cache is probed while it fills and unprobed once
steady again; the pipe holder's kernel bytes grow at the rate of its pipes."""
import subprocess
import tempfile
import time

from harness import TOOL, check, check_eq, reports, workload

RUN_S = 50
PIPES_PER_S = 10
PAGE = 4096


def trace_system_wide():
    out_file = tempfile.TemporaryFile(mode="w+")  # read at the end: a pipe would fill
    tool = subprocess.Popen([TOOL, "--exact", "-k", "--json", "--max-procs", "100000", "1"],
                            stdout=out_file, stderr=subprocess.PIPE, text=True)
    try:
        check("watching" in tool.stderr.readline(), "tool did not start watching")
        steady = subprocess.Popen([workload("server_like"), str(RUN_S)])
        leaky = subprocess.Popen([workload("server_like"), str(RUN_S), "6"])
        pipes = subprocess.Popen([workload("pipe_holder"), str(RUN_S)])
        reader = subprocess.Popen([workload("map_reader"), str(RUN_S)])
        cache = subprocess.Popen([workload("fill_then_hold"), "15", str(RUN_S)])
        for p in (steady, leaky, pipes, reader, cache):
            p.wait(timeout=RUN_S + 30)
        time.sleep(1.5)
    finally:
        tool.send_signal(2)
        _, err = tool.communicate(timeout=60)
    out_file.seek(0)
    check_eq(tool.returncode, 0, "exit status: " + err[-500:])
    return (reports(out_file.read()), steady.pid, leaky.pid, pipes.pid, reader.pid, cache.pid,
            err)


def history(rs, pid):
    """The process's entries, from its first report to its last alive and
    the one that saw it gone: a pid taken again later (pid_max wraps on a
    busy machine) is another process."""
    out = []
    for p in (p for r in rs for p in r["processes"] if p["pid"] == pid):
        out.append(p)
        if not p["alive"]:
            break
    return out


def test_system_wide_kernel_and_watch():
    rs, steady, leaky, pipes, reader, cache, err = trace_system_wide()
    check(all("kernel_bytes" in p for r in rs for p in r["processes"]), "kernel_bytes missing")
    check(any(p["pid"] == 0 and p["comm"] == "[kernel]" for p in rs[-1]["processes"]),
          "no line for the kernel's own allocations")

    s, l, k, f = (history(rs, pid) for pid in (steady, leaky, pipes, reader))
    check(s and l and k and f, "processes started after tracing were not picked up")
    check_eq([p["verdict"]["state"] for p in s if p["verdict"]["state"] == "leak"], [],
             "leak verdicts for the steady server")
    check(max(p["rss_bytes"] for p in f) > 200 << 20,
          "the file reader's RSS did not climb: %r" % [p["rss_bytes"] for p in f[-4:]])
    check_eq([p["verdict"]["state"] for p in f if p["verdict"]["state"] in ("leak", "growing")],
             [], "verdicts for the file reader")
    check("pid %d" % reader not in err, "the file reader was probed: " + err[-500:])
    c = [p for p in history(rs, cache) if p["alive"]]
    check("pid %d (fill_then_hold) left its steady band" % cache in err
          and "pid %d (fill_then_hold) is steady again" % cache in err,
          "the filling cache was not probed and then unprobed: " + err[-800:])
    check_eq((c[-1]["verdict"]["state"], c[-1]["probed"]), ("steady", False),
             "the cache once it holds")
    check(any(p["verdict"]["state"] == "leak" for p in l),
          "the leaking server was never called a leak: %r" % [p["verdict"] for p in l[-3:]])
    check("pid %d (server_like) left its steady band" % leaky in err,
          "the leaking server's allocator was not probed: " + err[-500:])
    suspects = {st["frames"][0]["symbol"] for p in l for st in p["stacks"]
                if st["suspect"] and st["frames"] and not st["kernel"]}
    check_eq(suspects, {"drip"}, "the leaking server's suspect stacks")

    # Pipe holder: its last report while alive, RUN_S * PIPES_PER_S pipes at most.
    last = [p for p in k if p["alive"]][-1]
    rate = last["kernel_growth_bytes_per_s"]
    check(PIPES_PER_S * PAGE <= rate <= 3 * PIPES_PER_S * PAGE,
          "pipe holder's kernel growth %.0f B/s, expected 40-120 KiB/s" % rate)
    pages = [st for st in last["stacks"] if st["kernel"] and st["frames"]
             and st["frames"][0]["symbol"] in ("anon_pipe_write", "pipe_write")]
    check_eq(len(pages), 1, "stacks writing pipe pages")
    blocks = pages[0]["outstanding_allocs"]
    check_eq(pages[0]["outstanding_bytes"], blocks * PAGE, "pipe pages' bytes")
    check(RUN_S * PIPES_PER_S * 0.7 <= blocks <= RUN_S * PIPES_PER_S,
          "pipe pages held: %d" % blocks)
    check(pages[0]["suspect"], "the pipe pages' stack is not a suspect: growth %.0f B/s, "
          "oldest %.1f s, %d reports of it while alive; the tool said of it: %s" % (
              pages[0]["growth_bytes_per_s"], pages[0]["oldest_age_s"],
              sum(1 for p in k if p["alive"] and any(
                  st["kernel"] and st["frames"] and st["frames"][0]["symbol"] in
                  ("anon_pipe_write", "pipe_write") for st in p["stacks"])),
              [l for l in err.splitlines() if "pid %d " % pipes in l]))
