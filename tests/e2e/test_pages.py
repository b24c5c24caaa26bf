"""Pages mode (--pages): resident anonymous pages counted to the stack that
brought them in, from the kernel's page events, with no allocator probe."""
import subprocess
import tempfile
import time

from harness import Lines, TOOL, check, check_eq, reports, run_tool, traced_redis, workload
from test_system import entries_owned

PAGE = 4096
DRIP = workload("page_drip")
EVENTS = workload("page_events")


def through(stack, fn):
    return any(f["symbol"] == fn for f in stack["frames"])


def check_shape(rs):
    """Every report's processes are in pages mode, and their stacks add up."""
    check(rs, "no report")
    for r in rs:
        for p in r["processes"]:
            check_eq(p["mode"], "pages", "mode of pid %d" % p["pid"])
            total = p["pages"]["resident_bytes"]
            check_eq(p["pages"]["pages"] * PAGE, total, "pages of pid %d" % p["pid"])
            listed = 0
            for s in p["stacks"]:
                check_eq(s["source"], "pages", "a stack's source")
                check_eq(s["resident_bytes"], s["outstanding_bytes"], "resident bytes")
                check_eq(s["pages"] * PAGE, s["resident_bytes"], "a stack's pages")
                listed += s["resident_bytes"]
            check_eq(listed + p["stacks_rest"]["outstanding_bytes"] +
                     p["no_stack"]["outstanding_bytes"], total,
                     "stacks, the rest and no_stack against the resident bytes (seq %d)"
                     % r["seq"])
            if not p["alive"]:  # nothing moves any more: the totals agree
                check_eq(total, p["heap"]["outstanding_bytes"],
                         "resident bytes of exited pid %d against its totals" % p["pid"])


def test_pages_drip_is_the_growing_stack():
    """page_drip: a churning 16 MiB cache, 16 MiB bursts every 2 s, and from
    its 6th second a 640 KiB/s drip of 16 KiB blocks, each written whole. The
    drip's stacks (its memset, and malloc's own writes at its call) hold what
    it wrote; the fastest-growing stack is the drip's; the cache and the
    bursts are never suspects."""
    with tempfile.NamedTemporaryFile(mode="r") as out:
        status, stdout, err = run_tool(["--pages", "--json", "--output", out.name, "1", "--",
                                        DRIP, "24", "6"], timeout=90)
        check_eq(status, 0, "exit status: " + err[-800:])
        rs = reports(out.read())
    written = int(stdout.split()[1]) * 16384
    check(written > 16 * 16384 * 40, "the drip wrote only %d bytes" % written)
    check_shape(rs)
    for r in rs:
        for s in r["processes"][0]["stacks"]:
            check(not (s["suspect"] and (through(s, "cache_put") or through(s, "burst_load"))),
                  "a cache or burst stack called a suspect at %.1f s" % r["elapsed_s"])
    p = rs[-1]["processes"][0]
    # What comes back is seen going: at most one burst (4 x 4 MiB) and the
    # cache (16 MiB) are held at any time.
    for fn in ("burst_load", "cache_put"):
        held = sum(s["resident_bytes"] for s in p["stacks"] if through(s, fn))
        check(held <= (16 << 20) + 64 * PAGE, "%s's stacks hold %d bytes at the end" % (fn, held))
    drips = [s for s in p["stacks"] if through(s, "drip")]
    held = sum(s["resident_bytes"] for s in drips)
    check(0.8 * written <= held <= written + 16 * PAGE,
          "the drip's stacks hold %d of the %d bytes it wrote" % (held, written))
    fastest = max(p["stacks"], key=lambda s: s["growth_bytes_per_s"])
    check(through(fastest, "drip") and fastest["suspect"],
          "the fastest-growing stack is not the drip's: %r"
          % [f["symbol"] for f in fastest["frames"]])
    check(all(s["suspect"] for s in drips if s["resident_bytes"] > 0.1 * written),
          "a drip stack holding over a tenth of it is not a suspect")
    # memset and malloc's writes are the allocator library's: the stacks start
    # at their caller.
    check(all(s["frames"][0]["symbol"] == "drip" for s in drips),
          "a drip stack does not start at drip: %r" % [s["frames"][0] for s in drips])


def rss_anon(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon for pid %d" % pid)


def test_pages_follow_cow_madvise_munmap_and_huge_pages():
    """page_events: a fork's copy-on-write, MADV_DONTNEED and a touch again,
    an unmapped region, and huge pages: each function's resident pages are
    exactly what it brought in and is still there, and they add up to the
    process's anonymous RSS."""
    with tempfile.NamedTemporaryFile(mode="r") as out:
        tool = subprocess.Popen([TOOL, "--pages", "--json", "--output", out.name, "1", "--",
                                 EVENTS, "huge"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ready = tool.stdout.readline().split()
            check(ready and ready[0] == "ready", "page_events did not start: %r" % ready)
            anon = rss_anon(int(ready[1]))
            tool.stdin.write("\n")
            tool.stdin.close()
            tool.wait(timeout=60)
        finally:
            if tool.poll() is None:
                tool.kill()
        err = tool.stderr.read()
        check_eq(tool.returncode, 0, "exit status: " + err[-800:])
        rs = reports(out.read())
    check_shape(rs)
    p = rs[-1]["processes"][0]
    held = {}
    for s in p["stacks"] + []:
        fn = s["frames"][0]["symbol"] if s["frames"] else None
        held[fn] = held.get(fn, 0) + s["resident_bytes"]
    want = {"rewrite_a": 512 * PAGE, "retouch_a": 512 * PAGE, "touch_huge": 1024 * PAGE}
    for fn, n in want.items():
        check_eq(held.get(fn, 0), n, "resident bytes brought in by %s" % fn)
    for fn in ("touch_a", "touch_b"):
        check_eq(held.get(fn, 0), 0, "resident bytes of %s (copied, dropped or unmapped)" % fn)
    check_eq(rs[-1]["dropped"]["pages_split"], 0, "huge pages split")
    total = p["pages"]["resident_bytes"]
    # The pages the kernel made before the program's first instruction (its
    # stack's, at exec) are the old program's.
    check(anon - 64 * PAGE <= total <= anon,
          "%d bytes attributed, %d of anonymous RSS" % (total, anon))


def test_pages_of_a_pid_leave_the_tables_when_it_exits():
    """-p A,B --pages: A's drip shows from the attach on; once A exits, its
    pages and totals leave the maps while B is still traced."""
    a = subprocess.Popen([DRIP, "6", "0"], stdout=subprocess.DEVNULL)
    b = subprocess.Popen([DRIP, "40", "0"], stdout=subprocess.DEVNULL)
    out = tempfile.NamedTemporaryFile(mode="r")
    tool = None
    try:
        time.sleep(1)
        tool = subprocess.Popen([TOOL, "--pages", "--json", "--output", out.name, "-p",
                                 "%d,%d" % (a.pid, b.pid), "1"],
                                stderr=subprocess.PIPE, text=True)
        check("counting the resident pages of 2 processes" in tool.stderr.readline(),
              "the tool did not start")
        a.wait(timeout=30)
        deadline = time.time() + 20
        while True:
            time.sleep(1.5)
            left = {m: entries_owned(m, {a.pid})
                    for m in ("blocks", "procs", "stack_counts", "page_procs")}
            if not any(left.values()) or time.time() > deadline:
                break
        check(not any(left.values()), "A left entries behind: %r" % left)
        check(entries_owned("blocks", {b.pid}) > 0, "B's pages are not in the table")
    finally:
        if tool:
            tool.send_signal(2)
            tool.wait(timeout=60)
        b.kill()
        b.wait()
    check_eq(tool.returncode, 0, "exit status")
    rs = reports(out.read())
    out.close()
    check_shape(rs)
    seen_a = [p for r in rs for p in r["processes"] if p["pid"] == a.pid]
    check(any(through(s, "drip") for p in seen_a for s in p["stacks"]),
          "A's drip was never shown")
    check(any(not p["alive"] for p in seen_a), "A's exit was never reported")
    final_b = [p for p in rs[-1]["processes"] if p["pid"] == b.pid]
    check(final_b and any(through(s, "drip") for s in final_b[0]["stacks"]),
          "B's drip is not in the final report")


def test_pages_usage_errors():
    for args, what in ((["--pages", "--exact"], "cannot be combined with --exact"),
                       (["--pages", "--all-stacks"], "cannot be combined with --all-stacks"),
                       (["--exact", "--", "/bin/true"], "--exact is for system-wide tracing"),
                       (["--pages", "--lib", "/lib/x86_64-linux-gnu/libc.so.6", "--",
                         "/bin/true"], "--lib cannot be combined")):
        status, _, err = run_tool(args)
        check_eq(status, 2, "exit status of %r" % args)
        check(what in err and len(err.strip().splitlines()) == 1,
              "%r: not one clear line: %r" % (args, err))


def reaches(stack, names):
    return any(f["symbol"] in names for f in stack["frames"])


def test_pages_python3_growing_list_reaches_main():
    """Debian's python3 keeping a growing list: the stack that brings the
    list's memory in passes through the interpreter's loop and reaches main."""
    script = ("import time\n"
              "keep = []\n"
              "def grow():\n"
              "    for i in range(400):\n"
              "        keep.append(bytearray(4000))\n"
              "t0 = time.time()\n"
              "while time.time() - t0 < 4:\n"
              "    grow()\n"
              "    time.sleep(0.02)\n"
              "time.sleep(2)\n")
    with tempfile.NamedTemporaryFile("w", suffix=".py") as f, \
            tempfile.NamedTemporaryFile(mode="r") as out:
        f.write(script)
        f.flush()
        status, _, err = run_tool(["--pages", "--json", "-T", "20", "--output", out.name, "1",
                                   "--", "/usr/bin/python3", f.name])
        check_eq(status, 0, "exit status: " + err[-800:])
        rs = reports(out.read())
    check_shape(rs)
    # While it sleeps (the final report may fall in the interpreter's teardown,
    # which frees the list).
    mid = [r["processes"][0] for r in rs if not r["final"] and r["processes"]]
    check(mid, "no report while the script ran")
    proc = max(mid, key=lambda p: p["pages"]["resident_bytes"])
    top = max(proc["stacks"], key=lambda s: s["resident_bytes"])
    check(top["resident_bytes"] >= 20 << 20, "top stack holds %d bytes" % top["resident_bytes"])
    check(reaches(top, {"_PyEval_EvalFrameDefault"}) and reaches(top, {"Py_BytesMain"}) and
          top["frames"][-1]["symbol"] == "_start" and top["truncated"] is None,
          "the list's stack does not pass the interpreter's loop to main: %r"
          % [f["symbol"] or f["addr"] for f in top["frames"]])


def test_pages_redis_new_keys_reach_main():
    """Debian's redis-server taking ever-new keys: the stacks holding them
    name the keys' path (createStringObject, dbAdd) and reach main."""
    with tempfile.NamedTemporaryFile(mode="r") as out:
        status, _, err = traced_redis(["--pages", "--json", "-T", "20", "--output", out.name,
                                       "2"], "6392",
                                      ["-n", "60000", "-t", "set", "-r", "10000000", "-d", "200"])
        check_eq(status, 0, "exit status: " + err[-800:])
        rs = reports(out.read())
    check_shape(rs)
    proc = rs[-1]["processes"][0]
    keys = [s for s in proc["stacks"] if reaches(s, {"createStringObject", "dbAdd"})]
    held = sum(s["resident_bytes"] for s in keys)
    check(held >= proc["pages"]["resident_bytes"] // 2,
          "the keys' stacks hold %d of %d bytes" % (held, proc["pages"]["resident_bytes"]))
    check(all(reaches(s, {"main"}) and s["truncated"] is None for s in keys),
          "a key stack does not reach main: %r"
          % [[f["symbol"] for f in s["frames"]] for s in keys if not reaches(s, {"main"})])


def test_system_wide_default_counts_the_pages_of_a_growing_process():
    """System-wide with default options: page_drip, among idle processes,
    leaves its band and gets its pages counted, not its allocator probed; its
    drip's stacks become the suspects. The idle ones stay watched."""
    out = tempfile.NamedTemporaryFile(mode="r")
    tool = subprocess.Popen([TOOL, "--json", "--max-procs", "100000", "1"],
                            stdout=open(out.name, "w"),
                            stderr=subprocess.PIPE, text=True)
    idle, drip = [], None
    try:
        err = Lines(tool.stderr)
        err.wait_for("resident pages are counted when a curve leaves its band", 30)
        idle = [subprocess.Popen(["sleep", "60"]) for _ in range(5)]
        drip = subprocess.Popen([DRIP, "40", "3"], stdout=subprocess.DEVNULL)
        err.wait_for("pid %d (page_drip) left its steady band: counting its resident pages"
                     % drip.pid, 40)
        deadline = time.time() + 30
        while time.time() < deadline:
            time.sleep(2)
            text = open(out.name).read()
            rs = reports(text[:text.rfind("\n") + 1])  # whole lines only
            mine = [p for p in rs[-1]["processes"] if p["pid"] == drip.pid] if rs else []
            if mine and any(s["suspect"] and through(s, "drip") for s in mine[0]["stacks"]):
                break
    finally:
        tool.send_signal(2)
        tool.wait(timeout=60)
        for p in idle + ([drip] if drip else []):
            p.kill()
            p.wait()
    check_eq(tool.returncode, 0, "exit status")
    rs = reports(open(out.name).read())
    out.close()
    hist = [p for r in rs for p in r["processes"] if p["pid"] == drip.pid]
    check(hist and hist[-1]["mode"] == "pages", "page_drip is not in pages mode: %r"
          % (hist[-1]["mode"] if hist else None))
    check(not hist[-1]["probed"], "page_drip's allocator was probed")
    check_shape([{"seq": r["seq"], "processes": [p for p in r["processes"]
                                                 if p["mode"] == "pages"]} for r in rs])
    suspects = {s["frames"][0]["symbol"] for p in hist for s in p["stacks"] if s["suspect"]}
    check_eq(suspects, {"drip"}, "page_drip's suspect stacks")
    for p in idle:
        modes = {q["mode"] for r in rs for q in r["processes"] if q["pid"] == p.pid}
        check_eq(modes, {"watched"}, "modes of idle pid %d" % p.pid)
