#!/usr/bin/env bash
# What a report costs the tracer at scale: -p on PROCS processes (default
# 20) that each hold BLOCKS blocks (default 50000: a million outstanding)
# and STACKERS processes (default 27) that each hold a block at 3,840
# distinct stacks (103,680 in all, in a stack table sized for them by
# --max-stacks). Prints the CPU time each report took (JSON
# cpu_ms: reading the maps, verdicts, symbols) and the tool's RSS. (With
# --all-stacks the tool's own mallocs would trap on its probes too.)
set -euo pipefail
cd "$(dirname "$0")/.."
procs=${PROCS:-20}
blocks=${BLOCKS:-50000}
stackers=${STACKERS:-27}
run_s=${RUN_S:-120}
out=$(mktemp)
pids=()
# Each starts allocating once the tracer has attached to it (exec followed).
for _ in $(seq "$stackers"); do sh -c "sleep 8; exec build/workloads/many_stacks $((run_s + 30)) 60 keep" & pids+=($!); done
for _ in $(seq "$procs"); do sh -c "sleep 8; exec build/workloads/flood $blocks $((run_s + 30))" & pids+=($!); done
sleep 1 # each is sh by now, not the shell that forked it
${WRAP:-} ./memleak-bpf -p "$(IFS=,; echo "${pids[*]}")" --max-stacks 131072 --max-allocs 2097152 --json 2 >"$out" 2>"${ERR:-/dev/null}" &
tool=$!
sleep "$run_s"
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
    held = sum(sum(1 for s in p["stacks"] if s["outstanding_allocs"]) + p["stacks_rest"]["stacks"]
               for p in ps)
    print("report %3d: cpu %5.1f ms; %d processes, %d outstanding allocations, %d stacks holding "
          "blocks, %d stack entries, %d allocations dropped"
          % (r["seq"], r["cpu_ms"], len(ps), sum(p["heap"]["outstanding_allocs"] for p in ps),
             held, r["stack_table"]["entries"],
             r["dropped"]["allocs_map_full"] + r["dropped"]["stacks"]))' "$out"
rm -f "$out"
