#!/usr/bin/env bash
# Sign-ups with a big fleet: `POST /api/v1/admin/users` (each new user is given 3 fallback
# proxies) while 10,000 fallback proxies are registered, at 1, 4 and 16 connections. Placement
# reads the in-memory index of fallback proxies (src/fleet/index.rs), not every proxy and its
# link count; concurrent sign-ups share a transaction (src/fleet/users.rs).
# Prints a Markdown section on stdout (progress on stderr); `--write` replaces that section in
# BENCHMARKS.md.
#   bash bench/placement.sh [seconds, default 15] [proxies, default 10000] [--write]
set -euo pipefail
cd "$(dirname "$0")/.."
WRITE=false
args=()
for a in "$@"; do [ "$a" = --write ] && WRITE=true || args+=("$a"); done
DURATION="${args[0]:-15}"
PROXIES="${args[1]:-10000}"

cargo build --release --bin proxyfleet >/dev/null
source bench/lib.sh
require_tools wrk python3
say() { echo "placement bench: $*" >&2; }

port=$(port_of)
start_server "$port" "$work/data" PROXYFLEET_FALLBACKS_PER_USER=3 \
  PROXYFLEET_REBALANCE_INTERVAL_SECS=0 PROXYFLEET_HEARTBEAT_TTL_SECS=86400
say "enrolling $PROXIES proxies"
python3 bench/enrol.py "http://127.0.0.1:$port" bench-token "$PROXIES" "$work/secrets" >/dev/null
say "sign-ups"
BENCH_RUN=warm wrk -t1 -c4 -d2s -s bench/signup.lua "http://127.0.0.1:$port" >/dev/null
rows=""
for connections in 1 4 16; do
  threads=$(( connections == 1 ? 1 : 2 ))
  result=$(BENCH_RUN="c$connections" wrk -t"$threads" -c"$connections" -d"${DURATION}s" \
    -s bench/signup.lua "http://127.0.0.1:$port" | awk '/^RESULT/ {print $2, $3, $4, $5, $6}')
  read -r req rps p50 p99 err <<<"$result"
  rows+="| $connections | $req | $rps | $p50 | $p99 | $err |"$'\n'
done
rss=$(rss_mib "$server_pid")

section=$(cat <<MD
## Sign-ups with 10,000 proxies

Written by \`bash bench/placement.sh $DURATION $PROXIES\` on $(date -u +%Y-%m-%d), same machine:
$PROXIES fallback proxies enrolled, then \`POST /api/v1/admin/users\` with a new address each
(\`bench/signup.lua\`) for $DURATION s at each number of connections (wrk, sharing the two
cores with the server). Each user is given 3 fallback proxies, its welcome mail is queued and
the request is recorded in the audit trail, all durable before the answer. Target: p99 under
10 ms.

| connections | users created | users/s | p50 ms | p99 ms | errors |
|---:|---:|---:|---:|---:|---:|
${rows%$'\n'}

Server resident memory afterwards: $rss MiB.
MD
)
if $WRITE; then
  write_section "$section"
fi
echo "$section"
