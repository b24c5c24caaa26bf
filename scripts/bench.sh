#!/usr/bin/env bash
# ns per malloc+free pair in one run: untraced; the floor (empty BPF programs
# on the sites memleak-bpf probes) and the naive floor (the same on the
# function entries, as every peer probes); a minimal bpftrace probe set
# (malloc entry+return, free); memleak-bpf tracing the command (defaults,
# -s 100, -k); system-wide memleak-bpf: the default watch mode (the process is
# only watched), with -k, and --all-stacks. MODES picks some, ONLY_PAIRS=1
# stops after these tables and the BPF programs' run time per event
# (scripts/bpf_time.sh). Then the tool's own CPU and RSS while watching the
# whole machine, stack walking, pages mode on redis-server
# (scripts/pages_bench.sh), a live scan's pause, launch latency
# (scripts/launch_bench.sh) and unprobing many at once (unprobe_bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bench=build/workloads/bench_pairs
pairs=${PAIRS:-1000000}
runs=${RUNS:-3}
libc=$(ldd "$bench" | awk '/libc.so.6/ {print $3}')

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

threads=1 # pairs run in each of this many threads
untraced() { "$bench" "$pairs" $threads; }
command_traced() { ./memleak-bpf 3600 -- "$bench" "$pairs" $threads | grep -E "^[0-9.]+$"; }
command_traced_k() { ./memleak-bpf -k 3600 -- "$bench" "$pairs" $threads | grep -E "^[0-9.]+$"; }

# Run the benchmark while a tracer runs in the background: "$@" starts it.
# WORKLOAD (default: the pair benchmark) is what runs.
under() {
	local work=(${WORKLOAD:-$bench $pairs $threads})
	"${work[0]}" 1 >/dev/null # warm the page cache
	"$@" >/dev/null 2>&1 &
	local tracer=$!
	sleep 3 # attach
	"${work[@]}"
	kill -INT $tracer
	wait $tracer 2>/dev/null || true
}
bpftrace_min() {
	under bpftrace -q -e "uprobe:$libc:malloc /comm == \"bench_pairs\"/ { @s[tid] = arg0; }
		uretprobe:$libc:malloc /comm == \"bench_pairs\"/ { @n = count(); }
		uprobe:$libc:free /comm == \"bench_pairs\"/ { @f = count(); }"
}
# The floor: empty programs on malloc (entry, return) and free, at the sites
# memleak-bpf probes; the naive floor: the same on the function entries.
floor_sites() { under build/floor_probes sites "$libc" build/floor.bpf.o; }
floor_entries() { under build/floor_probes entries "$libc" build/floor.bpf.o; }
command_traced_s100() { ./memleak-bpf -s 100 3600 -- "$bench" "$pairs" $threads | grep -E "^[0-9.]+$"; }
system_watch() { under ./memleak-bpf 3600; }
system_watch_k() { under ./memleak-bpf -k 3600; }
system_all_stacks() { under ./memleak-bpf --all-stacks 3600; }

# Ratios of the ns each mode adds to a pair, to what the floor adds.
pair_table() { # modes...
	local mode
	declare -A ns
	for mode in "$@"; do
		ns[$mode]=$(for _ in $(seq "$runs"); do $mode; done | median)
	done
	printf '%-22s %10s %8s %14s\n' "mode ($threads thread$([ $threads = 1 ] || echo s))" \
		"ns/pair" "ratio" "added/floor"
	for mode in "$@"; do
		printf '%-22s %10s %8.1f %14s\n' "$mode" "${ns[$mode]}" \
			"$(echo "${ns[$mode]} / ${ns[untraced]}" | bc -l)" \
			"$([[ -n ${ns[floor_sites]:-} ]] && printf '%.2f' "$(echo "(${ns[$mode]} - ${ns[untraced]}) / (${ns[floor_sites]} - ${ns[untraced]})" | bc -l)")"
	done
}
pair_table ${MODES:-untraced floor_sites floor_entries bpftrace_min command_traced command_traced_s100 command_traced_k system_watch system_watch_k system_all_stacks}
# Two threads allocating at once (this machine has 2 cores): the maps shared.
threads=2
echo
pair_table ${MODES2:-untraced floor_sites floor_entries command_traced command_traced_s100}
threads=1
# What the BPF programs themselves take per event, next to the floor's.
echo
RUNS=$runs scripts/bpf_time.sh
[[ -n ${ONLY_PAIRS:-} ]] && exit 0

# The watcher's own cost: CPU ticks over 10 s of watching every process, with
# SLEEPERS (default 500) idle processes added to the machine's own.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sleepers=()
for _ in $(seq "${SLEEPERS:-500}"); do
	sleep 120 &
	sleepers+=($!)
done
for args in "" "-k"; do
	./memleak-bpf $args 3600 >/dev/null 2>&1 &
	tool=$!
	sleep 3
	t0=$(ticks $tool)
	sleep 10
	t1=$(ticks $tool)
	rss=$(awk '/VmRSS/ {print $2}' "/proc/$tool/status")
	kill -INT $tool
	wait $tool 2>/dev/null || true
	printf 'watching every process (%d pids in /proc)%s: tool CPU %.1f%% of a core, RSS %d KiB\n' \
		"$(ls /proc | grep -c '^[0-9]')" "${args:+ with $args}" \
		"$(echo "($t1 - $t0) / $(getconf CLK_TCK) / 10 * 100" | bc -l)" "$rss"
done
kill "${sleepers[@]}" 2>/dev/null || true
wait 2>/dev/null || true

# Stack walking: the allocation site is 11 frames deep (tests/workloads/deep.c),
# built -O2 without frame pointers (deep_nofp: unwind tables) and with them
# (deep_fp: unwind tables, then frame pointers only, walked by the kernel's
# bpf_get_stack as before the tables). The return probe's own run time per
# allocation comes from the kernel's BPF statistics (kernel.bpf_stats_enabled);
# ns per malloc+free pair is the workload's wall clock (uprobe traps dominate it).
deep_pairs=${DEEP_PAIRS:-200000}
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
walk_cost() { # env... -- workload: "ns per probe run, ns per pair"
	local out
	out=$(mktemp)
	env "$@" >"$out" 2>/dev/null &
	local tool=$!
	for _ in $(seq 300); do
		grep -qE '^[0-9.]+$' "$out" && break
		sleep 0.2
	done
	bpftool prog show name alloc_end --json | python3 -c '
import json, sys
progs = json.load(sys.stdin)
p = progs[0] if isinstance(progs, list) else progs
print("%.0f %s" % (p["run_time_ns"] / p["run_cnt"], open(sys.argv[1]).read().split()[0]))' "$out"
	wait $tool || true
	rm -f "$out"
}
declare -A walk
for _ in $(seq "$runs"); do
	walk[cfi_nofp]+="$(walk_cost ./memleak-bpf 3600 -- build/workloads/deep_nofp "$deep_pairs" 2)"$'\n'
	walk[cfi_fp]+="$(walk_cost ./memleak-bpf 3600 -- build/workloads/deep_fp "$deep_pairs" 2)"$'\n'
	walk[fp_only]+="$(walk_cost MEMLEAK_BPF_UNWIND=fp ./memleak-bpf 3600 -- build/workloads/deep_fp "$deep_pairs" 2)"$'\n'
done
sysctl -qw kernel.bpf_stats_enabled="$stats_was"
untraced_deep=$(for _ in $(seq "$runs"); do build/workloads/deep_nofp "$deep_pairs"; done | median)
printf '\nstack walk, 11-frame allocation site (untraced pair: %s ns)\n' "$untraced_deep"
printf '%-40s %16s %10s\n' "walk" "ns/probe run" "ns/pair"
for w in cfi_nofp cfi_fp fp_only; do
	case $w in
	cfi_nofp) label="unwind tables, -O2 no frame pointers" ;;
	cfi_fp) label="unwind tables, -O2 with frame pointers" ;;
	fp_only) label="frame pointers only (bpf_get_stack)" ;;
	esac
	printf '%-40s %16s %10s\n' "$label" \
		"$(echo -n "${walk[$w]}" | awk '{print $1}' | median)" \
		"$(echo -n "${walk[$w]}" | awk '{print $2}' | median)"
done

# The same allocation site against the floor: ns a pair adds over untraced,
# under the empty programs at memleak-bpf's sites and under memleak-bpf.
deep_floor=$(for _ in $(seq "$runs"); do
	WORKLOAD="build/workloads/deep_nofp $deep_pairs" floor_sites
done | median)
deep_traced=$(echo -n "${walk[cfi_nofp]}" | awk '{print $2}' | median)
printf 'no frame pointers, unwound: floor %s ns/pair, memleak-bpf %s: added/floor %.2f\n' \
	"$deep_floor" "$deep_traced" \
	"$(echo "($deep_traced - $untraced_deep) / ($deep_floor - $untraced_deep)" | bc -l)"

# A launched command's threads: 2,000 created and joined one after another,
# untraced, under -p (probes only) and launched (probes and ptrace: a
# thread's creation stops twice, its exit not at all).
churn=build/workloads/thread_churn
churn_untraced=$(for _ in $(seq "$runs"); do $churn 2000; done | median)
churn_p=$(for _ in $(seq "$runs"); do
	$churn 2000 3 &
	target=$!
	sleep 1
	./memleak-bpf --output /dev/null -p $target 3600 2>/dev/null &
	wait $target
	wait
done | median)
churn_launched=$(for _ in $(seq "$runs"); do
	./memleak-bpf --output /dev/null 3600 -- $churn 2000 2>/dev/null
done | median)
printf '\n2,000 thread create+join: untraced %s s, -p %s s (%.1fx), launched %s s (%.1fx)\n' \
	"$churn_untraced" "$churn_p" "$(echo "$churn_p / $churn_untraced" | bc -l)" \
	"$churn_launched" "$(echo "$churn_launched / $churn_untraced" | bc -l)"

# A real client: redis-benchmark SET and GET against Debian's redis-server
# (redis-check-rdb under its server name; jemalloc), on loopback with bounded
# request counts: untraced, under the floor (empty programs on jemalloc's
# malloc, calloc, realloc and free, at memleak-bpf's sites) and under
# memleak-bpf -p. REDIS_REQUESTS per test (default 200000).
rdir=$(mktemp -d)
ln -s "$(command -v redis-check-rdb)" "$rdir/redis-server"
jemalloc=$(ldd "$rdir/redis-server" | awk '/libjemalloc/ {print $3}')
rport=6391
redis_rps() { # mode: prints "SET GET" requests per second
	"$rdir/redis-server" --port $rport --save "" --appendonly no >/dev/null &
	local server=$! tracer=
	sleep 1
	case $1 in
	floor) build/floor_probes sites "$jemalloc" build/floor.bpf.o >/dev/null & tracer=$! ;;
	traced) ./memleak-bpf -p $server 3600 >/dev/null 2>&1 & tracer=$! ;;
	esac
	[ -n "$tracer" ] && sleep 3
	redis-benchmark -p $rport -q -t set,get -n "${REDIS_REQUESTS:-200000}" -r 100000 -c 10 |
		tr '\r' '\n' | awk '/^SET: [0-9]/ {s = $2} /^GET: [0-9]/ {g = $2} END {print s, g}'
	[ -n "$tracer" ] && { kill -INT $tracer; wait $tracer 2>/dev/null || true; }
	redis-cli -p $rport shutdown nosave >/dev/null 2>&1 || true
	wait $server 2>/dev/null || true
}
declare -A rset rget
for mode in untraced floor traced; do
	for _ in $(seq "$runs"); do redis_rps $mode; done >"$rdir/$mode"
	rset[$mode]=$(awk '{print $1}' "$rdir/$mode" | median)
	rget[$mode]=$(awk '{print $2}' "$rdir/$mode" | median)
done
rm -rf "$rdir"
printf '\nredis-benchmark -t set,get -r 100000 -c 10, requests/s (ratio to untraced)\n'
printf '%-34s %10s %6s %10s %6s\n' "redis-server" "SET" "" "GET" ""
for mode in untraced floor traced; do
	case $mode in
	untraced) label="untraced" ;;
	floor) label="floor (empty programs, jemalloc)" ;;
	traced) label="memleak-bpf -p" ;;
	esac
	printf '%-34s %10.0f %6.2f %10.0f %6.2f\n' "$label" "${rset[$mode]}" \
		"$(echo "${rset[$mode]} / ${rset[untraced]}" | bc -l)" "${rget[$mode]}" \
		"$(echo "${rget[$mode]} / ${rget[untraced]}" | bc -l)"
done

# A report's CPU time (JSON cpu_ms: reading the maps, judging, symbolizing)
# with a million outstanding allocations: a launched command leaks them,
# then holds them while reports run every 2 s. (scripts/report_cost.sh: the
# same with 100,000 stacks holding blocks, -p on 47 processes.)
report_ms=$(./memleak-bpf --json 2 -- build/workloads/flood 1000000 40 2>/dev/null | python3 -c '
import json, sys
rs = [json.loads(l) for l in sys.stdin if l.startswith("{\"type\":\"report\"")]
full = sorted(r["cpu_ms"] for r in rs if not r["final"]
              and sum(p["heap"]["outstanding_allocs"] for p in r["processes"]) == 1000000)
if len(full) < 5:
    sys.exit("report_cost: only %d reports held the million" % len(full))
print("%.1f %.1f %d" % (full[len(full) // 2], full[-1], len(full)))')
read -r report_median report_max report_n <<<"$report_ms"
printf '\nreport CPU at 1,000,000 outstanding allocations: median %s ms, max %s ms (%s reports)\n' \
	"$report_median" "$report_max" "$report_n"

# Pages mode on a server: redis's throughput under -p --pages and -p, and the
# page programs' run time per event.
echo
scripts/pages_bench.sh

# The pause of a live scan, on a process holding a million blocks in 100 MiB.
echo
/usr/bin/env python3 scripts/scan_bench.py

# Launch latency beside valgrind's, and watch mode while 20 processes are
# unprobed at once (the report period should not move).
echo
scripts/launch_bench.sh
/usr/bin/env python3 scripts/unprobe_bench.py
