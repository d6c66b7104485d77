#!/usr/bin/env bash
# The rebalancer at scale, through the API and the store: 1,000,000 users spread over 10,000
# fallback proxies (limit 200, 100 users each), 10% of the proxies reporting 250 clients (50
# over); then one dry run (`POST /api/v1/admin/rebalance?dry_run=true`): reading the snapshot
# from sled, planning, keeping the plan. Prints a Markdown section; `--write` replaces it in
# BENCHMARKS.md.
#   bash bench/rebalance.sh [users, default 1000000] [proxies, default 10000] [--write]
set -euo pipefail
cd "$(dirname "$0")/.."
WRITE=false
args=()
for a in "$@"; do [ "$a" = --write ] && WRITE=true || args+=("$a"); done
USERS="${args[0]:-1000000}"
PROXIES="${args[1]:-10000}"
OVERLOADED=$((PROXIES / 10))

cargo build --release --bin proxyfleet --bin bench-mirror >/dev/null
source bench/lib.sh
require_tools wrk python3 curl
say() { echo "rebalance bench: $*" >&2; }
env_all=(PROXYFLEET_MAX_CLIENTS=200 PROXYFLEET_FALLBACKS_PER_USER=1
  PROXYFLEET_REBALANCE_INTERVAL_SECS=0 PROXYFLEET_HEARTBEAT_TTL_SECS=86400
  PROXYFLEET_REBALANCE_MAX_MOVES=1000000)

port=$(port_of)
start_server "$port" "$work/data" "${env_all[@]}"
say "enrolling $PROXIES proxies"
python3 bench/enrol.py "http://127.0.0.1:$port" bench-token "$PROXIES" "$work/secrets" >/dev/null
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
say "seeding $USERS users"
seed_line=$(./target/release/bench-mirror seed "$work/data" "$USERS" "$work/tokens" 0 "$PROXIES")

port=$(port_of)
start_server "$port" "$work/data" "${env_all[@]}"
say "$OVERLOADED proxies report 250 clients"
python3 - "http://127.0.0.1:$port" "$work/secrets" "$OVERLOADED" <<'PY'
import http.client, sys, urllib.parse
url, secrets, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
parsed = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
with open(secrets) as f:
    for line in list(f)[:count]:
        name, secret = line.split()
        body = urllib.parse.urlencode({"name": name, "ip": "127.0.0.1", "port": "8443",
                                       "country": "DE", "clients": "250"})
        conn.request("POST", "/register", body, {"Authorization": f"Bearer {secret}",
                     "Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"heartbeat of {name}: HTTP {response.status}")
PY
rss_before=$(rss_mib "$server_pid")
say "dry run"
timing=$(curl -fs -o "$work/plan.json" -w '%{time_total}' -X POST \
  -H "Authorization: Bearer bench-admin" "http://127.0.0.1:$port/api/v1/admin/rebalance?dry_run=true")
read -r moves unplaced <<<"$(python3 -c "import json; p=json.load(open('$work/plan.json')); print(len(p['moves']), p['unplaced'])")"
peak=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$server_pid/status")
rss_after=$(rss_mib "$server_pid")

section=$(cat <<MD
## Rebalance at scale, snapshot read from the store

Written by \`bash bench/rebalance.sh $USERS $PROXIES\` on $(date -u +%Y-%m-%d), same machine:
$PROXIES fallback proxies enrolled (limit 200), $USERS users ($seed_line by
\`bench-mirror seed ... $PROXIES\`, one fallback proxy each, $((USERS / PROXIES)) per proxy), and
$OVERLOADED proxies heartbeating 250 clients (50 over their limit). One dry run over HTTP,
\`POST /api/v1/admin/rebalance?dry_run=true\`: the server reads the snapshot from sled (every
proxy, the users of the overloaded ones), plans, and keeps the plan: **$timing s** end to end
(curl), $moves moves planned, $unplaced unplaced. Server resident memory $rss_before MiB before,
$rss_after MiB after, peak (VmHWM, the whole server since its start) **$peak MiB**
(targets: under 5 s and under 2 GB).
MD
)
if $WRITE; then
  write_section "$section"
fi
echo "$section"
