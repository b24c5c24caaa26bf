#!/usr/bin/env bash
# Launch latency: the wall time of a short command run untraced, under
# memleak-bpf (-- COMMAND, reports to /dev/null), under valgrind -q and under
# heaptrack, median of RUNS (default 5) each, and memleak-bpf's ratio to
# valgrind's. Then where memleak-bpf's time goes: the BPF programs'
# verification (strace -T of each BPF_PROG_LOAD, summed). MEMLEAK_BPF: the
# binary (default ./memleak-bpf).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
tool=${MEMLEAK_BPF:-./memleak-bpf}

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
wall() { # command...: seconds
	local s e
	s=$(date +%s.%N)
	"$@" >/dev/null 2>&1 || true
	e=$(date +%s.%N)
	echo "$e - $s" | bc
}
median_of() { for _ in $(seq "$runs"); do wall "$@"; done | median; }

printf '%-22s %10s %12s %10s %10s %14s\n' "launch (median of $runs)" untraced memleak-bpf valgrind heaptrack "memleak/vg"
for cmd in "/bin/true" "/usr/bin/python3 -c pass"; do
	read -ra argv <<<"$cmd"
	plain=$(median_of "${argv[@]}")
	ours=$(median_of "$tool" --output /dev/null -- "${argv[@]}")
	vg=$(median_of valgrind -q "${argv[@]}")
	ht=$(command -v heaptrack >/dev/null && median_of heaptrack -o /tmp/launch_bench.heaptrack "${argv[@]}" || echo -)
	rm -f /tmp/launch_bench.heaptrack*
	printf '%-22s %10.3f %12.3f %10.3f %10s %14.2f\n' "$cmd" "$plain" "$ours" "$vg" \
		"$([ "$ht" = - ] && echo - || printf '%.3f' "$ht")" "$(echo "$ours / $vg" | bc -l)"
done
if command -v strace >/dev/null; then
	log=$(mktemp)
	strace -T -e trace=bpf -o "$log" "$tool" --output /dev/null -- /bin/true || true
	grep -o 'BPF_PROG_LOAD.*<[0-9.]*>' "$log" | sed -E 's/.*<([0-9.]+)>/\1/' |
		awk '{s += $1} END {printf "BPF verification at launch: %.3f s\n", s}'
	rm -f "$log"
fi
