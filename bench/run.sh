#!/usr/bin/env bash
# Runs the benchmark set in one go and rewrites BENCHMARKS.md:
# for each hot path, proxyfleet against the bare warp baseline, on this machine, in this run.
# Needs wrk (Debian package `wrk`). Traffic goes to loopback only; each run is bounded.
#   bash bench/run.sh [seconds per run, default 15]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-15}"
CONNECTIONS=64
THREADS=2
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 1; }

cargo build --release --bin proxyfleet --bin bench-baseline --bin bench-plan >/dev/null
work=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port_of() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "not up: $1" >&2; exit 1; }

base_port=$(port_of)
./target/release/bench-baseline "127.0.0.1:$base_port" bench-token >/dev/null &
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$base_port/" && break; sleep 0.1; done

pf_port=$(port_of)
PROXYFLEET_LISTEN="127.0.0.1:$pf_port" PROXYFLEET_DATA_DIR="$work/data" \
  PROXYFLEET_REGISTRY_TOKEN=bench-token PROXYFLEET_ADMIN_TOKEN=bench-admin \
  PROXYFLEET_ALLOW_PRIVATE_IPS=true PROXYFLEET_FALLBACKS_PER_USER=3 RUST_LOG=warn \
  ./target/release/proxyfleet serve >/dev/null &
wait_up "http://127.0.0.1:$pf_port/healthz"

run() { # url [wrk args...] -> "requests rps p50 p99 errors"
  local url="$1"; shift
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "$@" "$url" | awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
}
row() { # label "requests rps p50 p99 errors"
  read -r req rps p50 p99 err <<<"$2"
  echo "| $1 | $req | $rps | $p50 | $p99 | $err |"
}
ratio() { python3 -c "print(f'{$(echo "$1" | cut -d' ' -f2) / $(echo "$2" | cut -d' ' -f2) * 100:.1f}')"; }
# Warm both up (page cache, sled's first segments), then measure.
wrk -t1 -c8 -d2s -s bench/heartbeat.lua "http://127.0.0.1:$base_port" >/dev/null
wrk -t1 -c8 -d2s -s bench/heartbeat.lua "http://127.0.0.1:$pf_port" >/dev/null
hb_base=$(run "http://127.0.0.1:$base_port" -s bench/heartbeat.lua)
hb_pf=$(run "http://127.0.0.1:$pf_port" -s bench/heartbeat.lua)

# A user with three fallback proxies, for the config reads.
for i in 1 2 3; do
  curl -fs -H "Authorization: Bearer bench-token" -d "name=cfg$i&ip=127.0.0.$i&port=8443&country=DE" \
    "http://127.0.0.1:$pf_port/register" >/dev/null
done
user_token=$(curl -fs -H "Authorization: Bearer bench-admin" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.org"}' "http://127.0.0.1:$pf_port/api/v1/admin/users" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
etag_of() { curl -fs -D - -o /dev/null -H "Authorization: Bearer $2" "$1/api/v1/config" | awk 'tolower($1)=="etag:" {print $2}' | tr -d '\r'; }
pf_etag=$(etag_of "http://127.0.0.1:$pf_port" "$user_token")
base_etag=$(etag_of "http://127.0.0.1:$base_port" bench-token)
cfg_base=$(run "http://127.0.0.1:$base_port/api/v1/config" -s bench/get.lua -H "Authorization: Bearer bench-token")
cfg_pf=$(run "http://127.0.0.1:$pf_port/api/v1/config" -s bench/get.lua -H "Authorization: Bearer $user_token")
nm_base=$(run "http://127.0.0.1:$base_port/api/v1/config" -s bench/get.lua -H "Authorization: Bearer bench-token" -H "If-None-Match: $base_etag")
nm_pf=$(run "http://127.0.0.1:$pf_port/api/v1/config" -s bench/get.lua -H "Authorization: Bearer $user_token" -H "If-None-Match: $pf_etag")

plan_line=$(./target/release/bench-plan 1000000 10000 10)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
cat > BENCHMARKS.md <<MD
# Benchmarks

Written by \`bash bench/run.sh $DURATION\` on $(date -u +%Y-%m-%d). Machine: $(nproc) cores ($cpu),
$(free -g | awk '/Mem:/ {print $2}') GiB. Load: wrk -t$THREADS -c$CONNECTIONS for ${DURATION}s per row, on loopback,
sharing the cores with the server. The baseline is \`bench/baseline.rs\`: bare warp doing the same
bearer check, form parsing and validation as \`/register\`, with no storage.

## Hot paths against the bare warp baseline

| path | server | requests | req/s | p50 ms | p99 ms | errors |
|---|---|---:|---:|---:|---:|---:|
$(row "heartbeat \`POST /register\` | baseline" "$hb_base")
$(row "heartbeat \`POST /register\` | proxyfleet" "$hb_pf")
$(row "\`GET /api/v1/config\` 200 | baseline" "$cfg_base")
$(row "\`GET /api/v1/config\` 200 | proxyfleet" "$cfg_pf")
$(row "\`GET /api/v1/config\` 304 | baseline" "$nm_base")
$(row "\`GET /api/v1/config\` 304 | proxyfleet" "$nm_pf")

| path | proxyfleet / baseline | target |
|---|---:|---:|
| heartbeats (1,000 proxies, every one durable) | **$(ratio "$hb_pf" "$hb_base")%** | >= 50% |
| config 200 (3 proxies) | **$(ratio "$cfg_pf" "$cfg_base")%** | >= 70% |
| config 304 (If-None-Match) | **$(ratio "$nm_pf" "$nm_base")%** | >= 70% |

Every proxyfleet heartbeat is acknowledged only once it is on disk: concurrent heartbeats share
one sled transaction and one fsync (\`store::combiner\`). A config read is a token lookup, a user
read and one registry read per proxy, rendered and hashed for its ETag.

## Rebalance planning

\`bench-plan 1000000 10000 10\`: 1,000,000 users on 10,000 proxies (limit 200 each, 100 users
each), 10% of the proxies reporting 250 clients (50 over: 50,000 moves); every user is in the
snapshot. Pure planning, after the snapshot is built in memory (reading it from sled is not in
this figure). Targets: under 5 s and under 2 GB.

$plan_line
MD
cat BENCHMARKS.md
