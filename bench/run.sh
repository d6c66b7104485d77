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

cargo build --release --bin proxyfleet --bin bench-baseline --bin bench-plan --bin bench-longpoll >/dev/null
# Sections from the long runs done by hand (bench/soak.sh, bench/store_growth.sh) sit below this
# line in BENCHMARKS.md and are kept as they are.
BY_HAND='<!-- Long runs, by hand: bench/run.sh keeps everything below this line. -->'
kept=$(awk -v m="$BY_HAND" 'found || $0 == m { found = 1; print }' BENCHMARKS.md 2>/dev/null || true)
source bench/lib.sh
require_tools wrk python3

# With a GeoIP database (the tests' copy), config reads are also measured from a located client:
# the front (loopback, trusted) names an address in Iran, and each read looks it up.
GEOIP_DIR="${PROXYFLEET_TEST_GEOIP_DB:-$HOME/.cache/proxyfleet/geoip}"
geo_env=()
if ls "$GEOIP_DIR"/*.mmdb >/dev/null 2>&1; then
  geo_env=(PROXYFLEET_GEOIP_DB="$GEOIP_DIR" PROXYFLEET_TRUSTED_PROXIES='["127.0.0.1"]')
fi
LOCATED_IP=2.176.0.1
pf_port=$(port_of)
start_server "$pf_port" "$work/data" PROXYFLEET_FALLBACKS_PER_USER=3 \
  PROXYFLEET_STRIPE_WEBHOOK_SECRET=bench-webhook-secret "${geo_env[@]}"
pf_pid=$server_pid
# The heartbeats authenticate as proxies do: 1,000 proxies enrolled with the registry token,
# each heartbeating with its own secret; the baseline checks the same secrets from memory.
python3 bench/enrol.py "http://127.0.0.1:$pf_port" bench-token 1000 "$work/secrets" >/dev/null
export BENCH_SECRETS="$work/secrets"

base_port=$(port_of)
./target/release/bench-baseline "127.0.0.1:$base_port" bench-token /dev/null "$work/secrets" >/dev/null &
base_pid=$!
wait_up "http://127.0.0.1:$base_port/"

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
cfg_base=$(run "http://127.0.0.1:$base_port/api/v1/config" -s bench/report.lua -H "Authorization: Bearer bench-token")
cfg_pf=$(run "http://127.0.0.1:$pf_port/api/v1/config" -s bench/report.lua -H "Authorization: Bearer $user_token")
nm_base=$(run "http://127.0.0.1:$base_port/api/v1/config" -s bench/report.lua -H "Authorization: Bearer bench-token" -H "If-None-Match: $base_etag")
nm_pf=$(run "http://127.0.0.1:$pf_port/api/v1/config" -s bench/report.lua -H "Authorization: Bearer $user_token" -H "If-None-Match: $pf_etag")
located_rows="Not measured in this run: no GeoIP database in $GEOIP_DIR (\`scripts/test.sh\` fetches one)."
if [ ${#geo_env[@]} -gt 0 ]; then
  geo_etag=$(curl -fs -D - -o /dev/null -H "Authorization: Bearer $user_token" -H "X-Forwarded-For: $LOCATED_IP" \
    "http://127.0.0.1:$pf_port/api/v1/config" | awk 'tolower($1)=="etag:" {print $2}' | tr -d '\r')
  cfg_geo=$(run "http://127.0.0.1:$pf_port/api/v1/config" -s bench/report.lua -H "Authorization: Bearer $user_token" -H "X-Forwarded-For: $LOCATED_IP")
  nm_geo=$(run "http://127.0.0.1:$pf_port/api/v1/config" -s bench/report.lua -H "Authorization: Bearer $user_token" -H "X-Forwarded-For: $LOCATED_IP" -H "If-None-Match: $geo_etag")
  located_rows="| path | server | requests | req/s | p50 ms | p99 ms | errors |
|---|---|---:|---:|---:|---:|---:|
$(row "\`GET /api/v1/config\` 200, located | proxyfleet" "$cfg_geo")
$(row "\`GET /api/v1/config\` 304, located | proxyfleet" "$nm_geo")

| path | proxyfleet / baseline | against the same read unlocated |
|---|---:|---:|
| config 200, located | **$(ratio "$cfg_geo" "$cfg_base")%** | $(ratio "$cfg_geo" "$cfg_pf")% |
| config 304, located | **$(ratio "$nm_geo" "$nm_base")%** | $(ratio "$nm_geo" "$nm_pf")% |"
fi

# Stripe webhooks: 1,000 more users, then distinct signed payment events spread over them.
python3 bench/seed.py users "http://127.0.0.1:$pf_port" bench-admin 1000 "$work/wh_tokens"
python3 bench/seed.py webhooks bench-webhook-secret 300000 1000 "$work/events"
wh_base=$(BENCH_EVENTS="$work/events" BENCH_THREADS="$THREADS" run "http://127.0.0.1:$base_port" -s bench/webhooks.lua)
wh_pf=$(BENCH_EVENTS="$work/events" BENCH_THREADS="$THREADS" run "http://127.0.0.1:$pf_port" -s bench/webhooks.lua)

plan_line=$(./target/release/bench-plan 1000000 10000 10)

# Second server: 100,000 users, then 10,000 gateways.
kill "$pf_pid" "$base_pid"; wait "$pf_pid" "$base_pid" 2>/dev/null || true
pf2_port=$(port_of)
start_server "$pf2_port" "$work/data2" PROXYFLEET_FALLBACKS_PER_USER=3 PROXYFLEET_REBALANCE_INTERVAL_SECS=0
pf2_pid=$server_pid
for i in 1 2 3; do
  curl -fs -H "Authorization: Bearer bench-token" -d "name=fb$i&ip=127.0.0.$i&port=8443" "http://127.0.0.1:$pf2_port/register" >/dev/null
done
for i in $(seq 20); do
  curl -fs -H "Authorization: Bearer bench-token" -d "name=free$i&ip=127.0.1.$i&port=8443&role=free" "http://127.0.0.1:$pf2_port/register" >/dev/null
done
seed_start=$(date +%s.%N)
python3 bench/seed.py users "http://127.0.0.1:$pf2_port" bench-admin 100000 "$work/tokens"
seed_secs=$(python3 -c "print(f'{$(date +%s.%N) - $seed_start:.1f}')")
./target/release/bench-baseline "127.0.0.1:$base_port" bench-token "$work/tokens" >/dev/null &
base_pid=$!
wait_up "http://127.0.0.1:$base_port/"
many_base=$(BENCH_TOKENS="$work/tokens" run "http://127.0.0.1:$base_port" -s bench/config_users.lua)
many_pf=$(BENCH_TOKENS="$work/tokens" run "http://127.0.0.1:$pf2_port" -s bench/config_users.lua)

gw_start=$(date +%s.%N)
python3 bench/seed.py gateways "http://127.0.0.1:$pf2_port" bench-token 10000
gw_secs=$(python3 -c "print(f'{$(date +%s.%N) - $gw_start:.1f}')")
json_base=$(run "http://127.0.0.1:$base_port/json?lat=50.85&lon=4.35&n=3" -s bench/report.lua)
json_pf=$(run "http://127.0.0.1:$pf2_port/json?lat=50.85&lon=4.35&n=3" -s bench/report.lua)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
cat > BENCHMARKS.md <<MD
# Benchmarks

Written by \`bash bench/run.sh $DURATION\` on $(date -u +%Y-%m-%d). Machine: $(nproc) cores ($cpu),
$(free -g | awk '/Mem:/ {print $2}') GiB. Load: wrk -t$THREADS -c$CONNECTIONS for ${DURATION}s per row, on loopback,
sharing the cores with the server. The baseline is \`bench/baseline.rs\`: bare warp doing the same
bearer check, form parsing and validation as \`/register\`, with no storage.
Heartbeats authenticate as proxies do since per-proxy secrets: 1,000 proxies are enrolled with
the registry token (\`bench/enrol.py\`), then each heartbeats with its own secret; the baseline
checks the same secrets from memory (the SHA-256 of the token names the proxy of the form).

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

### Config reads from a located client

Blocking awareness needs each user's country: a config read behind a trusted front looks the
client's address up in the GeoIP database (\`X-Forwarded-For: $LOCATED_IP\`, in Iran) and
keeps the user's country when it changed. Same server, user and load as above.

$located_rows

## Stripe webhooks

\`payment_intent.succeeded\` events for 1,000 users, each with a distinct event and payment id,
pre-signed with Stripe's scheme (\`bench/seed.py webhooks\`) and sent by wrk. proxyfleet checks
the signature, parses the event and, in one durable transaction, records the event id, the
payment and its totals, extends the user's Pro and queues the receipt mail. The baseline only
checks the signature and parses the event.

| path | server | requests | req/s | p50 ms | p99 ms | errors |
|---|---|---:|---:|---:|---:|---:|
$(row "\`POST /api/v1/stripe/webhook\` | baseline" "$wh_base")
$(row "\`POST /api/v1/stripe/webhook\` | proxyfleet" "$wh_pf")

Webhook processing: **$(echo "$wh_pf" | cut -d' ' -f2) events/s** with signature checks
($(ratio "$wh_pf" "$wh_base")% of the signature-checking baseline).

## At scale: 100,000 users, 10,000 gateways

A second server: 3 fallback and 20 free proxies, then 100,000 users created over HTTP
(\`bench/seed.py\`, 16 connections: ${seed_secs} s), each with 3 fallback proxies and a subset of 3
free ones. Config reads pick a random user per request. Then 10,000 gateways registered in 200
cities (${gw_secs} s) and \`/json\` asked for a client in Brussels (\`lat\`/\`lon\`). The
baseline holds the same 100,000 token hashes and 10,000 gateways in memory.

| path | server | requests | req/s | p50 ms | p99 ms | errors |
|---|---|---:|---:|---:|---:|---:|
$(row "\`GET /api/v1/config\`, 100,000 users | baseline" "$many_base")
$(row "\`GET /api/v1/config\`, 100,000 users | proxyfleet" "$many_pf")
$(row "\`GET /json\`, 10,000 gateways | baseline" "$json_base")
$(row "\`GET /json\`, 10,000 gateways | proxyfleet" "$json_pf")

| path | proxyfleet / baseline | target |
|---|---:|---:|
| config, 100,000 users | **$(ratio "$many_pf" "$many_base")%** | >= 70%, p99 < 5 ms |
| /json, 10,000 gateways | **$(ratio "$json_pf" "$json_base")%** | >= 70%, p99 < 5 ms |

Every proxyfleet heartbeat is acknowledged only once it is on disk: concurrent heartbeats share
one journal append and one \`fdatasync\` (\`store::combiner\`, \`store::deferred\`; a batch that
enrols or moves a proxy shares one sled transaction and flush instead). Its secret is checked against the
live record the transaction reads anyway, after an in-memory lookup of whose secret it is (a
first version that read the secret index in the handler and the credential inside the shared
transaction ran at 31-35% of the baseline in A/B runs on this machine). \`/json\` rows
ask for the nearest 3 (\`n=3\`): without \`n\` it lists every gateway, as menshen does. A config read is a token lookup and a
user read in sled, the list built from the in-memory fleet view, rendered and hashed for its
ETag. The Ed25519 signature is cached by the body's SHA-256 (up to 200,000 bodies): clients
poll the same config again and again, and a signature costs more than the rest of the request.
The baseline signs every response, so config 200 can beat it. The fleet view and the gateway set
are rebuilt by a background job only when a proxy record was written (or one expired), before
requests see them; during the /json rows no proxy heartbeats, so no rebuild runs.

## Rebalance planning

\`bench-plan 1000000 10000 10\`: 1,000,000 users on 10,000 proxies (limit 200 each, 100 users
each), 10% of the proxies reporting 250 clients (50 over: 50,000 moves); every user is in the
snapshot. Pure planning, after the snapshot is built in memory (reading it from sled is not in
this figure). Targets: under 5 s and under 2 GB.

$plan_line
MD
# The Redis mirror and the edge: its own script, since it needs redis-server.
{ echo; bash bench/mirror.sh "$DURATION"; } >>BENCHMARKS.md
{ echo; bash bench/admin.sh; } >>BENCHMARKS.md
{ echo; bash bench/longpoll.sh; } >>BENCHMARKS.md
[ -z "$kept" ] || { echo; echo "$kept"; } >>BENCHMARKS.md
cat BENCHMARKS.md
