#!/usr/bin/env bash
# What a report costs the tracer at scale: system-wide --all-stacks while
# PROCS processes (default 500) each hold BLOCKS blocks (default 2000: a
# million outstanding) and STACKERS processes (default 15) each hold 2,048
# distinct stacks (30,720: the stack table holds 32,768). Prints the CPU
# time each report took (JSON cpu_ms: map reads, verdicts, symbols of the
# processes shown), with what it covered, and the tool's RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
procs=${PROCS:-500}
blocks=${BLOCKS:-2000}
stackers=${STACKERS:-15}
out=$(mktemp)
./memleak-bpf --all-stacks --json --max-procs 10 2 >"$out" 2>/dev/null &
tool=$!
sleep 3
for _ in $(seq "$procs"); do build/workloads/flood "$blocks" 40 & done
for _ in $(seq "$stackers"); do build/workloads/many_stacks 40 & done
sleep 25
grep -E 'VmRSS|VmHWM' "/proc/$tool/status"
kill -INT $tool
wait $tool || true
kill $(jobs -p) 2>/dev/null || true
wait 2>/dev/null || true
python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{\"type\":\"report\"")]
for r in rs[-6:]:
    ps = r["processes"]
    print("report %3d: cpu %7.1f ms; %d processes, %d outstanding allocations, %d stack entries"
          % (r["seq"], r["cpu_ms"], len(ps),
             sum(p["heap"]["outstanding_allocs"] for p in ps), r["stack_table"]["entries"]))' "$out"
rm -f "$out"
