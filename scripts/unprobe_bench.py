#!/usr/bin/env python3
"""Watch mode while many processes are unprobed at once: N (default 20)
caches fill for 12 s, so that the watcher (--exact, 1 s reports) probes
each, then hold, so that it unprobes them about together. Prints how many
came off within one report of each other and the report periods around
then: each should stay within 10% of the interval, the probes coming off
in the background. MEMLEAK_BPF: the binary (default ./memleak-bpf)."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.environ.get("MEMLEAK_BPF", os.path.join(ROOT, "memleak-bpf"))
CACHE = os.path.join(ROOT, "build", "workloads", "fill_then_hold")
N = int(os.environ.get("PROCS", "20"))
RUN_S = 75


def main():
    out = tempfile.TemporaryFile(mode="w+")
    err = tempfile.TemporaryFile(mode="w+")
    tool = subprocess.Popen([TOOL, "--exact", "--json", "--max-procs", "100000", "1"],
                            stdout=out, stderr=err, text=True)
    time.sleep(2)
    start = time.monotonic()
    caches = [subprocess.Popen([CACHE, "12", str(RUN_S)]) for _ in range(N)]
    for c in caches:
        c.wait()
    tool.send_signal(2)
    tool.wait(timeout=60)
    out.seek(0)
    err.seek(0)
    log = err.read()
    pids = {c.pid for c in caches}
    reports = [json.loads(line) for line in out if line.startswith("{")]
    # The report after which each cache's probes came off: the first in
    # which it is alive and no longer probed, having been probed.
    off, probed = {}, set()
    for i, r in enumerate(reports):
        for p in r["processes"]:
            if p["pid"] not in pids or not p["alive"]:
                continue
            if p["probed"]:
                probed.add(p["pid"])
            elif p["pid"] in probed and p["pid"] not in off:
                off[p["pid"]] = i
    said = len(set(int(m) for m in re.findall(r"pid (\d+) \(fill_then_hold\) is steady again",
                                               log)) & pids)
    if not off:
        print("unprobe bench: no cache was probed and then unprobed (%d said so)" % said)
        return 1
    first, last = min(off.values()), max(off.values())
    times = [r["elapsed_s"] for r in reports]
    periods = [b - a for a, b in zip(times[first - 2:last + 2], times[first - 1:last + 3])]
    worst = max(abs(p - 1) for p in periods)
    print("unprobe bench: %d processes, %d probed, %d unprobed, within reports %d..%d "
          "(%.1f s); report periods around then %s s: worst %.0f%% off the interval" %
          (N, len(probed), len(off), first, last, times[last] - times[first],
           " ".join("%.2f" % p for p in periods), worst * 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
