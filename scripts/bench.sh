#!/usr/bin/env bash
# ns per malloc+free pair: untraced, under a minimal bpftrace probe set
# (malloc entry+return, free), and traced by memleak-bpf; ratios in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=build/workloads/bench_pairs
pairs=${PAIRS:-1000000}
runs=${RUNS:-3}
libc=$(ldd "$bench" | awk '/libc.so.6/ {print $3}')

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

untraced() { "$bench" "$pairs"; }
memleak() { ./memleak-bpf 3600 -- "$bench" "$pairs" | grep -E "^[0-9.]+$"; }
bpftrace_min() {
	"$bench" 1 >/dev/null # warm the page cache
	local out
	out=$(mktemp)
	bpftrace -q -e "uprobe:$libc:malloc /comm == \"bench_pairs\"/ { @s[tid] = arg0; }
		uretprobe:$libc:malloc /comm == \"bench_pairs\"/ { @n = count(); }
		uprobe:$libc:free /comm == \"bench_pairs\"/ { @f = count(); }" >/dev/null 2>&1 &
	local bt=$!
	sleep 3 # attach
	"$bench" "$pairs" >"$out"
	kill -INT $bt
	wait $bt 2>/dev/null || true
	cat "$out"
	rm -f "$out"
}

declare -A ns
for mode in untraced bpftrace_min memleak; do
	ns[$mode]=$(for _ in $(seq "$runs"); do $mode; done | median)
done
printf '%-22s %10s %8s\n' "mode" "ns/pair" "ratio"
for mode in untraced bpftrace_min memleak; do
	printf '%-22s %10s %8.1f\n' "$mode" "${ns[$mode]}" "$(echo "${ns[$mode]} / ${ns[untraced]}" | bc -l)"
done
