#!/usr/bin/env bash
# Store growth under churn: TOTAL heartbeats (default 10,000,000) over 10,000 proxies against
# the release server, printing the data directory's size and the server's resident memory
# after every round, then once more after a restart.
# Server settings can be passed in the environment (e.g. PROXYFLEET_STORE_COMPACT_RATIO=0).
#   bash bench/store_growth.sh [total heartbeats] [seconds per round]
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL="${1:-10000000}"
ROUND="${2:-30}"
cargo build --release --bin proxyfleet >/dev/null
source bench/lib.sh
require_tools wrk python3 bc
port=$(port_of)
start_server() {
  PROXYFLEET_LISTEN="127.0.0.1:$port" PROXYFLEET_DATA_DIR="$work/data" \
    PROXYFLEET_REGISTRY_TOKEN=bench-token PROXYFLEET_ADMIN_TOKEN=bench-admin \
    PROXYFLEET_ALLOW_PRIVATE_IPS=true PROXYFLEET_RATE_LIMITS__ENABLED=false \
    PROXYFLEET_HTTPS_LISTEN=127.0.0.1:0 RUST_LOG=warn ./target/release/proxyfleet serve >/dev/null &
  pid=$!
  wait_up "http://127.0.0.1:$port/healthz"
}
report() { # label heartbeats
  local bytes rss compactions
  bytes=$(du -sb "$work/data" | cut -f1)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  compactions=$(curl -fs -H "Authorization: Bearer bench-admin" "http://127.0.0.1:$port/api/v1/admin/store" \
    | python3 -c 'import json,sys; s=json.load(sys.stdin); print("generation", s["generation"], "compactions", s["compactions"])')
  printf '%-10s heartbeats %10d  data %7.1f MiB  rss %7.1f MiB  %s\n' "$1" "$2" \
    "$(echo "$bytes / 1048576" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$compactions"
}
start_server
# 10,000 proxies, each heartbeating with its own secret (kept across the restart below).
python3 bench/enrol.py "http://127.0.0.1:$port" bench-token 10000 "$work/secrets" >/dev/null
export BENCH_SECRETS="$work/secrets"
done_total=0
round=0
while [ "$done_total" -lt "$TOTAL" ]; do
  round=$((round + 1))
  sent=$(BENCH_PROXIES=10000 wrk -t2 -c64 -d"${ROUND}s" -s bench/heartbeat.lua "http://127.0.0.1:$port/register" \
    | awk '/^RESULT/ {print $2}')
  done_total=$((done_total + sent))
  report "round $round" "$done_total"
done
kill -TERM "$pid"; wait "$pid" || true
start_server
report "restarted" "$done_total"
# What a compaction gives back (the live data's size in a fresh sled).
curl -fs -X POST -H "Authorization: Bearer bench-admin" "http://127.0.0.1:$port/api/v1/admin/store/compact" \
  | python3 -c 'import json,sys; c=json.load(sys.stdin); print("compacted", c["bytes_before"], "->", c["bytes_after"], "bytes,", c["records"], "records, writes paused", c["writes_paused_ms"], "ms")'
report "compacted" "$done_total"
