"""The man page: every option --help lists is in it, and it renders clean."""
import os
import re
import subprocess

from harness import ROOT, TOOL, check, check_eq

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
