#!/usr/bin/env bash
# A login flood, as an attacker would send it: unauthenticated POST /admin/api/login with a
# 3.9 KB username and a wrong password, from wrk (2 threads, 64 connections) for SECONDS
# (default 30), against the release server. Prints the requests sent, the answers, the
# audit entries written and how much the data directory grew (the audit keeps one entry per
# address and minute, with a count).
#   bash bench/login_flood.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN="${1:-30}"
cargo build --release --bin proxyfleet >/dev/null
source bench/lib.sh
require_tools wrk python3
port=$(port_of)
PROXYFLEET_LISTEN="127.0.0.1:$port" PROXYFLEET_DATA_DIR="$work/data" \
  PROXYFLEET_REGISTRY_TOKEN=bench-token PROXYFLEET_ADMIN_TOKEN=bench-admin \
  PROXYFLEET_HTTPS_LISTEN=127.0.0.1:0 RUST_LOG=warn ./target/release/proxyfleet serve >/dev/null &
pid=$!
wait_up "http://127.0.0.1:$port/healthz"
curl -fs -o /dev/null -H "Authorization: Bearer bench-admin" -H "Content-Type: application/json" \
  -d '{"username":"ops","password":"correct horse battery"}' "http://127.0.0.1:$port/admin/api/accounts"
before=$(du -sb "$work/data" | cut -f1)
cat > "$work/flood.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username":"$(printf 'x%.0s' $(seq 3900))","password":"guess guess guess"}'
LUA
wrk -t2 -c64 -d"${SECONDS_RUN}s" -s "$work/flood.lua" "http://127.0.0.1:$port/admin/api/login" \
  | grep -E "requests in|Non-2xx|Requests/sec"
audit=$(curl -fs -H "Authorization: Bearer bench-admin" \
  "http://127.0.0.1:$port/admin/api/audit?q=login_failed&limit=500")
after=$(du -sb "$work/data" | cut -f1)
echo "$audit" | python3 -c '
import json, sys
entries = json.load(sys.stdin)["entries"]
total = sum(e["count"] for e in entries)
print(f"audit: {len(entries)} failed-login entries counting {total} attempts")'
python3 -c "print(f'data dir: {$before/1048576:.2f} MiB before, {$after/1048576:.2f} MiB after, grew {($after-$before)/1048576:.2f} MiB')"
