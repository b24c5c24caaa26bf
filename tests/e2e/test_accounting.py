"""Exact heap accounting on workloads whose leaks are known."""
import os
import signal
import subprocess
import time

from harness import (ROOT, TOOL, check, check_eq, final_process, leaks_by_function, reports,
                     run_tool, valgrind_in_use, workload)

# tests/workloads/leaky_all.c: function -> [bytes, blocks]
ALL_LEAKS = {
    "leak_malloc": [300, 3], "leak_calloc": [448, 4], "leak_realloc": [1300, 6],
    "leak_reallocarray": [480, 2], "leak_posix_memalign": [768, 3],
    "leak_aligned_alloc": [1024, 2], "leak_memalign": [768, 2], "leak_valloc": [1000, 1],
    "leak_pvalloc": [4096, 1],
}
CXX_LEAKS = {"leak_new()": [144, 3], "leak_new_array()": [200, 2],
             "Pool<double>::grow()": [256, 4]}
CXX_EH_POOL = 72704  # libstdc++'s emergency exception pool, never freed


def trace_json(argv, extra=(), env=None):
    status, out, err = run_tool(["--json", "-T", "50"] + list(extra) + ["--"] + argv, env=env)
    check_eq(status, 0, "exit status (stderr: %s)" % err.strip())
    return final_process(out)


def check_leaks(proc, want):
    got = leaks_by_function(proc)
    for fn, figures in want.items():
        check_eq(got.get(fn), figures, "leak in %s (bytes, blocks)" % fn)


def test_every_allocation_function_exact():
    proc = trace_json([workload("leaky_all")])
    check_eq(proc["heap"]["outstanding_bytes"], 10184, "outstanding bytes")
    check_eq(proc["heap"]["outstanding_allocs"], 24, "outstanding allocs")
    check_eq(proc["heap"]["allocs"] - proc["heap"]["frees"], 24, "allocs - frees")
    check_leaks(proc, ALL_LEAKS)
    frame = proc["stacks"][0]["frames"][0]
    check(frame["file"].endswith("leaky_all.c") and frame["line"], "no file:line: %r" % frame)
    check(frame["module"].endswith("/leaky_all"), "module: %r" % frame["module"])


def test_c_equals_valgrind_in_use_at_exit():
    argv = [workload("leaky_all_vg")]
    proc = trace_json(argv)
    heap = proc["heap"]
    check_eq((heap["outstanding_bytes"], heap["outstanding_allocs"]), valgrind_in_use(argv),
             "(bytes, blocks) against valgrind")
    check_eq((heap["outstanding_bytes"], heap["outstanding_allocs"]), (6088, 23), "figures")


def test_cxx_glibc_exact_and_equals_valgrind():
    argv = [workload("leaky_cxx")]
    proc = trace_json(argv)
    check_leaks(proc, CXX_LEAKS)
    heap = proc["heap"]
    check_eq((heap["outstanding_bytes"], heap["outstanding_allocs"]),
             (600 + CXX_EH_POOL, 10), "figures")
    check_eq((heap["outstanding_bytes"], heap["outstanding_allocs"]), valgrind_in_use(argv),
             "(bytes, blocks) against valgrind")


def test_cxx_linked_with_jemalloc():
    proc = trace_json([workload("leaky_cxx_je")])
    check_leaks(proc, CXX_LEAKS)
    check_eq(proc["heap"]["outstanding_bytes"], 600 + CXX_EH_POOL, "outstanding bytes")
    check_eq(proc["heap"]["outstanding_allocs"], 10, "outstanding allocs")


def test_cxx_jemalloc_preloaded():
    env = {"LD_PRELOAD": "libjemalloc.so.2"}
    proc = trace_json([workload("leaky_cxx")], env=env)
    check_leaks(proc, CXX_LEAKS)
    check_eq(proc["heap"]["outstanding_bytes"], 600 + CXX_EH_POOL, "outstanding bytes")


def test_c_jemalloc_preloaded():
    # jemalloc has no pvalloc: glibc's would hand it blocks it cannot free.
    # Debian's jemalloc links libstdc++, whose emergency pool it then serves.
    env = {"LD_PRELOAD": "libjemalloc.so.2"}
    proc = trace_json([workload("leaky_all_vg")], env=env)
    check_leaks(proc, dict(ALL_LEAKS, leak_pvalloc=None))
    check_eq(proc["heap"]["outstanding_bytes"], 6088 + CXX_EH_POOL, "outstanding bytes")
    check_eq(proc["heap"]["outstanding_allocs"], 23 + 1, "outstanding allocs")


def probes_moved(lib, names):
    """Checks the probes on lib sit past the entry of at least one of names
    (the test then covers moved probe sites), and returns how many do."""
    path = os.path.realpath(os.path.join("/usr/lib/x86_64-linux-gnu", lib))
    p = subprocess.run([os.path.join(ROOT, "build", "probe_sites"), path] +
                       ["%s:1" % n for n in names], capture_output=True, text=True)
    rows = [line.split() for line in p.stdout.splitlines()]
    check_eq(len(rows), len(names), "functions found in %s: %s" % (lib, p.stdout))
    moved = sum(int(site, 16) != int(entry, 16) for _, entry, site in rows)
    check(moved > 0, "no probe of %s moved past its entry: %s" % (lib, p.stdout))
    return moved


def test_c_tcmalloc_preloaded():
    # Debian's tcmalloc links libstdc++ (its emergency pool comes from
    # tcmalloc) and makes two blocks of its own at start.
    probes_moved("libtcmalloc_minimal.so.4", ["malloc", "free"])
    proc = trace_json([workload("leaky_all_vg")], env={"LD_PRELOAD": "libtcmalloc_minimal.so.4"})
    check_leaks(proc, dict(ALL_LEAKS, leak_pvalloc=None))
    own = leaks_by_function(proc)
    check_eq(own.get("TCMallocGuard::TCMallocGuard()"), [16, 1], "tcmalloc's own block")
    check_eq(proc["heap"]["outstanding_bytes"], 6088 + CXX_EH_POOL + 16 + 8, "outstanding bytes")
    check_eq(proc["heap"]["outstanding_allocs"], 23 + 3, "outstanding allocs")


def test_c_mimalloc_preloaded():
    probes_moved("libmimalloc.so.2", ["malloc", "free"])
    proc = trace_json([workload("leaky_all_vg")], env={"LD_PRELOAD": "libmimalloc.so.2"})
    check_leaks(proc, dict(ALL_LEAKS, leak_pvalloc=None))
    check_eq(proc["heap"]["outstanding_bytes"], 6088, "outstanding bytes")
    check_eq(proc["heap"]["outstanding_allocs"], 23, "outstanding allocs")


def test_alloc_in_one_thread_free_in_another():
    argv = [workload("threads")]
    proc = trace_json(argv)
    check_eq(leaks_by_function(proc).get("produce"), [960, 20], "leak in produce")
    heap = proc["heap"]
    check_eq((heap["outstanding_bytes"], heap["outstanding_allocs"]), valgrind_in_use(argv),
             "(bytes, blocks) against valgrind")


def test_sample_rate_keeps_totals_exact():
    proc = trace_json([workload("leaky_all")], extra=["-s", "1000"])
    check_eq(proc["heap"]["outstanding_bytes"], 10184, "outstanding bytes")
    check_eq(proc["heap"]["outstanding_allocs"], 24, "outstanding allocs")
    sampled = sum(s["allocs"] for s in proc["stacks"])
    check(sampled < proc["heap"]["allocs"] / 100, "stacks were not sampled: %d" % sampled)


def test_size_filters():
    proc = trace_json([workload("leaky_all")], extra=["-z", "200", "-Z", "1000"])
    check_eq(proc["heap"]["outstanding_bytes"], 5340, "outstanding bytes in [200, 1000]")
    check_eq(proc["heap"]["outstanding_allocs"], 16, "outstanding allocs in [200, 1000]")


def test_older_filters_stack_tables_only():
    proc = trace_json([workload("leaky_all")], extra=["-o", "600000"])
    check_eq(proc["stacks"], [], "stacks older than 10 minutes")
    check_eq(proc["heap"]["outstanding_bytes"], 10184, "outstanding bytes")


def test_top_limits_stacks():
    status, out, _ = run_tool(["--json", "-T", "2", "--", workload("leaky_all")])
    check_eq(len(final_process(out)["stacks"]), 2, "stacks with -T 2")


def test_exit_status_passes_through():
    status, out, _ = run_tool(["--json", "--", "sh", "-c", "exit 7"])
    check_eq(status, 7, "exit status")
    check(reports(out)[-1]["final"], "no final report")


def test_text_report_names_the_leak():
    status, out, err = run_tool(["--", workload("leaky_all")])
    check_eq(status, 0, "exit status: " + err)
    check("final report" in out, "no final report line:\n" + out)
    check("heap 9.9 KiB in 24 allocs" in out, "no headline:\n" + out)
    check("4,096 B in 1 allocs" in out and "leak_pvalloc+0x" in out, "no stack:\n" + out)


def test_attach_to_running_process():
    target = subprocess.Popen([workload("attach_target")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        check_eq(target.stdout.readline(), "ready\n", "target start")
        tool = subprocess.Popen([TOOL, "--json", "-p", str(target.pid), "0.5"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        check("tracing" in tool.stderr.readline(), "tool did not attach")
        target.stdin.write("go\n")
        target.stdin.flush()
        check_eq(target.stdout.readline(), "done\n", "target workload")
        time.sleep(0.7)  # at least one periodic report while it lives
        target.stdin.close()
        target.wait(timeout=10)
        out, err = tool.communicate(timeout=20)
    finally:
        target.kill()
    check_eq(tool.returncode, 0, "exit status: " + err)
    check("exited" in err, "no note of the exit: " + err)
    check(len(reports(out)) >= 2, "no periodic report")
    proc = final_process(out, target.pid)
    check_eq(proc["alive"], False, "alive")
    check_eq(leaks_by_function(proc).get("leak_after_attach"), [3584, 7], "leak")
    check_eq(proc["heap"]["outstanding_bytes"], 3584, "outstanding bytes")


def start_attach_target():
    target = subprocess.Popen([workload("attach_target")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    check_eq(target.stdout.readline(), "ready\n", "target start")
    return target


def test_interval_and_count():
    target = start_attach_target()
    try:
        status, out, err = run_tool(["--json", "-p", str(target.pid), "0.2", "3"])
    finally:
        target.kill()
        target.wait()
    check_eq(status, 0, "exit status: " + err)
    rs = reports(out)
    check_eq([r["final"] for r in rs], [False, False, True], "reports with COUNT 3")
    check_eq([r["seq"] for r in rs], [1, 2, 3], "seq")
    check(0.5 < rs[-1]["elapsed_s"] < 2.0, "elapsed %.3f for 3 x 0.2 s" % rs[-1]["elapsed_s"])


def test_sigint_and_sigterm_write_a_final_report():
    for sig in (signal.SIGINT, signal.SIGTERM):
        target = start_attach_target()
        try:
            tool = subprocess.Popen([TOOL, "--json", "-p", str(target.pid)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            check("tracing" in tool.stderr.readline(), "tool did not attach")
            tool.send_signal(sig)
            out, err = tool.communicate(timeout=20)
        finally:
            target.kill()
            target.wait()
        check_eq(tool.returncode, 0, "exit status after %s: %s" % (sig.name, err))
        rs = reports(out)
        check_eq(len(rs), 1, "reports")
        check(rs[0]["final"], "not final")


def test_full_allocs_map_is_counted_in_dropped():
    n = (2 << 20) + 5000  # the block table has 2 << 20 slots
    status, out, err = run_tool(["--json", "--", workload("flood"), str(n)], timeout=600)
    check_eq(status, 0, "exit status: " + err)
    last = reports(out)[-1]
    proc = final_process(out)
    dropped = last["dropped"]["allocs_map_full"]
    check(dropped >= 5000, "dropped %d" % dropped)
    check_eq(proc["heap"]["outstanding_allocs"] + dropped, n + baseline_allocs(),
             "tracked + dropped allocations")


def test_max_allocs_sizes_the_table():
    n = 10000
    status, out, err = run_tool(["--json", "--max-allocs", "4096", "--", workload("flood"),
                                 str(n)])
    check_eq(status, 0, "exit status: " + err)
    dropped = reports(out)[-1]["dropped"]["allocs_map_full"]
    held = final_process(out)["heap"]["outstanding_allocs"]
    # Room for 4,096: 8,192 slots, each block within 32 of its home (the
    # first is turned away once the table is well past half full).
    check(4096 <= held <= 8192 and dropped > 0, "blocks held by a table for 4,096: %d" % held)
    check_eq(held + dropped, n + baseline_allocs(), "tracked + dropped allocations")


def baseline_allocs():
    """Blocks flood leaves behind with no flood at all (the loader's, libc's)."""
    status, out, err = run_tool(["--json", "--", workload("flood"), "0"])
    return final_process(out)["heap"]["outstanding_allocs"]


def test_exec_drops_the_old_images_blocks():
    # 10 x 1000 bytes leaked before exec belong to the image exec replaced.
    status, out, err = run_tool(["--json", "--", workload("short_lived"), "exec"])
    check_eq(status, 0, "exit status: " + err)
    proc = final_process(out)
    check_eq(leaks_by_function(proc), {"leak_before_exit": [3584, 7]}, "leaks")
    check_eq((proc["heap"]["outstanding_bytes"], proc["heap"]["outstanding_allocs"]),
             (3584, 7), "outstanding")
