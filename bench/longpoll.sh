#!/usr/bin/env bash
# Long-poll with WAITERS waiting clients (default 10,000), against the bare warp baseline in the
# same run: WAITERS users, each holding `GET /api/v1/config?wait=60` on its own connection, then
# one change that reaches them all (`bench/longpoll.rs`). Prints a Markdown section on stdout.
#   bash bench/longpoll.sh [waiters]
set -euo pipefail
cd "$(dirname "$0")/.."
WAITERS="${1:-10000}"
[ "$(ulimit -n)" -ge $((WAITERS + 1000)) ] || ulimit -n $((WAITERS + 1000)) || {
  echo "raise the open-files limit to $((WAITERS + 1000)) (ulimit -n)" >&2; exit 1; }
cargo build --release --bin proxyfleet --bin bench-baseline --bin bench-longpoll >/dev/null
source bench/lib.sh

pf_port=$(port_of)
PROXYFLEET_LISTEN="127.0.0.1:$pf_port" PROXYFLEET_DATA_DIR="$work/data" \
  PROXYFLEET_REGISTRY_TOKEN=bench-token PROXYFLEET_ADMIN_TOKEN=bench-admin \
  PROXYFLEET_ALLOW_PRIVATE_IPS=true PROXYFLEET_RATE_LIMITS__ENABLED=false PROXYFLEET_HTTPS_LISTEN=127.0.0.1:0 \
  PROXYFLEET_FALLBACKS_PER_USER=3 PROXYFLEET_REBALANCE_INTERVAL_SECS=0 RUST_LOG=warn \
  ./target/release/proxyfleet serve >/dev/null &
pf_pid=$!
wait_up "http://127.0.0.1:$pf_port/healthz"
for i in 1 2 3; do
  curl -fs -D "$work/fb$i.headers" -H "Authorization: Bearer bench-token" -d "name=fb$i&ip=127.0.0.$i&port=8443" \
    "http://127.0.0.1:$pf_port/register" >/dev/null
done
# fb1 moves later, with its own secret (the registry token only enrols).
fb1_secret=$(awk 'tolower($1)=="x-proxy-secret:" {print $2}' "$work/fb1.headers" | tr -d '\r')
python3 bench/seed.py users "http://127.0.0.1:$pf_port" bench-admin "$WAITERS" "$work/tokens"
base_port=$(port_of)
./target/release/bench-baseline "127.0.0.1:$base_port" bench-token "$work/tokens" >/dev/null &
base_pid=$!
wait_up "http://127.0.0.1:$base_port/"

longpoll() { ./target/release/bench-longpoll "$@" | awk '/^RESULT/ {print $2, $3, $4, $5, $6, $7, $8}'; }
base=$(longpoll "http://127.0.0.1:$base_port" "$work/tokens" "$WAITERS" 60 "$base_pid" \
  "http://127.0.0.1:$base_port/bump" bench-token "")
pf=$(longpoll "http://127.0.0.1:$pf_port" "$work/tokens" "$WAITERS" 60 "$pf_pid" \
  "http://127.0.0.1:$pf_port/register" "$fb1_secret" "name=fb1&ip=127.0.0.77&port=8443")
row() { # label "waiters answered p50 p99 max rss_before rss_waiting"
  read -r n ok p50 p99 max before waiting <<<"$2"
  echo "| $1 | $n | $ok | $p50 | $p99 | $max | $((before / 1024)) | $((waiting / 1024)) |"
}
cat <<MD
## Long-poll: $WAITERS waiting clients

\`bash bench/longpoll.sh $WAITERS\` on $(date -u +%Y-%m-%d): $WAITERS users, each holding
\`GET /api/v1/config?wait=60\` on its own connection at once (\`bench/longpoll.rs\`). Then fallback
proxy fb1, which every user has, re-registers at a new address. proxyfleet acknowledges that
heartbeat; its queue runs the \`fleet.proxy_changed\` task, which bumps the config of every user
of fb1 in durable transactions of 500 and wakes each chunk's waiters, who get their new config.
The baseline (\`bench/baseline.rs\`) holds the same requests on one bell and answers them all when
\`POST /bump\` rings it. Latency: from sending the change to each waiter's complete answer.
Memory: the server's resident set before the waiters connected and while they all waited.
proxyfleet's latency includes what the baseline does not do: the heartbeat's durable write, the
queue picking up the task, and one durable transaction per 500 users before each chunk's
waiters are woken.

| server | waiters | answered 200 | p50 ms | p99 ms | max ms | RSS before MiB | RSS waiting MiB |
|---|---:|---:|---:|---:|---:|---:|---:|
$(row "baseline" "$base")
$(row "proxyfleet" "$pf")
MD
