#!/usr/bin/env bash
# A long system-wide --all-stacks run while short-lived processes with
# distinct stacks come and go (many_stacks: 2,048 stacks each, a new address
# layout each time): every minute, the tool's RSS, the stack table's entries
# and what was reclaimed, the process table's entries, and every dropped count.
# MINUTES (default 60) long, RATE processes a second (default 2).
# Run by hand (as root), after make: scripts/soak.sh > soak.log
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${MINUTES:-60}
rate=${RATE:-2}
out=$(mktemp)
./memleak-bpf --all-stacks --json --max-procs 3 10 >"$out" 2>/dev/null &
tool=$!
trap 'kill -INT $tool 2>/dev/null; wait $tool 2>/dev/null; rm -f "$out"' EXIT
sleep 3
entries() { # entries of our map called $1, by walking it
	local id
	id=$(bpftool -j map show | python3 -c "
import json, sys
ids = [m['id'] for m in json.load(sys.stdin) if m.get('name') == '$1']
print(ids[0] if ids else '')")
	[ -n "$id" ] && bpftool -j map dump id "$id" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
start=$(date +%s)
spawned=0
next_report=$((start + 60))
echo "minute processes tool_rss_kib stack_entries stacks_reclaimed procs_entries dropped"
while [ $(($(date +%s) - start)) -lt $((minutes * 60)) ]; do
	for _ in $(seq "$rate"); do build/workloads/many_stacks & done
	wait_children=$(jobs -p | grep -vx "$tool" || true)
	[ -n "$wait_children" ] && wait $wait_children 2>/dev/null || true
	spawned=$((spawned + rate))
	sleep 1
	if [ "$(date +%s)" -ge "$next_report" ]; then
		next_report=$((next_report + 60))
		rss=$(awk '/VmRSS/{print $2}' "/proc/$tool/status")
		tail -n 1 "$out" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print(sys.argv[1], sys.argv[2], sys.argv[3], r["stack_table"]["entries"],
      r["stack_table"]["reclaimed"], sys.argv[4], json.dumps(r["dropped"]), flush=True)' \
			"$(( ($(date +%s) - start) / 60 ))" "$spawned" "$rss" "$(entries procs)"
	fi
done
