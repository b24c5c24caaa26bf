"""Installed as a system tool: the man page holds every option --help lists
and renders clean; make install lays out a binary that traces."""
import gzip
import os
import re
import shutil
import subprocess
import tempfile

from harness import ROOT, TOOL, check, check_eq, reports, workload

MAN = os.path.join(ROOT, "docs", "memleak-bpf.8")


def help_options():
    out = subprocess.run([TOOL, "--help"], capture_output=True, text=True, check=True).stdout
    opts = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", out))
    opts.discard("--")
    check(len(opts) >= 30, "options found in --help: %r" % sorted(opts))
    return opts


def test_every_help_option_is_in_the_man_page():
    # The page as groff prints it: its own escapes (\-) are then plain dashes.
    page = subprocess.run(["groff", "-man", "-Tutf8", "-P", "-c", "-P", "-b", "-P", "-u", MAN],
                          capture_output=True, text=True, check=True).stdout
    page = page.replace("\u2010", "-").replace("\u2212", "-")
    missing = sorted(o for o in help_options()
                     if not re.search(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])", page))
    check_eq(missing, [], "options of --help not in the man page")


def test_man_page_renders_clean():
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", MAN], capture_output=True,
                       text=True)
    check_eq((p.returncode, p.stderr), (0, ""), "groff -ww on the man page")
    p = subprocess.run(["lexgrog", MAN], capture_output=True, text=True)
    check(p.returncode == 0 and "memleak-bpf - find memory leaks" in p.stdout,
          "lexgrog does not read its NAME: %r" % (p.stdout + p.stderr))


def test_make_install_lays_out_a_working_tool():
    dest = tempfile.mkdtemp(prefix="memleak-install-")
    try:
        subprocess.run(["make", "-s", "-C", ROOT, "install", "DESTDIR=" + dest, "PREFIX=/usr"],
                       check=True, capture_output=True, text=True)
        tool = os.path.join(dest, "usr/sbin/memleak-bpf")
        unit = os.path.join(dest, "usr/lib/systemd/system/memleak-bpf.service")
        with gzip.open(os.path.join(dest, "usr/share/man/man8/memleak-bpf.8.gz"), "rt") as f:
            check(f.read() == open(MAN).read(), "the installed man page is not docs/memleak-bpf.8")
        with open(unit) as f:
            check("ExecStart=/usr/sbin/memleak-bpf " in f.read(),
                  "the unit does not run the installed binary")
        check(os.path.getsize(os.path.join(dest, "usr/share/memleak-bpf/memleak-bpf.rules.yml")),
              "no alert rules")
        version = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True)
        check(re.match(r"memleak-bpf \d+\.\d+\.\d+", version.stdout), "--version: %r" % version.stdout)
        p = subprocess.run([tool, "--json", "--", workload("leaky_all")], capture_output=True,
                           text=True, timeout=120)
        check_eq(p.returncode, 0, "the installed binary's exit status (stderr: %s)" % p.stderr)
        heap = reports(p.stdout)[-1]["processes"][0]["heap"]
        check_eq((heap["outstanding_bytes"], heap["outstanding_allocs"]), (10184, 24),
                 "leaky_all's leaks (bytes, blocks) under the installed binary")
        subprocess.run(["make", "-s", "-C", ROOT, "uninstall", "DESTDIR=" + dest, "PREFIX=/usr"],
                       check=True, capture_output=True, text=True)
        left = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
        check_eq(left, [], "files left by make uninstall")
    finally:
        shutil.rmtree(dest)
