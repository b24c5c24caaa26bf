#!/usr/bin/env bash
# The tool's own memory with many processes and many outstanding allocations:
# PROCS processes (default 500) each leak BLOCKS blocks (default 2000: a
# million in all) under system-wide --all-stacks [and -k with KERNEL=1].
# Prints the tool's RSS (now and peak), each BPF map's locked memory, and what
# the last report says was dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
procs=${PROCS:-500}
blocks=${BLOCKS:-2000}
out=$(mktemp)
ids=$(mktemp) # the maps there were before: the rest are the tool's
bpftool -j map show | python3 -c 'import json, sys; print(*(m["id"] for m in json.load(sys.stdin)))' >"$ids"
./memleak-bpf --all-stacks ${KERNEL:+-k} --json --max-procs 5 2 >"$out" 2>/dev/null &
tool=$!
sleep 3
for _ in $(seq "$procs"); do build/workloads/flood "$blocks" 30 & done
sleep 20
grep -E 'VmRSS|VmHWM' "/proc/$tool/status"
bpftool -j map show | python3 -c '
import json, sys
before = set(int(i) for i in open(sys.argv[1]).read().split())
maps = [m for m in json.load(sys.stdin) if m["id"] not in before]
for m in sorted(maps, key=lambda m: -m.get("bytes_memlock", 0)):
    print("map %-14s %10.1f MiB  (%s, max %d)" % (m["name"], m.get("bytes_memlock", 0) / 2**20,
          m["type"], m["max_entries"]))
print("maps in all    %10.1f MiB" % (sum(m.get("bytes_memlock", 0) for m in maps) / 2**20))' "$ids"
kill -INT $tool
wait $tool || true
wait
python3 -c '
import json, sys
last = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
procs = [p for p in last["processes"] if p["comm"] == "flood"]
print("last report: %d flood processes, %d outstanding allocations, dropped %s"
      % (len(procs), sum(p["heap"]["outstanding_allocs"] for p in procs), last["dropped"]))' "$out"
rm -f "$out" "$ids"
