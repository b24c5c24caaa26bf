#!/usr/bin/env bash
# Is the verdict the same run after run? Run by hand (about 5 minutes):
# 5 runs of a python3 script leaking 2 MB/s for 20 s under --fail-on-leak
# (exit status and the verdict of each report), and 5 runs of redis-server
# attached with -p under redis-benchmark's mixed workload (any leak printed).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/leak.py" <<'PY'
import time
keep, t0 = [], time.time()
while time.time() - t0 < 20:
    keep.append(bytearray(200 * 1024))
    time.sleep(0.1)
PY
states() { # report file: one letter per report, then the last state
	python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{\"type\":\"report\"")]
st = [r["processes"][0]["verdict"]["state"] for r in rs if r["processes"]]
print("".join(s[0] for s in st), st[-1] if st else "-")' "$1"
}
for i in 1 2 3 4 5; do
	status=0
	./memleak-bpf --fail-on-leak --json --output "$tmp/py.json" 1 -- /usr/bin/python3 \
		"$tmp/leak.py" >/dev/null 2>&1 || status=$?
	echo "python3 leak, run $i: exit $status, reports $(states "$tmp/py.json")"
done
ln -sf "$(command -v redis-check-rdb)" "$tmp/redis-server"
for i in 1 2 3 4 5; do
	"$tmp/redis-server" --port 6389 --save "" --appendonly no >/dev/null 2>&1 &
	server=$!
	sleep 1
	./memleak-bpf --json --output "$tmp/redis.json" -p $server 5 >/dev/null 2>&1 &
	tool=$!
	sleep 3
	redis-benchmark -p 6389 -q -t set,get,lpush,lpop,incr -n "${REQUESTS:-20000}" >/dev/null 2>&1
	sleep 5
	kill -INT $tool
	wait $tool || true
	redis-cli -p 6389 shutdown nosave >/dev/null 2>&1 || true
	wait $server 2>/dev/null || true
	echo "redis-server mixed, run $i: reports $(states "$tmp/redis.json")"
done
