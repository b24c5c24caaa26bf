"""Whole stacks without frame pointers: programs built as distributions build
them (-O2, no frame pointers), split debug information, inlined functions,
closed libraries, and real Debian programs (python3, redis-server)."""
import os
import re
import subprocess
import tempfile
import threading

from harness import (ROOT, TOOL, check, check_eq, reports, run_tool,
                     traced_redis, valgrind_in_use, workload)

SOURCES = os.path.join(ROOT, "tests", "workloads")


def line_of(source, text, nth=0):
    """The line number of the nth line of a workload's source holding text."""
    with open(os.path.join(SOURCES, source)) as f:
        hits = [i + 1 for i, line in enumerate(f) if text in line]
    check(len(hits) > nth, "%s has no line %r" % (source, text))
    return hits[nth]


def json_lines(stdout):
    """Our reports, without what a launched command printed to the same stdout."""
    return reports("\n".join(l for l in stdout.splitlines() if l.startswith('{"')))


def trace(argv, extra=(), env=None):
    status, out, err = run_tool(["--json", "-T", "50"] + list(extra) + ["--"] + argv, env=env)
    check_eq(status, 0, "exit status (stderr: %s)" % err.strip())
    last = json_lines(out)[-1]
    check(last["final"], "the last report is not final")
    check_eq(len(last["processes"]), 1, "processes")
    return last["processes"][0]


def stacks_from(proc, symbol):
    return [s for s in proc["stacks"] if s["frames"] and s["frames"][0]["symbol"] == symbol]


def check_frames(stack, want, what):
    """want: [(symbol, source file, line, inlined)], from the first frame on."""
    got = [(f["symbol"], os.path.basename(f["file"] or ""), f["line"], f["inlined"])
           for f in stack["frames"][:len(want)]]
    check_eq(got, want, what + " frames")
    check_eq(stack["unwind"], "cfi", what + " unwind")
    check_eq(stack["truncated"], None, what + " truncated")
    below = [f["symbol"] for f in stack["frames"][len(want):]]
    check(below[:1] == ["__libc_start_call_main"],
          "%s: below main %r, not libc's caller of main" % (what, below))


def check_deep(proc, binary):
    """tests/workloads/deep.c's leaks, each with its whole stack to main."""
    src = "deep.c"
    heap = proc["heap"]
    check_eq((heap["outstanding_bytes"], heap["outstanding_allocs"]), (4966, 6), "figures")
    deep = stacks_from(proc, "leak_deep")
    check_eq(sum(s["outstanding_bytes"] for s in deep), 300, "leak_deep bytes")
    want = [("leak_deep", src, line_of(src, "kept[nkept++] = malloc(100);"), False)]
    want += [("level%d" % k, src, line_of(src, "LEVEL(%d, " % k), False) for k in range(9, 0, -1)]
    want += [("main", src, line_of(src, "level1(3);"), False)]
    for s in deep:
        check_frames(s, want, "%s leak_deep" % binary)

    frameless = stacks_from(proc, "leak_frameless")
    check_eq([s["outstanding_bytes"] for s in frameless], [4000], "leak_frameless")
    check_frames(frameless[0], [("leak_frameless", src, line_of(src, "malloc(4000)"), False),
                                ("main", src, line_of(src, "leak_frameless();"), False)],
                 "%s leak_frameless" % binary)

    inlined = stacks_from(proc, "inlined_alloc")
    check_eq(sorted(s["outstanding_bytes"] for s in inlined), [333, 333], "inlined_alloc")
    calls = sorted(s["frames"][2]["line"] for s in inlined)
    check_eq(calls, [line_of(src, "leak_inlined();", 0), line_of(src, "leak_inlined();", 1)],
             "the two calls of leak_inlined")
    for s in inlined:
        check_frames(s, [("inlined_alloc", src, line_of(src, "void *p = malloc(n);"), True),
                         ("leak_inlined", src, line_of(src, "= inlined_alloc(333);"), False),
                         ("main", src, s["frames"][2]["line"], False)],
                     "%s inlined_alloc" % binary)


def disassembly(binary, function):
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"<%s>:\n(.*?)\n\n" % re.escape(function), out, re.S)
    check(m, "%s: no function %s" % (binary, function))
    return m.group(1)


def check_frameless(binary, function):
    """The premise: function sets up no frame pointer."""
    code = disassembly(binary, function)
    check("%rsp,%rbp" not in code, "%s sets up a frame pointer:\n%s" % (function, code))


def test_no_frame_pointers_every_leak_reaches_main():
    binary = workload("deep_nofp")
    for fn in ("leak_deep", "level5", "leak_frameless", "main"):
        check_frameless(binary, fn)
    proc = trace([binary])
    check_deep(proc, "deep_nofp")
    heap = proc["heap"]
    check_eq((heap["outstanding_bytes"], heap["outstanding_allocs"]), valgrind_in_use([binary]),
             "(bytes, blocks) against valgrind")


def test_split_debug_info_gives_the_same_stacks():
    binary = workload("deep_split")
    sections = subprocess.run(["readelf", "-S", binary], capture_output=True, text=True,
                              check=True).stdout
    check(".debug_info" not in sections and ".gnu_debuglink" in sections,
          "deep_split still holds its debug information, or has no debug link")
    check(os.path.exists(binary + ".debug"), "no separate debug file")
    check_deep(trace([binary]), "deep_split")


def test_debug_frame_in_a_separate_file_when_that_is_all_there_is():
    binary = workload("deep_dbgframe")
    # The file's own unwind information (-wN: not the debug file's)
    frames = subprocess.run(["readelf", "-wN", "--debug-dump=frames", binary],
                            capture_output=True, text=True, check=True).stdout
    check("FDE" in frames, "readelf printed no FDE")
    covered = [(int(a, 16), int(b, 16)) for a, b in re.findall(r"pc=([0-9a-f]+)\.\.([0-9a-f]+)", frames)]
    syms = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    addr = int(re.search(r"^([0-9a-f]+) T leak_deep$", syms, re.M).group(1), 16)
    check(not any(a <= addr < b for a, b in covered), "deep_dbgframe's .eh_frame covers leak_deep")
    check(".debug_frame" not in subprocess.run(["readelf", "-S", binary], capture_output=True,
                                               text=True, check=True).stdout,
          "deep_dbgframe still holds .debug_frame")
    check_deep(trace([binary]), "deep_dbgframe")


def test_template_method_called_from_a_frameless_function():
    binary = workload("cxx_template")
    check_frameless(binary, "_Z4filli")
    proc = trace([binary])
    grow = stacks_from(proc, "Pool<Item>::grow(int)")
    check_eq((sum(s["outstanding_bytes"] for s in grow), sum(s["outstanding_allocs"] for s in grow)),
             (240, 5), "Pool<Item>::grow(int) (bytes, blocks)")
    src = "cxx_template.cpp"
    for s in grow:
        check_frames(s, [("Pool<Item>::grow(int)", src, line_of(src, "held[n++] = new T();"), False),
                         ("fill(int)", src, line_of(src, "pool.grow(k);"), False),
                         ("main", src, line_of(src, "fill(5);"), False)], "new in a template")


def test_library_closed_before_the_report_is_still_named():
    lib = workload("libdlleak.so")
    # The library's table is built at the sample after it is mapped (a walk
    # in it before that is cut short: truncated "no_table"): it waits 1.5 s.
    # It is closed, and 6 s later the process exits: its table is gone by then.
    status, out, err = run_tool(["--json", "-T", "50", "1", "--", workload("dlopen_leak"), lib,
                                 "1500", "6000"])
    check_eq(status, 0, "exit status (stderr: %s)" % err.strip())
    rs = json_lines(out)
    proc = rs[-1]["processes"][0]
    src = "dlleak.c"
    leaks = stacks_from(proc, "dl_leak")
    check_eq((sum(s["outstanding_bytes"] for s in leaks), sum(s["outstanding_allocs"] for s in leaks)),
             (2331, 3), "dl_leak (bytes, blocks)")
    for s in leaks:
        check_eq(s["frames"][0]["module"], lib, "module of dl_leak")
        check_frames(s, [("dl_leak", src, line_of(src, "malloc(777)"), False),
                         ("main", "dlopen_leak.c", line_of("dlopen_leak.c", "leak();"), False)],
                     "dl_leak")
    own = stacks_from(proc, "main")
    check_eq([s["outstanding_bytes"] for s in own], [55], "main's own leak")
    # The library's table: built while it was mapped, freed once it was not.
    tables = [(r["unwind_tables"]["objects"], r["unwind_tables"]["rows"]) for r in rs]
    most = max(tables)
    check(most[0] >= 4 and most[1] > 10000, "tables: %r" % tables)
    after = tables[tables.index(most):]
    freed = [t for t in after if t[0] == most[0] - 1 and t[1] < most[1]]
    check(freed, "the closed library's table was not freed: %r" % tables)
    # The others stay while the process maps them.
    check_eq(after[after.index(freed[0]):], [freed[0]] * (len(after) - after.index(freed[0])),
             "tables after the library's was freed")

def test_threads_growing_their_heaps_keep_whole_stacks():
    """Four frameless threads keep 250 blocks each while their arenas grow
    and shrink (the memory map's lock taken as a writer): every block on the
    whole stack, in each of 3 runs."""
    src = "thread_leak.c"
    want = [("thread_leak", src, line_of(src, "void *p = malloc(40);"), False),
            ("worker", src, line_of(src, "kept[t][i] = thread_leak();"), False)]
    for run in range(3):
        proc = trace([workload("thread_leak")], extra=["-T", "1000"])
        leaks = stacks_from(proc, "thread_leak")
        check_eq(sum(s["outstanding_allocs"] for s in leaks), 1000, "run %d: blocks" % run)
        for s in leaks:
            got = [(f["symbol"], os.path.basename(f["file"] or ""), f["line"], f["inlined"])
                   for f in s["frames"][:2]]
            check_eq(got, want, "run %d: frames" % run)
            check_eq(s["truncated"], None, "run %d: truncated" % run)
            check_eq([f["symbol"] for f in s["frames"][2:]], ["start_thread", "__clone3"],
                     "run %d: below worker" % run)


def test_one_site_from_two_callers_keeps_each_callers_stack():
    """The same allocation site, stack pointer and frame pointer under two
    callers, alternately: a thread's remembered walk must not be taken for
    the other caller's. 3,000 x 24 B from from_a, 1,500 x 40 B from from_b."""
    src = "two_callers.c"
    site = ("site", src, line_of(src, "void *p = malloc(n);"))
    want = {"from_a": (72000, 3000, line_of(src, "void *p = site(24);"),
                       line_of(src, "kept_a[i] = from_a();")),
            "from_b": (60000, 1500, line_of(src, "void *p = site(40);"),
                       line_of(src, "kept_b[i / 2] = from_b();"))}
    proc = trace([workload("two_callers")], extra=["-T", "10"])
    leaks = stacks_from(proc, "site")
    check_eq(len(leaks), 2, "stacks from site")
    for s in leaks:
        got = [(f["symbol"], os.path.basename(f["file"] or ""), f["line"]) for f in s["frames"][:3]]
        caller = got[1][0]
        check(caller in want, "caller %r of site" % caller)
        size, blocks, at, in_main = want[caller]
        check_eq((s["outstanding_bytes"], s["outstanding_allocs"]), (size, blocks), caller)
        check_eq(got, [site, (caller, src, at), ("main", src, in_main)], caller + ": frames")
        check_eq(s["truncated"], None, caller + ": truncated")


def test_perl_and_gawk_stacks_never_cut_by_a_locked_map():
    for argv in (["perl", "-e", 'my @k; for my $i (1..200000) { push @k, "x" x (10 + $i % 50);'
                  ' pop @k if $i % 3 == 0 } print scalar(@k), "\\n";'],
                 ["gawk", 'BEGIN { for (i = 0; i < 200000; i++) a[i] = sprintf("%d-%s", i, "ab");'
                  ' print length(a) }']):
        proc = trace(argv, extra=["-T", "10000"])
        check(len(proc["stacks"]) >= 5, "%s: only %d stacks" % (argv[0], len(proc["stacks"])))
        cut = [s["truncated"] for s in proc["stacks"] if s["truncated"] not in (None, "depth")]
        check_eq(cut, [], "%s: stacks cut" % argv[0])


def addr2line_frames(module, addr):
    """addr2line -i's frames at a file address: [(function, file, line)],
    the innermost first. LLVM's: binutils' 2.40 takes a DWARF 5 line
    table's file 0 for file 1 (glibc's __libc_start_call_main, in
    libc_start_call_main.h, comes out in libc-start.c)."""
    out = subprocess.run(["llvm-addr2line", "-i", "-f", "-e", module, "%#x" % addr],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    frames = []
    for name, where in zip(out[0::2], out[1::2]):
        file, _, line = where.split(" ")[0].rpartition(":")
        frames.append((name, "" if file == "??" else os.path.basename(file),
                       int(line) if line.isdigit() else 0))
    return frames


def plain(symbol):
    """A function's name without its symbol version or leading underscores
    (an ELF symbol may be an alias of the name DWARF gives)."""
    return "" if symbol in (None, "??") else symbol.split("@")[0].lstrip("_")


def check_inlined_as_addr2line(argv, wanted, what):
    """Trace argv (which waits for the end of its input) until a report
    holds stacks through a function of wanted; then each of their return
    addresses gives the frames addr2line -i gives, innermost first, with the
    same lines (names: the same, or aliases for the function holding them)."""
    tool = subprocess.Popen([TOOL, "--json", "-T", "10000", "0.5", "--"] + argv,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # No such report in a minute: the command's input ends, so does the run.
    watchdog = threading.Timer(60, tool.stdin.close)
    watchdog.start()
    try:
        proc = None
        for line in tool.stdout:
            if not line.startswith('{"type":"report"'):
                continue
            procs = reports(line)[0]["processes"]
            if procs and any(reaches(s, wanted) for s in procs[0]["stacks"]):
                proc = procs[0]
                break
        check(proc, "%s: no report with a stack through %s" % (what, sorted(wanted)))
        with open("/proc/%d/maps" % proc["pid"]) as f:
            maps = [l.split() for l in f if len(l.split()) >= 6]
        compared = 0
        for s in (s for s in proc["stacks"] if reaches(s, wanted)):
            groups = {}
            for f in s["frames"]:
                groups.setdefault(f["addr"], []).append(f)
            for addr, frames in groups.items():
                a = int(addr, 16)
                area = [m for m in maps if int(m[0].split("-")[0], 16) <= a - 1 <
                        int(m[0].split("-")[1], 16)]
                check(area, "%s: %s in no area" % (what, addr))
                start, off, module = int(area[0][0].split("-")[0], 16), int(area[0][2], 16), \
                    area[0][5]
                want = addr2line_frames(module, a - 1 - start + off)
                got = [(f["symbol"], os.path.basename(f["file"] or ""), f["line"] or 0)
                       for f in frames]
                check_eq([(g[1], g[2]) for g in got], [(w[1], w[2]) for w in want],
                         "%s: files and lines at %s" % (what, addr))
                check_eq([g[0] for g in got[:-1]], [w[0] for w in want[:-1]],
                         "%s: inlined functions at %s" % (what, addr))
                check_eq(plain(got[-1][0]), plain(want[-1][0]),
                         "%s: the function holding %s" % (what, addr))
                compared += 1
        check(compared >= 3, "%s: only %d addresses compared" % (what, compared))
    finally:
        watchdog.cancel()
        tool.stdin.close()
        tool.stdout.read()
        err = tool.stderr.read()
        tool.wait(timeout=60)
    check_eq(tool.returncode, 0, "%s: exit status (stderr: %s)" % (what, err.strip()))


def test_nested_inlining_equals_addr2line():
    src = "inline_nest.c"
    check_inlined_as_addr2line([workload("inline_nest")], {"middle"}, "inline_nest")
    proc = trace([workload("inline_nest")])
    leaks = stacks_from(proc, "inner")
    check_eq(sum(s["outstanding_bytes"] for s in leaks), 216, "inner's bytes")
    for s in leaks:
        check_frames(s, [("inner", src, line_of(src, "inner's call of malloc"), True),
                         ("middle", src, line_of(src, "middle's call of inner"), True),
                         ("outer", src, line_of(src, "outer's call of middle"), False),
                         ("main", src, line_of(src, "outer(i);"), False)], "inner")


def test_glibc_nss_chain_equals_addr2line():
    """sqlite3 looks up its user (getpwuid: glibc's nss, inlined two and
    three deep) before it reads its input."""
    check_inlined_as_addr2line(["sqlite3", ":memory:"], {"nss_database_check_reload_and_get"},
                               "sqlite3")


def test_stack_deeper_than_kept_says_so():
    proc = trace([workload("recurse")])
    (s,) = [s for s in proc["stacks"] if s["outstanding_bytes"] == 64]
    check_eq((len(s["frames"]), s["truncated"]), (64, "depth"), "(frames, truncated)")
    check_eq({f["symbol"] for f in s["frames"]}, {"down"}, "symbols")


def test_frame_pointer_walk_is_labelled():
    proc = trace([workload("deep_fp")], env={"MEMLEAK_BPF_UNWIND": "fp"})
    check(proc["stacks"] and all(s["unwind"] == "fp" for s in proc["stacks"]),
          "unwind: %r" % [s["unwind"] for s in proc["stacks"]])


def reaches(stack, names):
    return any(f["symbol"] in names for f in stack["frames"])


def test_python3_stacks_reach_main():
    script = ("keep = []\n"
              "def grow(n):\n"
              "    for i in range(n):\n"
              "        keep.append(bytearray(1000 + i % 7))\n"
              "grow(20000)\n"
              "import time; time.sleep(2.5)\n")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(script)
    try:
        status, out, err = run_tool(["--json", "-T", "20", "1", "--", "/usr/bin/python3", f.name])
    finally:
        os.unlink(f.name)
    check_eq(status, 0, "exit status (stderr: %s)" % err.strip())
    # While it sleeps: the report holding the most (the last one before the
    # final may already fall in the interpreter's teardown, freeing the list).
    mid = [r for r in json_lines(out) if not r["final"] and r["processes"]]
    check(mid, "no report while the script ran")
    proc = max((r["processes"][0] for r in mid), key=lambda p: p["heap"]["outstanding_bytes"])
    # The largest (stacks come suspects first, by growth).
    top = max(proc["stacks"], key=lambda st: st["outstanding_bytes"])
    check(top["outstanding_bytes"] >= 10 * 1000 * 1000, "top stack: %r" % top["outstanding_bytes"])
    check(reaches(top, {"_PyEval_EvalFrameDefault"}) and reaches(top, {"Py_RunMain"}),
          "the list's stack does not pass through the interpreter's loop to Py_RunMain: %r"
          % [f["symbol"] or f["addr"] for f in top["frames"]])
    whole = [s for s in proc["stacks"] if reaches(s, {"Py_BytesMain"}) and
             s["frames"][-1]["symbol"] == "_start" and s["truncated"] is None]
    check_eq(len(whole), len(proc["stacks"]), "stacks reaching main (through Py_BytesMain)")


def test_redis_server_stacks_reach_main():
    status, out, err = traced_redis(["--json", "-T", "30"], "6391",
                                    ["-n", "3000", "-t", "set,lpush", "-r", "1000"])
    check_eq(status, 0, "exit status (stderr: %s)" % err.strip())
    proc = json_lines(out)[-1]["processes"][0]
    check(len(proc["stacks"]) >= 10, "only %d stacks" % len(proc["stacks"]))
    # Libraries' constructors allocate before main, from the dynamic linker.
    short = [[f["symbol"] or f["addr"] for f in s["frames"]] for s in proc["stacks"]
             if s["truncated"] is not None or not (reaches(s, {"main"}) or
                                                   reaches(s, {"_dl_init"}))]
    check_eq(short, [], "stacks that do not reach main")
    check(any(reaches(s, {"setKey"}) and reaches(s, {"aeMain"}) for s in proc["stacks"]),
          "no SET stack through aeMain")
