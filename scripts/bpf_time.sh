#!/usr/bin/env bash
# The BPF programs' own run time per event (kernel.bpf_stats_enabled), which
# is what memleak-bpf controls, next to the floor's: empty programs at the
# same probe sites (their run time, and the pair's wall clock, is what the
# uprobe traps cost on this machine). Two allocation sites: bench_pairs (5
# frames to _start) and deep_nofp (11 frames, -O2 without frame pointers).
# RUNS runs each (default 3); the median is printed. MEMLEAK_BPF: the binary
# (default ./memleak-bpf).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
libc=$(ldd build/workloads/bench_pairs | awk '/libc.so.6/ {print $3}')

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# ns per run of each named program, from bpftool's statistics: "name ns" lines.
prog_ns() { # names...
	bpftool prog show --json | python3 -c '
import json, sys
want = sys.argv[1:]
for p in json.load(sys.stdin):
    if p.get("name") in want and p.get("run_cnt"):
        print(p["name"], "%.0f" % (p["run_time_ns"] / p["run_cnt"]))' "$@"
}

# Traced by memleak-bpf: "malloc_enter alloc_end free_enter pair_ns".
traced() { # workload args...
	local out stats
	out=$(mktemp)
	stats=$(mktemp)
	"${MEMLEAK_BPF:-./memleak-bpf}" --output /dev/null 3600 -- "$@" >"$out" 2>/dev/null &
	local tool=$!
	# The programs go with the tracer: their figures are read while it runs.
	while kill -0 $tool 2>/dev/null; do
		prog_ns malloc_enter alloc_end free_enter >"$stats.new" || true
		[ "$(wc -l <"$stats.new")" = 3 ] && mv "$stats.new" "$stats"
		sleep 0.2
	done
	wait $tool || true
	awk '{ns[$1] = $2} END {printf "%s %s %s ", ns["malloc_enter"], ns["alloc_end"], ns["free_enter"]}' "$stats"
	grep -E '^[0-9.]+$' "$out"
	rm -f "$out" "$stats" "$stats.new"
}

# Under the floor's empty programs: "entry_ns return_ns pair_ns".
floor() { # workload args...
	build/floor_probes sites "$libc" build/floor.bpf.o >/dev/null 2>&1 &
	local probes=$!
	sleep 2
	local pair
	pair=$("$@")
	prog_ns empty_entry empty_return | awk '{ns[$1] = $2} END {printf "%s %s ", ns["empty_entry"], ns["empty_return"]}'
	echo "$pair"
	kill -INT $probes
	wait $probes 2>/dev/null || true
}

col() { awk -v c="$1" '{print $c}' | median; }

stats_was=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
printf '%-26s %9s %9s %9s %9s %10s | %9s %9s | %9s %9s %9s %8s\n' "BPF ns per event" \
	"malloc" "return" "free" "pair" "floor BPF" "per alloc" "per free" \
	"untraced" "floor" "traced" "+/floor"
for site in "bench_pairs 400000:5 frames (bench_pairs)" "deep_nofp 200000:11 frames (deep_nofp)"; do
	argv=(build/workloads/${site%%:*})
	t=$(for _ in $(seq "$runs"); do traced "${argv[@]}"; done)
	f=$(for _ in $(seq "$runs"); do floor "${argv[@]}"; done)
	u=$(for _ in $(seq "$runs"); do "${argv[@]}"; done | median)
	m=$(col 1 <<<"$t") r=$(col 2 <<<"$t") fr=$(col 3 <<<"$t") tp=$(col 4 <<<"$t")
	fe=$(col 1 <<<"$f") fx=$(col 2 <<<"$f") fp=$(col 3 <<<"$f")
	printf '%-26s %9s %9s %9s %9s %10s | %9s %9s | %9s %9s %9s %8.2f\n' "${site#*:}" \
		"$m" "$r" "$fr" "$((m + r + fr))" "$((2 * fe + fx))" "$((m + r))" "$fr" \
		"$u" "$fp" "$tp" "$(echo "($tp - $u) / ($fp - $u)" | bc -l)"
done
sysctl -qw kernel.bpf_stats_enabled="$stats_was"
