#!/usr/bin/env bash
# The Redis mirror and the edge, measured against a real redis-server on this machine.
# Prints a Markdown section on stdout (progress goes to stderr); bench/run.sh appends it to
# BENCHMARKS.md, and `--write` replaces that section in BENCHMARKS.md when run alone.
#   bash bench/mirror.sh [seconds per run, default 15] [users for the resync, default 1000000] [--write]
# Needs redis-server, redis-benchmark, redis-cli and wrk. Traffic goes to loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
WRITE=false
args=()
for a in "$@"; do [ "$a" = --write ] && WRITE=true || args+=("$a"); done
DURATION="${args[0]:-15}"
USERS="${args[1]:-1000000}"

cargo build --release --bin proxyfleet --bin bench-mirror >/dev/null
source bench/lib.sh
require_tools redis-server redis-benchmark redis-cli wrk python3
say() { echo "mirror bench: $*" >&2; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

start_redis
redis_url="redis://127.0.0.1:$redis_port"

# The ceiling: what this redis-server takes from one client process on these cores.
say "redis-benchmark"
# --csv: one clean line per test ("SET","<requests per second>",...), no progress output.
set_rate() { redis-benchmark -p "$redis_port" -t set --csv "$@" | awk -F'"' '$2 == "SET" {printf "%d\n", $4}'; }
rb_plain=$(set_rate -n 1000000 -c 50)
rb_piped=$(set_rate -n 2000000 -c 50 -P 100)
redis-cli -p "$redis_port" flushall >/dev/null

serve() { # data_dir port [extra env...]
  local dir="$1" port="$2"; shift 2
  env PROXYFLEET_LISTEN="127.0.0.1:$port" PROXYFLEET_DATA_DIR="$dir" \
    PROXYFLEET_REGISTRY_TOKEN=bench-token PROXYFLEET_ADMIN_TOKEN=bench-admin \
    PROXYFLEET_ALLOW_PRIVATE_IPS=true PROXYFLEET_RATE_LIMITS__ENABLED=false PROXYFLEET_HTTPS_LISTEN=127.0.0.1:0 PROXYFLEET_FALLBACKS_PER_USER=3 RUST_LOG=warn \
    PROXYFLEET_REBALANCE_INTERVAL_SECS=0 PROXYFLEET_HEARTBEAT_TTL_SECS=86400 "$@" \
    ./target/release/proxyfleet serve >/dev/null 2>&1 &
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }
mirror_report() { curl -fs -H "Authorization: Bearer bench-admin" "http://127.0.0.1:$1/api/v1/admin/mirror"; }

# 1. Lag: heartbeats of 1,000 proxies at a steady pace (LAG_CONNS connections, 10 ms apart),
# every one a committed change, while a subscriber times each event from commit to PUBLISH.
LAG_CONNS=130
say "lag at a steady heartbeat rate"
lag_port=$(port_of)
serve "$work/lag" "$lag_port" PROXYFLEET_REDIS_URL="$redis_url"; lag_pid=$!
wait_up "http://127.0.0.1:$lag_port/healthz"
python3 bench/enrol.py "http://127.0.0.1:$lag_port" bench-token 1000 "$work/secrets" >/dev/null
export BENCH_SECRETS="$work/secrets"
BENCH_DELAY_MS=10 wrk -t2 -c"$LAG_CONNS" -d3s -s bench/heartbeat.lua "http://127.0.0.1:$lag_port" >/dev/null
./target/release/bench-mirror lag "$redis_url" "$DURATION" >"$work/lag.out" &
lag_reader=$!
sleep 0.5
hb=$(BENCH_DELAY_MS=10 wrk -t2 -c"$LAG_CONNS" -d"${DURATION}s" -s bench/heartbeat.lua "http://127.0.0.1:$lag_port" \
  | awk '/^RESULT/ {print $2, $3, $4, $5, $6}')
wait "$lag_reader"
read -r lag_changes lag_rate lag_p50 lag_p99 lag_max <<<"$(awk '/^RESULT/ {print $2, $3, $4, $5, $6}' "$work/lag.out")"
read -r hb_req hb_rps hb_p50 hb_p99 hb_err <<<"$hb"
lag_behind=$(mirror_report "$lag_port" | field changes_behind)
stop "$lag_pid"
redis-cli -p "$redis_port" flushall >/dev/null

# 2. Full resync: USERS users, each with 3 fallback proxies and a subset of free ones, written
# into a stopped store; then the server starts with Redis empty and copies everything.
say "seeding $USERS users"
seed_port=$(port_of)
serve "$work/big" "$seed_port"; seed_pid=$!
wait_up "http://127.0.0.1:$seed_port/healthz"
for i in 1 2 3; do
  curl -fs -H "Authorization: Bearer bench-token" -d "name=fb$i&ip=127.0.0.$i&port=8443&country=DE&lat=52.5&lon=13.4" \
    "http://127.0.0.1:$seed_port/register" >/dev/null
done
for i in $(seq 20); do
  curl -fs -H "Authorization: Bearer bench-token" -d "name=free$i&ip=127.0.1.$i&port=8443&role=free&country=NL&lat=52.37&lon=4.9" \
    "http://127.0.0.1:$seed_port/register" >/dev/null
done
stop "$seed_pid"
SAMPLE=$(( USERS < 100000 ? USERS : 100000 ))
seed_line=$(./target/release/bench-mirror seed "$work/big" "$USERS" "$work/tokens" "$SAMPLE")
say "$seed_line; resync"
big_port=$(port_of)
serve "$work/big" "$big_port" PROXYFLEET_REDIS_URL="$redis_url"; big_pid=$!
wait_up "http://127.0.0.1:$big_port/healthz"
for _ in $(seq 3000); do
  [ "$(mirror_report "$big_port" | field resyncs)" -ge 1 ] && break
  sleep 0.2
done
report=$(mirror_report "$big_port")
resync_ms=$(echo "$report" | field last_resync_ms)
resync_records=$(echo "$report" | field last_resync_records)
keys=$(redis-cli -p "$redis_port" dbsize)
redis_mem=$(redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory_human/ {print $2}' | tr -d '\r')
keys_per_sec=$(python3 -c "print(f'{$keys / ($resync_ms / 1000):,.0f}')")
users_per_sec=$(python3 -c "print(f'{$USERS / ($resync_ms / 1000):,.0f}')")
records_per_sec=$(python3 -c "print(f'{$resync_records / ($resync_ms / 1000):,.0f}')")

# 3. Failover: a primary rebuilt from what Redis holds (`proxyfleet restore --from-redis`),
# its wall time and peak resident memory from GNU time.
say "rebuild from redis"
/usr/bin/time -f "TIME %e %M" -o "$work/rebuild.time" \
  ./target/release/proxyfleet restore --from-redis "$redis_url" --data-dir "$work/rebuilt" >"$work/rebuild.out" 2>&1
read -r rebuild_s rebuild_peak_kib <<<"$(awk '/^TIME/ {print $2, $3}' "$work/rebuild.time")"
rebuild_line=$(tail -1 "$work/rebuild.out")
rebuild_peak=$(python3 -c "print(f'{$rebuild_peak_kib / 1048576:.2f} GiB')")
say "$rebuild_line in $rebuild_s s"

# 4. Reads: the edge (Redis only) against the primary, on the same data and the same cores.
say "edge against primary"
edge_port=$(port_of)
# Its `/json` limit off, as the primary's rate limits are (lib.sh): the rows measure reads, not 429s.
./target/release/proxyfleet edge --redis "$redis_url" --listen "127.0.0.1:$edge_port" --json-per-minute 0 >/dev/null 2>&1 &
wait_up "http://127.0.0.1:$edge_port/healthz"
run() { wrk -t2 -c64 -d"${DURATION}s" "$@" | awk '/^RESULT/ {print $2, $3, $4, $5, $6}'; }
row() { read -r req rps p50 p99 err <<<"$2"; echo "| $1 | $req | $rps | $p50 | $p99 | $err |"; }
ratio() { python3 -c "print(f'{$(echo "$1" | cut -d' ' -f2) / $(echo "$2" | cut -d' ' -f2) * 100:.1f}')"; }
BENCH_TOKENS="$work/tokens" wrk -t1 -c8 -d2s -s bench/config_users.lua "http://127.0.0.1:$edge_port" >/dev/null
cfg_primary=$(BENCH_TOKENS="$work/tokens" run -s bench/config_users.lua "http://127.0.0.1:$big_port")
cfg_edge=$(BENCH_TOKENS="$work/tokens" run -s bench/config_users.lua "http://127.0.0.1:$edge_port")
json_primary=$(run -s bench/report.lua "http://127.0.0.1:$big_port/json?lat=50.85&lon=4.35")
json_edge=$(run -s bench/report.lua "http://127.0.0.1:$edge_port/json?lat=50.85&lon=4.35")

section=$(cat <<MD
## Redis mirror and edge

Written by \`bash bench/mirror.sh $DURATION $USERS\` on $(date -u +%Y-%m-%d), same machine, with
redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2) on loopback (no persistence)
sharing the $(nproc) cores with proxyfleet and the load generators.

**Ceiling**: \`redis-benchmark -t set -c 50 -n 1000000\`: **$rb_plain SET/s** one command per
round trip; with \`-P 100\` (pipelined): **$rb_piped SET/s**.

**Lag at a steady write rate**: 1,000 proxies heartbeating through $LAG_CONNS connections, 10 ms apart
(\`bench/heartbeat.lua\`), for ${DURATION} s: $hb_rps heartbeats/s acknowledged
(p99 $hb_p99 ms, $hb_err errors), each one a durable change. A subscriber on \`proxyfleet:events\`
timed every change from its commit (\`at_ms\` in the change log) to the event's arrival, which the
mirror publishes in the same MULTI/EXEC that writes the change:
**$lag_rate changes/s mirrored, lag p50 $lag_p50 ms, p99 $lag_p99 ms, max $lag_max ms**
(target p99 < 100 ms). Changes behind at the end: $lag_behind.

**Full resync**: $USERS users ($seed_line, straight into the store by \`bench-mirror seed\`), each
with 3 fallback proxies, a subset of 3 of 20 free proxies and a signed config. The server
started with an empty Redis and copied everything while serving (users in chunks of 2,000,
each chunk's configs rendered and signed on two threads while Redis takes the previous chunk): $resync_records records in
$resync_ms ms: **$records_per_sec records/s**, $keys keys = $keys_per_sec keys/s ($users_per_sec users/s; the
earlier target was >= 100,000 keys/s). A record is a user (with its links, tokens and config),
a proxy, or one field of the replica's \`<p>replica:<tree>\` hashes, which hold every tree
byte for byte (1 key per tree, so they add records, not keys). Redis memory after it: $redis_mem.

**Rebuild of a primary from Redis** (failover, docs/REDIS.md): \`proxyfleet restore --from-redis\`
on that Redis (the primary still running, idle): \`$rebuild_line\` (the path is the bench's
scratch directory), in **$rebuild_s s**, peak resident memory **$rebuild_peak**
(targets: under 60 s, under 2 GB).

**Reads from the edge** (\`proxyfleet edge\`, Redis only) against the primary (sled), same data,
wrk -t2 -c64 for ${DURATION} s each; config reads pick one of $SAMPLE users at random.

| path | server | requests | req/s | p50 ms | p99 ms | errors |
|---|---|---:|---:|---:|---:|---:|
$(row "\`GET /api/v1/config\` | primary" "$cfg_primary")
$(row "\`GET /api/v1/config\` | edge" "$cfg_edge")
$(row "\`GET /json\` (23 gateways) | primary" "$json_primary")
$(row "\`GET /json\` (23 gateways) | edge" "$json_edge")

Edge / primary: config **$(ratio "$cfg_edge" "$cfg_primary")%**, /json **$(ratio "$json_edge" "$json_primary")%**
on one machine. An edge reads Redis over the network for every config (one HGET for the token,
one HMGET for the config), where the primary reads sled in its own memory; its worth is that
edges add up on more machines (each behind the same Redis or a replica of it) while the primary
does not.
MD
)
if $WRITE; then
  python3 - "$section" <<'PY'
import sys
import re
text = open("BENCHMARKS.md").read()
# Only this section is replaced: up to the next `## ` heading, the rest is kept.
start = text.index("## Redis mirror and edge")
following = re.search(r"^## ", text[start + 3:], re.M)
end = start + 3 + following.start() if following else len(text)
open("BENCHMARKS.md", "w").write(text[:start] + sys.argv[1].rstrip("\n") + "\n\n" + text[end:])
PY
fi
echo "$section"
