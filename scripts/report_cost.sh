#!/usr/bin/env bash
# What a report costs the tracer at scale: -p on PROCS processes (default
# 50) that each hold BLOCKS blocks (default 20000: a million outstanding)
# and STACKERS processes (default 10) that each hold 2,048 distinct stacks
# (the stack table holds 32,768). Prints the CPU time each report took (JSON
# cpu_ms: reading the maps, verdicts, symbols) and the tool's RSS. (With
# --all-stacks the tool's own mallocs would trap on its probes too.)
set -euo pipefail
cd "$(dirname "$0")/.."
procs=${PROCS:-50}
blocks=${BLOCKS:-20000}
stackers=${STACKERS:-10}
out=$(mktemp)
pids=()
# Each starts allocating once the tracer has attached to it (exec followed).
for _ in $(seq "$stackers"); do sh -c 'sleep 8; exec build/workloads/many_stacks 60' & pids+=($!); done
for _ in $(seq "$procs"); do sh -c "sleep 8; exec build/workloads/flood $blocks 60" & pids+=($!); done
sleep 1 # each is sh by now, not the shell that forked it
${WRAP:-} ./memleak-bpf -p "$(IFS=,; echo "${pids[*]}")" --json 2 >"$out" 2>"${ERR:-/dev/null}" &
tool=$!
sleep 30
grep -E 'VmRSS|VmHWM' "/proc/$tool/status"
kill -INT $tool
wait $tool || true
kill "${pids[@]}" 2>/dev/null || true
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
