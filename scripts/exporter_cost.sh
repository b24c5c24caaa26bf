#!/usr/bin/env bash
# What --listen costs: the system-wide watcher run SECS seconds (default 60)
# without and with the exporter, scraped every second, while 10 server-like
# processes run. Prints the tool's CPU time (user + system) and peak RSS.
# Run by hand, as root, on an otherwise quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECS:-60}
port=${PORT:-9877}
hz=$(getconf CLK_TCK)
measure() { # label, tool options...
	local label=$1 tool scraped=0
	shift
	for _ in $(seq 10); do build/workloads/server_like $((secs + 5)) 0 & done
	./memleak-bpf "$@" --output /dev/null 5 2>/dev/null &
	tool=$!
	local end=$((SECONDS + secs))
	while [ $SECONDS -lt $end ]; do
		sleep 1
		if [ $# -gt 0 ] && curl -sf "http://127.0.0.1:$port/metrics" >/dev/null; then
			scraped=$((scraped + 1))
		fi
	done
	read -r utime stime < <(awk '{print $14, $15}' "/proc/$tool/stat")
	local hwm
	hwm=$(awk '/VmHWM/ {print $2}' "/proc/$tool/status")
	kill -INT $tool
	wait $tool || true
	wait
	printf '%-16s cpu %6.2f s in %d s (%.2f%% of a core), peak RSS %6.1f MiB, scrapes %d\n' \
		"$label" "$(echo "($utime + $stime) / $hz" | bc -l)" "$secs" \
		"$(echo "($utime + $stime) / $hz / $secs * 100" | bc -l)" "$(echo "$hwm / 1024" | bc -l)" \
		"$scraped"
}
measure "watch" 
measure "watch --listen" --listen "127.0.0.1:$port"
