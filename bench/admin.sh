#!/usr/bin/env bash
# The admin panel's pages with a big store: USERS users (default 1,000,000, written straight into
# the store by `bench-mirror seed`) and PROXIES live proxies (default 10,000, registered over
# HTTP). Each page is fetched RUNS times (default 20) over one connection; prints a Markdown
# section on stdout, and `--write` replaces that section in BENCHMARKS.md.
#   bash bench/admin.sh [users] [proxies] [runs] [--write]
set -euo pipefail
cd "$(dirname "$0")/.."
WRITE=false
args=()
for a in "$@"; do [ "$a" = --write ] && WRITE=true || args+=("$a"); done
USERS="${args[0]:-1000000}"
PROXIES="${args[1]:-10000}"
RUNS="${args[2]:-20}"

cargo build --release --bin proxyfleet --bin bench-mirror >/dev/null
source bench/lib.sh
say() { echo "admin bench: $*" >&2; }
port=$(port_of)
serve() {
  env PROXYFLEET_LISTEN="127.0.0.1:$port" PROXYFLEET_DATA_DIR="$work/data" \
    PROXYFLEET_REGISTRY_TOKEN=bench-token PROXYFLEET_ADMIN_TOKEN=bench-admin \
    PROXYFLEET_ALLOW_PRIVATE_IPS=true PROXYFLEET_RATE_LIMITS__ENABLED=false PROXYFLEET_HTTPS_LISTEN=127.0.0.1:0 RUST_LOG=warn PROXYFLEET_REBALANCE_INTERVAL_SECS=0 \
    PROXYFLEET_HEARTBEAT_TTL_SECS=86400 ./target/release/proxyfleet serve >"$work/log" 2>&1 &
  pid=$!
  wait_up "http://127.0.0.1:$port/healthz" 300 || { cat "$work/log" >&2; exit 1; }
}

say "seeding $USERS users"
mkdir -p "$work/data"
seed_line=$(./target/release/bench-mirror seed "$work/data" "$USERS" "$work/tokens" 1)
say "$seed_line; starting"
started=$(date +%s.%N)
serve
startup=$(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')")
rss_started=$(rss_mib "$pid")
say "registering $PROXIES proxies"
python3 - "$port" "$PROXIES" <<'PY'
import http.client, sys, urllib.parse
port, count = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
cities = [("DE", "Berlin", 52.5, 13.4), ("NL", "Amsterdam", 52.37, 4.9), ("US", "Dallas", 32.8, -96.8),
          ("SG", "Singapore", 1.35, 103.8), ("BR", "Sao Paulo", -23.5, -46.6), ("JP", "Tokyo", 35.7, 139.7)]
for i in range(count):
    cc, city, lat, lon = cities[i % len(cities)]
    body = urllib.parse.urlencode({"name": f"p{i}", "ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
        "port": 443, "country": cc, "city": city, "lat": lat, "lon": lon, "clients": i % 250, "capacity": 200,
        "role": "standby" if i % 10 == 0 else "fallback"})
    conn.request("POST", "/register", body, {"Authorization": "Bearer bench-token",
        "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse(); r.read()
    if r.status != 200: sys.exit(f"register p{i}: {r.status}")
PY
mid=$(( USERS / 2 ))
say "timing pages"
rows=$(python3 bench/admin_pages.py "$port" bench-admin "$RUNS" \
  "dashboard figures=/api/v1/admin/summary" \
  "dashboard charts=/api/v1/admin/summary/series?days=14" \
  "proxies, first page=/api/v1/admin/proxies?limit=50&history=true" \
  "proxies, deep page=/api/v1/admin/proxies?limit=50&history=true&after=p5000" \
  "proxies, search=/api/v1/admin/proxies?limit=50&history=true&q=tokyo" \
  "proxies, by role=/api/v1/admin/proxies?limit=50&history=true&role=standby" \
  "map=/api/v1/admin/map" \
  "users, first page=/api/v1/admin/users?limit=50" \
  "users, deep page=/api/v1/admin/users?limit=50&after=$mid" \
  "users, email search=/api/v1/admin/users?limit=50&q=u99" \
  "user detail=/api/v1/admin/users/$mid" \
  "rebalancer plans=/api/v1/admin/rebalance/plans?limit=10" \
  "payments=/api/v1/admin/payments?limit=50" \
  "promo codes=/api/v1/admin/promo-codes" \
  "referral codes=/api/v1/admin/referral-codes?limit=50" \
  "queue counts=/api/v1/admin/queue" \
  "dead letters=/api/v1/admin/queue/dead?limit=100" \
  "mail outbox=/api/v1/admin/mail/outbox?limit=50" \
  "audit log=/admin/api/audit?limit=50" \
  "settings=/api/v1/admin/settings")
rss_after=$(rss_mib "$pid")
kill "$pid"; wait "$pid" 2>/dev/null || true

section=$(cat <<MD
## Admin panel pages

Written by \`bash bench/admin.sh $USERS $PROXIES $RUNS\` on $(date -u +%Y-%m-%d): $USERS users ($seed_line,
straight into the store, indexed and at the current data format), then the release server
started ($startup s to answer /healthz; resident memory then $rss_started MiB, and $rss_after MiB
after the proxies and the pages below) and $PROXIES proxies registered over HTTP in six
cities (one in ten standby). Each page's data call fetched $RUNS times in a row over one
keep-alive connection with the admin token, as the panel does; target: every list page under
300 ms.

| page | request | bytes | p50 ms | max ms |
|---|---|---:|---:|---:|
$rows
MD
)
if $WRITE; then
  python3 - "$section" <<'PY'
import re, sys
text = open("BENCHMARKS.md").read()
new = sys.argv[1].rstrip("\n") + "\n"
if "## Admin panel pages" in text:
    text = re.sub(r"## Admin panel pages\n.*?(?=\n## |\Z)", lambda _: new, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + new
open("BENCHMARKS.md", "w").write(text)
PY
fi
echo "$section"
