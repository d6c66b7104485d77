#!/usr/bin/env bash
# Soak: MINUTES (default 10) of steady traffic against the release server with the Redis mirror
# on (a real redis-server), sampling every 30 s the server's resident memory, open files and
# threads, the data directory's size and Redis' memory. Load, paced by wrk's delay hook:
#   heartbeats of 1,000 proxies (50 connections, 10 ms apart: about 5,000/s);
#   config reads of 1,000 users (20 connections, 10 ms apart: about 2,000/s).
# Prints a Markdown section on stdout.
#   bash bench/soak.sh [minutes]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-10}"
cargo build --release --bin proxyfleet >/dev/null
source bench/lib.sh
require_tools redis-server redis-cli wrk python3

start_redis
port=$(port_of)
PROXYFLEET_LISTEN="127.0.0.1:$port" PROXYFLEET_DATA_DIR="$work/data" \
  PROXYFLEET_REGISTRY_TOKEN=bench-token PROXYFLEET_ADMIN_TOKEN=bench-admin \
  PROXYFLEET_ALLOW_PRIVATE_IPS=true PROXYFLEET_RATE_LIMITS__ENABLED=false PROXYFLEET_HTTPS_LISTEN=127.0.0.1:0 \
  PROXYFLEET_REDIS_URL="redis://127.0.0.1:$redis_port" PROXYFLEET_FALLBACKS_PER_USER=3 RUST_LOG=warn \
  ./target/release/proxyfleet serve >"$work/log" 2>&1 &
pid=$!
wait_up "http://127.0.0.1:$port/healthz"
# 1,000 proxies, each heartbeating with its own secret.
python3 bench/enrol.py "http://127.0.0.1:$port" bench-token 1000 "$work/secrets" >/dev/null
export BENCH_SECRETS="$work/secrets"
python3 bench/seed.py users "http://127.0.0.1:$port" bench-admin 1000 "$work/tokens"

seconds=$((MINUTES * 60))
BENCH_DELAY_MS=10 wrk -t1 -c50 -d"${seconds}s" -s bench/heartbeat.lua "http://127.0.0.1:$port" >"$work/hb" &
hb_pid=$!
BENCH_TOKENS="$work/tokens" BENCH_DELAY_MS=10 wrk -t1 -c20 -d"${seconds}s" -s bench/config_users.lua \
  "http://127.0.0.1:$port" >"$work/cfg" &
cfg_pid=$!
sample() { # elapsed seconds -> a table row
  local rss anon fds threads data redis_mem behind
  rss=$(rss_mib "$pid")
  # Heap and anonymous maps, apart from mapped files: says which one grows if RSS does.
  anon=$(awk '/RssAnon/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  threads=$(awk '/Threads/ {print $2}' "/proc/$pid/status")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  data=$(du -sb "$work/data" | awk '{printf "%.1f", $1 / 1048576}')
  redis_mem=$(redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory:/ {printf "%.1f", $2 / 1048576}')
  behind=$(curl -fs -H "Authorization: Bearer bench-admin" "http://127.0.0.1:$port/api/v1/admin/mirror" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["changes_behind"])')
  echo "| $1 | $rss | $anon | $fds | $threads | $data | $redis_mem | $behind |"
}
rows=()
for t in $(seq 30 30 "$seconds"); do
  sleep 30
  rows+=("$(sample "$t")")
  echo "${rows[-1]}" >&2
done
wait "$hb_pid" "$cfg_pid" || true
hb=$(awk '/^RESULT/ {print $2, $3, $4, $5, $6}' "$work/hb")
cfg=$(awk '/^RESULT/ {print $2, $3, $4, $5, $6}' "$work/cfg")
read -r hb_n hb_rps hb_p50 hb_p99 hb_err <<<"$hb"
read -r cfg_n cfg_rps cfg_p50 cfg_p99 cfg_err <<<"$cfg"
# The range of each measure in each third of the run: memory and disk are flat when the last
# third's range sits where the second's does (the first includes warming the caches).
growth=$(printf '%s\n' "${rows[@]}" | python3 -c '
import sys
rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in sys.stdin if line.strip()]
thirds = [rows[: len(rows) // 3], rows[len(rows) // 3 : 2 * len(rows) // 3], rows[2 * len(rows) // 3 :]]
for label, col in (("RSS", 1), ("anonymous", 2), ("data dir", 5)):
    spans = [f"{min(float(r[col]) for r in t):.1f}-{max(float(r[col]) for r in t):.1f}" for t in thirds]
    print(f"| {label} | " + " | ".join(spans) + " |")
')
cat <<MD
## Soak: $MINUTES minutes of steady traffic

\`bash bench/soak.sh $MINUTES\` on $(date -u +%Y-%m-%d): the release server with the Redis mirror on
(a real redis-server), 1,000 users with 3 fallback proxies each. Paced load (wrk's delay hook):
heartbeats of 1,000 proxies from 50 connections and config reads of random users from 20
connections, each connection waiting 10 ms between requests. Sampled every 30 s.

| load | requests | req/s | p50 ms | p99 ms | errors |
|---|---:|---:|---:|---:|---:|
| heartbeats | $hb_n | $hb_rps | $hb_p50 | $hb_p99 | $hb_err |
| config reads | $cfg_n | $cfg_rps | $cfg_p50 | $cfg_p99 | $cfg_err |

| MiB, lowest-highest sample | first third | second third | last third |
|---|---:|---:|---:|
$growth

| seconds | RSS MiB | anonymous MiB | open files | threads | data dir MiB | Redis MiB | mirror behind |
|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${rows[@]}")
MD
