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

cargo build --release --bin proxyfleet --bin bench-baseline >/dev/null
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
  PROXYFLEET_ALLOW_PRIVATE_IPS=true RUST_LOG=warn ./target/release/proxyfleet serve >/dev/null &
wait_up "http://127.0.0.1:$pf_port/healthz"

run() { # url -> "requests rps p50 p99 errors"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s bench/heartbeat.lua "$1" | awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
}
# Warm both up (page cache, sled's first segments), then measure.
wrk -t1 -c8 -d2s -s bench/heartbeat.lua "http://127.0.0.1:$base_port" >/dev/null
wrk -t1 -c8 -d2s -s bench/heartbeat.lua "http://127.0.0.1:$pf_port" >/dev/null
read -r b_req b_rps b_p50 b_p99 b_err < <(run "http://127.0.0.1:$base_port")
read -r p_req p_rps p_p50 p_p99 p_err < <(run "http://127.0.0.1:$pf_port")
ratio=$(python3 -c "print(f'{$p_rps / $b_rps * 100:.1f}')")

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
cat > BENCHMARKS.md <<MD
# Benchmarks

Written by \`bash bench/run.sh $DURATION\` on $(date -u +%Y-%m-%d). Machine: $(nproc) cores ($cpu),
$(free -g | awk '/Mem:/ {print $2}') GiB. Load: wrk -t$THREADS -c$CONNECTIONS for ${DURATION}s per row, on loopback,
sharing the cores with the server. The baseline is \`bench/baseline.rs\`: bare warp doing the same
bearer check, form parsing and validation as \`/register\`, with no storage.

## Heartbeats (\`POST /register\`, 1,000 proxies, every heartbeat durable)

| server | requests | req/s | p50 ms | p99 ms | errors |
|---|---:|---:|---:|---:|---:|
| bare warp baseline | $b_req | $b_rps | $b_p50 | $b_p99 | $b_err |
| proxyfleet | $p_req | $p_rps | $p_p50 | $p_p99 | $p_err |

proxyfleet / baseline throughput: **${ratio}%** (target: at least 50%).

Every proxyfleet heartbeat is one sled transaction (proxy record, expiry index, change log) and
is acknowledged only after the group-commit flusher has fsynced it.
MD
cat BENCHMARKS.md
