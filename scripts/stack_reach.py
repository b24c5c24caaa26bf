#!/usr/bin/env python3
"""How far stacks reach, for the closing figures of the unwinding work.

    scripts/stack_reach.py [--tool PATH] [--mid] -- COMMAND...

Traces COMMAND with memleak-bpf (--json, up to 10,000 stacks: -T 10000) and prints,
over the stacks of the last report (with --mid: the last report before the
final one, for programs that free everything at exit): how many there are,
the share that reach main (hold libc's caller of main,
__libc_start_call_main), the share that reach the program's first frame
(_start; _dl_start_user for libraries' constructors) and the median depth
(frames walked: inlined functions are not counted). --tool runs another
build, an older one for instance.
"""
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    tool, mid = os.path.join(ROOT, "memleak-bpf"), False
    while argv and argv[0] != "--":
        opt = argv.pop(0)
        if opt == "--tool":
            tool = argv.pop(0)
        elif opt == "--mid":
            mid = True
        else:
            sys.exit(__doc__)
    if not argv:
        sys.exit(__doc__)
    interval = ["1"] if mid else []
    p = subprocess.run([tool, "--json", "-T", "10000"] + interval + argv, capture_output=True,
                       text=True)
    reports = [json.loads(l) for l in p.stdout.splitlines() if l.startswith('{"')]
    if mid:
        reports = [r for r in reports if not r["final"]]
    if not reports:
        sys.exit("no report (status %d): %s" % (p.returncode, p.stderr[-500:]))
    stacks = [s for proc in reports[-1]["processes"] for s in proc["stacks"]]
    if not stacks:
        sys.exit("no stacks")
    names = [[f["symbol"] for f in s["frames"] if not f.get("inlined")] for s in stacks]
    to_main = sum("__libc_start_call_main" in n for n in names)
    whole = sum(bool(n) and n[-1] in ("_start", "_dl_start_user") for n in names)
    print("%d stacks: %.1f%% reach main, %.1f%% reach the first frame, median depth %g" %
          (len(stacks), 100.0 * to_main / len(stacks), 100.0 * whole / len(stacks),
           statistics.median(len(n) for n in names)))


if __name__ == "__main__":
    main(sys.argv[1:])
