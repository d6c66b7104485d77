# What every bench script shares. Source it from the repository root:
#   cd "$(dirname "$0")/.." && source bench/lib.sh
# It makes $work, a temporary directory removed on exit together with every background job the
# script started (servers, redis-server, wrk), so an interrupted run leaves nothing behind.

work=$(mktemp -d)
bench_cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap bench_cleanup EXIT

# Stops the script unless every named tool is installed.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install redis-server wrk python3)" >&2; exit 1; }
  done
}

# A free loopback TCP port.
port_of() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until URL answers HTTP (any status: the baseline has no route at /), at most SECONDS
# (default 30). Fails if it never does, which stops a script under `set -e`.
wait_up() {
  for _ in $(seq $((${2:-30} * 10))); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "not up after ${2:-30} s: $1" >&2
  return 1
}

# Starts a throwaway redis-server (no persistence, files in $work) and sets $redis_port.
start_redis() {
  redis_port=$(port_of)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null &
  for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis-server did not start on port $redis_port" >&2
  return 1
}

# Resident memory of process PID, in MiB with one decimal.
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# Starts ./target/release/proxyfleet on 127.0.0.1:PORT with its data in DIR, the bench tokens
# (registry `bench-token`, admin `bench-admin`), private addresses allowed and rate limits off,
# plus any VAR=value given after DIR; sets $server_pid and waits until it answers.
start_server() {
  local port="$1" dir="$2"
  shift 2
  env PROXYFLEET_LISTEN="127.0.0.1:$port" PROXYFLEET_DATA_DIR="$dir" \
    PROXYFLEET_REGISTRY_TOKEN=bench-token PROXYFLEET_ADMIN_TOKEN=bench-admin \
    PROXYFLEET_ALLOW_PRIVATE_IPS=true PROXYFLEET_RATE_LIMITS__ENABLED=false \
    PROXYFLEET_HTTPS_LISTEN=127.0.0.1:0 RUST_LOG=warn "$@" \
    ./target/release/proxyfleet serve >/dev/null &
  server_pid=$!
  wait_up "http://127.0.0.1:$port/healthz"
}

# Replaces the BENCHMARKS.md section that starts with the heading (the first line of SECTION)
# up to the next `## ` heading, or appends SECTION at the end if there is none yet.
write_section() {
  python3 - "$1" <<'PY'
import re
import sys
section = sys.argv[1].rstrip("\n") + "\n\n"
heading = section.splitlines()[0]
text = open("BENCHMARKS.md").read()
start = text.find(heading)
if start < 0:
    text = text.rstrip("\n") + "\n\n" + section
else:
    following = re.search(r"^## ", text[start + 3:], re.M)
    end = start + 3 + following.start() if following else len(text)
    text = text[:start] + section + text[end:]
open("BENCHMARKS.md", "w").write(text.rstrip("\n") + "\n")
PY
}
