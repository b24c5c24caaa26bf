"""--pprof and --folded, read by the tools that read them: the real
`go tool pprof` finds each leaking function with its exact outstanding bytes,
and the folded stacks sum to the JSON report's figures."""
import os
import re
import subprocess
import tempfile
import time

from harness import TOOL, check, check_eq, final_process, run_tool, workload

# tests/workloads/leaky_all.c: function -> (bytes, blocks)
LEAKS = {"leak_malloc": (300, 3), "leak_calloc": (448, 4), "leak_realloc": (1300, 6),
         "leak_reallocarray": (480, 2), "leak_posix_memalign": (768, 3),
         "leak_aligned_alloc": (1024, 2), "leak_memalign": (768, 2), "leak_valloc": (1000, 1),
         "leak_pvalloc": (4096, 1)}


def pprof_top(path, index, unit):
    """`go tool pprof -top`: ({function: flat}, total) for one sample type."""
    home = tempfile.mkdtemp()
    p = subprocess.run(["go", "tool", "pprof", "-top", "-nodecount=1000", "-sample_index=" + index,
                        "-unit=" + unit, path], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, HOME=home, GOCACHE=os.path.join(home, "cache")))
    check_eq(p.returncode, 0, "go tool pprof status (stderr: %s)" % p.stderr.strip())
    total = re.search(r"Total samples = (\d+)", p.stdout)
    check(total, "no total in go tool pprof's output:\n" + p.stdout)
    flat = {}
    for line in p.stdout.splitlines():
        m = re.match(r"\s*(\d+)\S*\s+\S+%\s+\S+%\s+\S+\s+\S+%\s+(.+)$", line)
        if m:
            flat[m.group(2).strip()] = int(m.group(1))
    check(flat, "go tool pprof listed no function:\n" + p.stdout)
    return flat, int(total.group(1)), p.stdout


def test_go_tool_pprof_finds_each_leak_exactly():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "heap.pb.gz")
        status, out, err = run_tool(["--json", "--pprof", path, "--", workload("leaky_all")])
        check_eq(status, 0, "exit status (stderr: %s)" % err.strip())
        proc = final_process(out)
        flat, total, text = pprof_top(path, "inuse_space", "B")
        for fn, (nbytes, _) in LEAKS.items():
            check_eq(flat.get(fn), nbytes, "%s inuse_space in go tool pprof -top" % fn)
        check_eq(total, proc["heap"]["outstanding_bytes"], "pprof's total against the heap")
        flat, total, _ = pprof_top(path, "inuse_objects", "")
        for fn, (_, blocks) in LEAKS.items():
            check_eq(flat.get(fn), blocks, "%s inuse_objects" % fn)
        check_eq(total, proc["heap"]["outstanding_allocs"], "pprof's objects against the heap")
        _, total, _ = pprof_top(path, "alloc_objects", "")
        check_eq(total, proc["heap"]["allocs"], "pprof's alloc_objects against every allocation")
        print(text)


def folded_frame(f):
    """A JSON frame as --folded names it."""
    if f["symbol"]:
        return f["symbol"].replace(";", "_")
    return "[%s]" % (os.path.basename(f["module"]) if f["module"] else "unknown")


def read_folded(path):
    lines = {}
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            check(stack and n.isdigit(), "not a folded line: %r" % line)
            lines[stack] = lines.get(stack, 0) + int(n)
    return lines


def test_folded_stacks_sum_to_the_json_figures():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "heap.folded")
        status, out, err = run_tool(["--json", "-T", "10000", "--folded", path, "--",
                                     workload("leaky_all")])
        check_eq(status, 0, "exit status (stderr: %s)" % err.strip())
        proc = final_process(out)
        folded = read_folded(path)
        want = {}
        for s in proc["stacks"]:
            key = ";".join([proc["comm"]] + [folded_frame(f) for f in reversed(s["frames"])])
            want[key] = want.get(key, 0) + s["outstanding_bytes"]
        rest = proc["stacks_rest"]["outstanding_bytes"] + proc["no_stack"]["outstanding_bytes"]
        if rest:
            want[proc["comm"] + ";[no stack listed]"] = rest
        check_eq(folded, want, "folded stacks against the JSON report's stacks")
        check_eq(sum(folded.values()), proc["heap"]["outstanding_bytes"], "folded total")
        leak = [k for k in folded if k.endswith(";leak_valloc")]
        check(len(leak) == 1 and folded[leak[0]] == 1000 and ";main;" in leak[0],
              "leak_valloc's line: %r" % leak)


def test_profiles_are_rewritten_at_each_report():
    """Read while the demo (buggy from its first request, 16,000 of them)
    still runs: both files hold its leak so far, and grow to the exact
    figure at exit (parse_header: 1,600 x 256 B)."""
    with tempfile.TemporaryDirectory() as d:
        pprof, folded = os.path.join(d, "heap.pb.gz"), os.path.join(d, "heap.folded")
        tool = subprocess.Popen([TOOL, "--pprof", pprof, "--folded", folded, "1", "--",
                                 workload("demo_leaky"), "16000", "1"],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            mid = 0
            deadline = time.time() + 12
            while time.time() < deadline and not mid:
                time.sleep(0.5)
                lines = read_folded(folded) if os.path.exists(folded) else {}
                mid = sum(v for k, v in lines.items() if k.endswith(";parse_header"))
            check(0 < mid < 409600, "mid-run folded parse_header bytes: %d" % mid)
            flat, _, _ = pprof_top(pprof, "inuse_space", "B")
            check(0 < flat.get("parse_header", 0) < 409600,
                  "mid-run pprof parse_header: %r" % flat.get("parse_header"))
            check_eq(tool.wait(timeout=60), 0, "exit status")
        finally:
            if tool.poll() is None:
                tool.kill()
        lines = read_folded(folded)
        check_eq(sum(v for k, v in lines.items() if k.endswith(";parse_header")), 409600,
                 "final folded parse_header bytes")
        flat, _, _ = pprof_top(pprof, "inuse_space", "B")
        check_eq(flat.get("parse_header"), 409600, "final pprof parse_header bytes")
        check(not [f for f in os.listdir(d) if f.endswith(".tmp")], "a .tmp file left behind")


def test_profile_paths_that_cannot_be_written():
    for opt in ("--pprof", "--folded"):
        status, out, err = run_tool([opt, "/nonexistent/dir/heap", "--", "/bin/true"])
        check_eq(status, 1, "%s unwritable: exit status" % opt)
        check_eq(len(err.strip().splitlines()), 1, "%s unwritable: one line (%r)" % (opt, err))
        check(opt in err and "/nonexistent/dir/heap" in err, "%s: message %r" % (opt, err))
