#!/usr/bin/env bash
# Pages mode's cost on a production-like server: redis-server (Debian's
# redis-check-rdb through a symlink named redis-server) under
# `redis-benchmark -t set,get -r 100000 -c 10`, untraced, under
# `memleak-bpf -p PID --pages` and under `memleak-bpf -p PID` (exact), in
# ROUNDS interleaved rounds (default 2): requests per second, and each
# traced one's ratio to the untraced one of its round. Then the page
# programs' own run time per event (kernel.bpf_stats_enabled): per page
# taken (its stack walked), per count of anonymous pages, per fault, per
# page freed. N requests each (default 200000).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-2}
n=${N:-200000}
port=6479
dir=$(mktemp -d)
ln -s "$(command -v redis-check-rdb)" "$dir/redis-server"
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
trap 'sysctl -qw kernel.bpf_stats_enabled=$stats_was; rm -rf "$dir"' EXIT

# "SET GET" requests per second with the server untraced, or traced in mode
# pages or exact; page program figures are left in $dir/progs.
round() { # untraced|pages|exact
	"$dir/redis-server" --port $port --save "" --appendonly no >/dev/null &
	local server=$! tool=
	for _ in $(seq 100); do
		redis-cli -p $port ping 2>/dev/null | grep -q PONG && break
		sleep 0.1
	done
	if [ "$1" != untraced ]; then
		./memleak-bpf $([ "$1" = pages ] && echo --pages) -p $server --output /dev/null 3600 \
			2>"$dir/err" &
		tool=$!
		for _ in $(seq 100); do
			grep -qE "tracing|counting" "$dir/err" && break
			sleep 0.1
		done
	fi
	local rps
	rps=$(timeout 300 redis-benchmark -p $port -t set,get -r 100000 -c 10 -n "$n" -q 2>/dev/null |
		tr '\r' '\n' | awk '/requests per second/ {printf "%s ", $2}')
	if [ -n "$tool" ]; then
		bpftool prog show --json | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p.get("name", "").startswith("page_") and p.get("run_cnt"):
        print("%-18s %8d runs %6.0f ns a run" % (p["name"], p["run_cnt"], p["run_time_ns"] / p["run_cnt"]))' >"$dir/progs" || true
		kill -INT $tool
		wait $tool 2>/dev/null || true
	fi
	redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true
	wait $server 2>/dev/null || true
	echo "$rps" # last: the next round starts once this one is over
}

printf '%-8s %-14s %12s %12s %8s %8s\n' round mode SET/s GET/s SET GET
for r in $(seq "$rounds"); do
	read -r set0 get0 < <(round untraced)
	printf '%-8s %-14s %12s %12s %8s %8s\n' "$r" untraced "$set0" "$get0" 1.00 1.00
	for mode in pages exact; do
		read -r set get < <(round $mode)
		[ $mode = pages ] && cp "$dir/progs" "$dir/progs.pages"
		printf '%-8s %-14s %12s %12s %8.2f %8.2f\n' "$r" "-p $mode" "$set" "$get" \
			"$(echo "$set / $set0" | bc -l)" "$(echo "$get / $get0" | bc -l)"
	done
done
echo
echo "page programs under -p --pages (last round; runs on every process's events):"
cat "$dir/progs.pages" 2>/dev/null || echo "(no figures)"

# System-wide with default options while a growing process's pages are
# counted (page_drip): a process that only allocates and frees (bench_pairs,
# watched) runs at its untraced rate; ns per malloc+free pair, medians.
make -s build/workloads/bench_pairs build/workloads/page_drip
pairs() { build/workloads/bench_pairs "${PAIRS:-2000000}" 1; }
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
untraced=$(for _ in 1 2 3; do pairs; done | median)
./memleak-bpf --output /dev/null 3600 2>"$dir/err" &
tool=$!
build/workloads/page_drip 120 0 >/dev/null &
drip=$!
for _ in $(seq 60); do
	grep -q "page_drip) left its steady band: counting" "$dir/err" && break
	sleep 1
done
grep -q "page_drip) left its steady band: counting" "$dir/err" ||
	echo "(page_drip's pages were not counted within 60 s)"
watched=$(for _ in 1 2 3; do pairs; done | median)
kill $drip
kill -INT $tool
wait $tool 2>/dev/null || true
printf '\nbench_pairs: %s ns a pair untraced, %s under the watcher while page_drip'"'"'s pages are counted (ratio %.3f)\n' \
	"$untraced" "$watched" "$(echo "$watched / $untraced" | bc -l)"
