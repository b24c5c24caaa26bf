"""Every bad input of the spec: one clear line on stderr and the spec's exit status."""
import os
import signal
import subprocess
import tempfile

from harness import TOOL, check, check_eq, final_process, reports, run_tool


def one_line_error(args, status, words, env=None):
    got, out, err = run_tool(args, env=env)
    check_eq(got, status, "exit status of %r (stderr: %s)" % (args, err.strip()))
    lines = err.strip().splitlines()
    check_eq(len(lines), 1, "stderr lines of %r: %r" % (args, lines))
    check(lines[0].startswith("memleak-bpf: "), "unprefixed message: " + lines[0])
    for w in words:
        check(w in lines[0], "%r not in %r" % (w, lines[0]))
    return out


def test_unknown_option():
    one_line_error(["--bogus"], 2, ["unknown option '--bogus'", "--help"])


def test_option_without_value():
    one_line_error(["-p"], 2, ["'-p' needs a value"])


def test_bad_numbers():
    one_line_error(["-p", "12x"], 2, ["invalid PID list '12x'"])
    one_line_error(["-T", "0"], 2, ["invalid --top"])
    one_line_error(["0"], 2, ["invalid INTERVAL '0'"])
    one_line_error(["1", "-3"], 2, ["unknown option '-3'"])
    one_line_error(["1", "x"], 2, ["invalid COUNT 'x'"])
    one_line_error(["-z", "10", "-Z", "5"], 2, ["--min-size 10 is larger than --max-size 5"])


def test_pid_and_command_together():
    one_line_error(["-p", "1", "--", "true"], 2, ["cannot be combined"])


def test_empty_command():
    one_line_error(["--"], 2, ["no COMMAND after --"])


def test_pid_that_does_not_exist():
    one_line_error(["-p", "999999"], 1, ["no process with PID 999999"])


def test_command_not_found():
    one_line_error(["--", "no-such-command-xyz"], 1, ["cannot execute 'no-such-command-xyz'"])


def write_file(directory, name, text, mode):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def test_command_not_executable():
    with tempfile.TemporaryDirectory() as d:
        text = write_file(d, "text", "just text\n", 0o644)
        one_line_error(["--", text], 1, ["cannot execute '%s': Permission denied" % text])
        os.chmod(text, 0o755)
        one_line_error(["--", text], 1, ["not an ELF executable or a #! script"])


def test_script_is_traced_through_its_interpreter():
    with tempfile.TemporaryDirectory() as d:
        script = write_file(d, "script", "#!/bin/sh\nexit 5\n", 0o755)
        status, out, err = run_tool(["--json", "--", script])
        check_eq(status, 5, "exit status: " + err)
        check(final_process(out)["heap"]["allocs"] > 0, "no allocation of /bin/sh traced")


def test_lib_that_does_not_exist():
    one_line_error(["--lib", "/no/such.so", "--", "true"], 1, ["--lib /no/such.so"])


def test_kernel_without_btf():
    one_line_error(["--", "true"], 1, ["no BTF", "CONFIG_DEBUG_INFO_BTF"],
                   env={"MEMLEAK_BPF_BTF": "/nonexistent/vmlinux"})


def test_not_root():
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
           "--inh-caps=-all", "--bounding-set=-all",
           TOOL, "--", "true"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    check_eq(p.returncode, 1, "exit status: " + p.stderr)
    check("needs root or the CAP_BPF and CAP_PERFMON" in p.stderr, p.stderr)
    check_eq(len(p.stderr.strip().splitlines()), 1, "stderr lines")


def test_tracefs_unmounted_is_mounted():
    subprocess.run(["umount", "/sys/kernel/tracing"], capture_output=True)
    status, out, err = run_tool(["--json", "--", "true"])
    check_eq(status, 0, "exit status: " + err)
    mounts = open("/proc/mounts").read()
    check(" /sys/kernel/tracing tracefs " in mounts, "tracefs was not mounted")


def test_all_stacks_outside_system_wide():
    one_line_error(["--all-stacks", "--", "true"], 2, ["--all-stacks is for system-wide"])
    one_line_error(["--all-stacks", "-p", "1"], 2, ["--all-stacks is for system-wide"])


def test_bad_max_procs():
    one_line_error(["--max-procs", "0"], 2, ["invalid --max-procs '0'"])


def test_bad_map_sizes():
    one_line_error(["--max-stacks", "10"], 2, ["invalid --max-stacks '10': expected 1024 to"])
    one_line_error(["--max-stacks", "many"], 2, ["invalid --max-stacks 'many'"])
    one_line_error(["--max-allocs", "99999999999"], 2, ["invalid --max-allocs '99999999999'"])


def test_unwritable_curve_file():
    one_line_error(["--curve", "/nonexistent/dir/c.csv", "--", "true"], 1,
                   ["cannot write --curve /nonexistent/dir/c.csv: No such file or directory"])
    one_line_error(["--plot", "/nonexistent/dir/p.svg", "--", "true"], 1,
                   ["cannot write --plot /nonexistent/dir/p.svg: No such file or directory"])
    one_line_error(["--output", "/nonexistent/dir/r.json", "--", "true"], 1,
                   ["cannot write --output /nonexistent/dir/r.json: No such file or directory"])


def test_final_report_after_error_in_command():
    status, out, err = run_tool(["--json", "--", "sh", "-c", "kill -TERM $$"])
    check_eq(status, -signal.SIGTERM, "ended by the signal that ended the command")
    check(reports(out)[-1]["final"], "no final report")


def test_output_to_a_full_device():
    for opt in ("--curve", "--plot"):
        one_line_error([opt, "/dev/full", "--", "true"], 1,
                       ["cannot write %s /dev/full: No space left on device" % opt])
        check(os.path.exists("/dev/full") and not os.path.isfile("/dev/full"),
              "/dev/full was replaced by a file")


def test_file_system_fills_while_tracing():
    """The file system fills mid-run: one line, a final report, status 1, no .tmp."""
    d = tempfile.mkdtemp()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", d], check=True)
    try:
        with open(os.path.join(d, "filler"), "wb") as f:
            f.write(b"x" * 4096)  # one page of two left free
        for opt, name in (("--curve", "c.csv"), ("--plot", "p.svg")):
            path = os.path.join(d, name)
            status, out, err = run_tool(["--json", opt, path, "0.04", "--", "sleep", "3"],
                                        timeout=60)
            check_eq(status, 1, "%s exit status (stderr: %s)" % (opt, err.strip()))
            lines = err.strip().splitlines()
            check_eq(len(lines), 1, "stderr lines: %r" % lines)
            check("cannot write %s %s: No space left on device" % (opt, path) in lines[0],
                  lines[0])
            check(reports(out)[-1]["final"], "no final report")
            check_eq(sorted(os.listdir(d)), sorted(["filler", name]), "files left")
            os.unlink(path)
    finally:
        subprocess.run(["umount", d], check=True)
        os.rmdir(d)


def test_names_that_are_not_utf8():
    """A program whose name holds bytes that are not UTF-8, quotes and markup:
    every JSON line parses strictly, the text escapes them, CSV and SVG stay valid."""
    import csv
    import json
    import shutil
    import xml.etree.ElementTree as ET
    from harness import workload
    d = tempfile.mkdtemp()
    name = b'x\xff\xfe"<&,y'
    prog = os.path.join(d.encode(), name)
    shutil.copy(workload("leaky_all"), prog)
    curve, plot = os.path.join(d, "c.csv"), os.path.join(d, "p.svg")
    try:
        for fmt in (["--json"], []):
            p = subprocess.run([TOOL] + fmt + ["--curve", curve, "--plot", plot, "--", prog],
                               capture_output=True, timeout=60)
            check_eq(p.returncode, 0, "exit status: %r" % p.stderr)
            out = p.stdout.decode("utf-8")  # strict: fails on a byte that is not UTF-8
            if fmt:
                comms = {q["comm"] for line in out.splitlines() if line.strip()
                         for q in json.loads(line)["processes"]}
                check_eq(comms, {'x\ufffd\ufffd"<&,y'}, "comm in JSON")
            else:
                check('(x\\xff\\xfe"<&,y)' in out, "text headline: " + out[:300])
        rows = list(csv.DictReader(open(curve, encoding="utf-8")))
        check(rows and all(r["comm"] == 'x\\xff\\xfe"<&,y' for r in rows), "CSV: %r" % rows[:2])
        title = "".join(ET.parse(plot).getroot().itertext())
        check('x\ufffd\ufffd"<&,y' in title, "SVG title: %r" % title[:200])
    finally:
        shutil.rmtree(d)


def test_pid_of_the_tracer_itself():
    p = subprocess.Popen(["sh", "-c", 'exec "$0" -p $$', TOOL], stderr=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, text=True)
    _, err = p.communicate(timeout=30)
    check_eq(p.returncode, 1, "exit status: " + err)
    check_eq(err.strip().splitlines(), ["memleak-bpf: PID %d is memleak-bpf itself, "
                                        "which it never traces" % p.pid], "stderr")


def test_lib_that_is_not_a_usable_allocator():
    import shutil
    d = tempfile.mkdtemp()
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    data = open(libc, "rb").read()
    files = {
        "trunc.so": (data[:3000], "a truncated ELF file"),
        "empty.so": (b"", "an empty file"),
        "text.so": (b"not a library\n", "not an ELF file"),
        "arm.so": (data[:18] + bytes([0xb7, 0]) + data[20:], "an ELF file for another architecture"),
    }
    try:
        for name, (content, why) in files.items():
            path = os.path.join(d, name)
            with open(path, "wb") as f:
                f.write(content)
            one_line_error(["--lib", path, "--", "true"], 1, ["--lib %s: %s" % (path, why)])
        one_line_error(["--lib", "/lib/x86_64-linux-gnu/libz.so.1", "--", "true"], 1,
                       ["--lib /lib/x86_64-linux-gnu/libz.so.1: defines none of the allocator"])
    finally:
        shutil.rmtree(d)


def test_scan_option_errors():
    one_line_error(["--scan", "--no-scan"], 2, ["--scan and --no-scan cannot be combined"])
    one_line_error(["--scan=0"], 2, ["invalid --scan '0'"])
    one_line_error(["--scan=x", "-p", "1"], 2, ["invalid --scan 'x'"])
    one_line_error(["--scan", "--", "true"], 2, ["--scan is for -p and system-wide"])
    one_line_error(["--scan", "--pages", "-p", "1"], 2, ["--pages holds no blocks to scan"])
