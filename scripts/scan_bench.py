#!/usr/bin/env python3
"""The pause of a live scan: reach_many holding N blocks of SIZE bytes (default
1,000,000 of 100: 100 MiB), traced with -p and scanned ROUNDS times on
SIGUSR1 (default 3). Prints each scan's pause, the bytes it read, and the
pause per 100 MiB read and per million blocks; the first scan of a run pays
for memory the tracer touches for the first time."""
import json
import os
import signal
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
n, size = os.environ.get("N", "1000000"), os.environ.get("SIZE", "100")
rounds = int(os.environ.get("ROUNDS", "3"))
prog = subprocess.Popen([os.path.join(ROOT, "build/workloads/reach_many"), n, size],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
tool = subprocess.Popen([os.path.join(ROOT, "memleak-bpf"), "--json", "1", "-p", str(prog.pid)],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
while "tracing" not in tool.stderr.readline():
    pass
prog.stdin.write("\n")
prog.stdin.flush()
if prog.stdout.readline() != "set\n":
    sys.exit("scan_bench: reach_many did not set up")
scans, seen = [], threading.Event()


def read_reports():
    last = None
    for line in tool.stdout:
        p = [p for p in json.loads(line)["processes"] if p["pid"] == prog.pid]
        if p and "scan" in p[0] and p[0]["scan"]["time"] != last:
            last = p[0]["scan"]["time"]
            scans.append(p[0])
            seen.set()


threading.Thread(target=read_reports, daemon=True).start()
for _ in range(rounds):
    seen.clear()
    tool.send_signal(signal.SIGUSR1)
    if not seen.wait(60):
        sys.exit("scan_bench: no scan reported")
prog.stdin.write("\n")
prog.stdin.flush()
prog.wait()
tool.wait()
print("scan of %s blocks of %s B (live, -p, SIGUSR1):" % (n, size))
for i, p in enumerate(scans):
    s, blocks = p["scan"], p["heap"]["outstanding_allocs"]
    print("  scan %d: held %.1f ms, %d B read, %d blocks: %.1f ms per 100 MiB read, "
          "%.1f ms per million blocks; lost %d B in %d" %
          (i + 1, s["pause_ms"], s["scanned_bytes"], blocks,
           s["pause_ms"] * (100 << 20) / max(s["scanned_bytes"], 1),
           s["pause_ms"] * 1e6 / max(blocks, 1), s["lost_bytes"], s["lost_allocs"]))
