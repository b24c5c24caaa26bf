#!/usr/bin/env bash
# Record the memory curves of real programs (Debian's python3, sqlite3,
# node.js, redis-server under redis-benchmark) into tests/curves/, for the unit suite
# to replay: `memleak-bpf --curve` at 0.5 s, each program with and without a
# leak. Run by hand (about 10 minutes; ONLY=node_* records only those); the
# answers are in tests/curves/cases.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/curves
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tool=./memleak-bpf
secs=${SECS:-60}

record() { # name command...: trace it, keep the judged curve
	local name=$1
	shift
	[[ $name == ${ONLY:-*} ]] || return 0
	"$tool" --curve "$tmp/$name.csv" --output /dev/null 5 -- "$@" >/dev/null
	cut -d, -f1,10 "$tmp/$name.csv" >"$out/$name.csv"
	echo "recorded $name: $(($(wc -l <"$out/$name.csv") - 1)) samples"
}

# python3: objects in reference cycles, made and dropped (the GC collects them)
cat >"$tmp/cycles.py" <<PY
import time
t0 = time.time()
while time.time() - t0 < $secs:
    for _ in range(2000):
        a = {"data": bytearray(512)}; b = {"peer": a}; a["peer"] = b
    time.sleep(0.01)
PY
record python_gc_cycles /usr/bin/python3 "$tmp/cycles.py"

# python3: a global list that keeps what it is given (a slow leak, 100 KiB/s)
cat >"$tmp/list.py" <<PY
import time
keep, t0 = [], time.time()
while time.time() - t0 < $secs:
    for _ in range(2000):
        a = {"data": bytearray(512)}; b = {"peer": a}; a["peer"] = b
    keep.append(bytearray(10 * 1024))
    time.sleep(0.1)
PY
record python_global_list /usr/bin/python3 "$tmp/list.py"

# python3: an LRU cache filling to its limit, then replacing entries
cat >"$tmp/lru.py" <<PY
import collections, time
cache, t0, i = collections.OrderedDict(), time.time(), 0
while time.time() - t0 < $secs:
    cache[i] = bytearray(4096); i += 1
    if len(cache) > 5000:
        cache.popitem(last=False)
    time.sleep(0.002)
PY
record python_lru_cache /usr/bin/python3 "$tmp/lru.py"

# sqlite3: fill a table, delete, vacuum, again (an in-memory database)
{
	echo "create table t(id integer primary key, v blob);"
	for round in $(seq $((secs / 3))); do
		echo "insert into t(v) select randomblob(1000) from (with recursive c(x) as (select 1 union all select x+1 from c where x < 3000) select x from c);"
		echo "delete from t; vacuum;"
		echo "select 'round $round';"
		echo ".shell sleep 2.5"
	done
} >"$tmp/fill_vacuum.sql"
record sqlite_fill_vacuum sqlite3 :memory: -init "$tmp/fill_vacuum.sql" .quit

# sqlite3: the same table, never emptied (grows 1.2 MB a round)
sed 's/delete from t; vacuum;//' "$tmp/fill_vacuum.sql" >"$tmp/grow.sql"
record sqlite_grows sqlite3 :memory: -init "$tmp/grow.sql" .quit

# node.js: buffers made and dropped every 20 ms (the GC frees their memory)
cat >"$tmp/churn.js" <<JS
const t0 = Date.now();
(function tick() {
	if (Date.now() - t0 > $secs * 1000) return;
	const a = [];
	for (let i = 0; i < 100; i++) a.push(Buffer.alloc(16384));
	setTimeout(tick, 20);
})();
JS
record node_buffer_churn node "$tmp/churn.js"

# node.js: the same, and a global array that keeps 32 KiB every 100 ms
cat "$tmp/churn.js" - >"$tmp/keep.js" <<JS
const keep = [];
const drip = setInterval(() => {
	keep.push(Buffer.alloc(32768));
	if (Date.now() - t0 > $secs * 1000) clearInterval(drip);
}, 100);
JS
record node_global_array node "$tmp/keep.js"

# a settled server (tests/workloads/server_like.c "big": a churning 16 MiB
# cache, 16 MiB bursts every 2 s) that starts a 640 KiB/s drip at 25 s
make -s build/workloads/server_like
record server_settled_drip build/workloads/server_like "$secs" 25 big

# redis-server (Debian's redis-check-rdb under its server name) under
# redis-benchmark's mixed workload: a fixed key space, lists pushed and popped
ln -sf "$(command -v redis-check-rdb)" "$tmp/redis-server"
redis() { # name benchmark-args...
	local name=$1
	shift
	[[ $name == ${ONLY:-*} ]] || return 0
	"$tool" --curve "$tmp/$name.csv" --output /dev/null 5 -- "$tmp/redis-server" --port 6390 \
		--save "" --appendonly no >/dev/null &
	local tracer=$!
	sleep 2
	timeout $((secs - 4)) redis-benchmark -p 6390 -q -l "$@" >/dev/null 2>&1 || true
	redis-cli -p 6390 shutdown nosave >/dev/null || true
	wait $tracer || true
	cut -d, -f1,10 "$tmp/$name.csv" >"$out/$name.csv"
	echo "recorded $name: $(($(wc -l <"$out/$name.csv") - 1)) samples"
}
redis redis_mixed -t set,get,lpush,lpop,incr -r 10000 -c 10 -n 5000
# a key space that never repeats: every SET keeps a new key (redis as a leak)
redis redis_new_keys -t set -r 100000000 -d 100 -c 4

# Pages mode, per stack (what the stack judge reads): page_drip (a churning
# 16 MiB cache, 16 MiB bursts unmapped, a 640 KiB/s drip from 25 s) under
# --pages at 0.5 s; each curve is a stack's resident bytes at each report:
# the drip's largest stack, the cache's, the bursts'.
if [[ pages_drip_stack == ${ONLY:-*} ]]; then
	make -s build/workloads/page_drip
	"$tool" --pages --json -T 50 --output "$tmp/pages.json" 0.5 -- \
		build/workloads/page_drip "$secs" 25 >/dev/null
	python3 - "$tmp/pages.json" "$out" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
def first(s):
    return s["frames"][0]["symbol"] if s["frames"] else None
for fn, name in (("drip", "pages_drip_stack"), ("cache_put", "pages_cache_stack"),
                 ("burst_load", "pages_burst_stack")):
    ids = [s for r in rs[:-1] for s in r["processes"][0]["stacks"] if first(s) == fn]
    key = max(ids, key=lambda s: s["resident_bytes"])["frames"][0]["addr"]
    with open("%s/%s.csv" % (sys.argv[2], name), "w") as f:
        f.write("time_s,resident_bytes\n")
        for r in rs[:-1]:  # the final one: the process's end
            held = [s["resident_bytes"] for s in r["processes"][0]["stacks"]
                    if s["frames"] and s["frames"][0]["addr"] == key]
            f.write("%.3f,%d\n" % (r["elapsed_s"], held[0] if held else 0))
    print("recorded", name)
PY
fi
