#!/usr/bin/env bash
# The soak's load (bench/soak.sh) for SECONDS (default 480) against the release server run under
# heaptrack, then the live heap per tenth of the run (min / mean / max of heaptrack's snapshots)
# and the biggest allocation sites at the peak. Tells a leak (the live heap climbs) from memory
# the allocator keeps (the live heap is flat while the resident set climbs). The first tenth
# includes start-up and seeding, the last the shutdown.
# heaptrack slows every allocation, so its request rates are not benchmark figures.
#   bash bench/heap_profile.sh [seconds] [output directory, default ./heaptrack-out]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN="${1:-480}"
OUT="$(realpath -m "${2:-heaptrack-out}")"
cargo build --release --bin proxyfleet >/dev/null
source bench/lib.sh
require_tools heaptrack heaptrack_print redis-server redis-cli wrk python3
mkdir -p "$OUT"
rm -f "$OUT"/proxyfleet.*

start_redis
port=$(port_of)
PROXYFLEET_LISTEN="127.0.0.1:$port" PROXYFLEET_DATA_DIR="$work/data" \
  PROXYFLEET_REGISTRY_TOKEN=bench-token PROXYFLEET_ADMIN_TOKEN=bench-admin \
  PROXYFLEET_ALLOW_PRIVATE_IPS=true PROXYFLEET_RATE_LIMITS__ENABLED=false PROXYFLEET_HTTPS_LISTEN=127.0.0.1:0 \
  PROXYFLEET_REDIS_URL="redis://127.0.0.1:$redis_port" PROXYFLEET_FALLBACKS_PER_USER=3 RUST_LOG=warn \
  heaptrack -o "$OUT/proxyfleet" ./target/release/proxyfleet serve >"$work/log" 2>&1 &
heaptrack_pid=$!
wait_up "http://127.0.0.1:$port/healthz" 60
# The server is heaptrack's child.
server_pid=$(pgrep -P "$heaptrack_pid" -f 'proxyfleet serve' | head -1)
for i in 1 2 3; do
  curl -fs -H "Authorization: Bearer bench-token" -d "name=p$i&ip=127.0.0.$i&port=8443" \
    "http://127.0.0.1:$port/register" >/dev/null
done
python3 bench/seed.py users "http://127.0.0.1:$port" bench-admin 1000 "$work/tokens"
BENCH_DELAY_MS=10 wrk -t1 -c50 -d"${SECONDS_RUN}s" -s bench/heartbeat_paced.lua \
  "http://127.0.0.1:$port" >"$work/hb" &
hb_pid=$!
BENCH_TOKENS="$work/tokens" BENCH_DELAY_MS=10 wrk -t1 -c20 -d"${SECONDS_RUN}s" -s bench/config_users.lua \
  "http://127.0.0.1:$port" >"$work/cfg" &
cfg_pid=$!
wait "$hb_pid" "$cfg_pid" || true
echo "resident set at the end: $(rss_mib "$server_pid") MiB (with heaptrack's own)" >&2
kill -TERM "$server_pid"
wait "$heaptrack_pid" || true
data=$(ls "$OUT"/proxyfleet.*)

heaptrack_print -f "$data" --print-allocators 0 --print-peaks 1 --print-temporary 0 --print-leaks 0 \
  --print-histogram 0 --print-flamegraph 0 -n 10 -s 3 --print-massif "$OUT/massif.out" \
  --massif-threshold 1 --massif-detailed-freq 1000 >"$OUT/peaks.txt"
echo "live heap over the run (MiB), from $data:"
python3 - "$OUT/massif.out" <<'PY'
import sys
times, heap = [], []
for line in open(sys.argv[1]):
    if line.startswith("time="):
        times.append(float(line.split("=")[1]))
    elif line.startswith("mem_heap_B="):
        heap.append(int(line.split("=")[1]) / 1048576)
end = times[-1]
print("| part of the run | seconds | min | mean | max |")
print("|---:|---|---:|---:|---:|")
for part in range(10):
    lo, hi = end * part / 10, end * (part + 1) / 10
    values = [h for t, h in zip(times, heap) if lo <= t < hi]
    if values:
        print(f"| {part + 1}/10 | {lo:.0f}-{hi:.0f} | {min(values):.1f} | "
              f"{sum(values) / len(values):.1f} | {max(values):.1f} |")
PY
grep -E "^(total runtime|peak heap memory|peak RSS)" "$OUT/peaks.txt"
echo "biggest allocation sites at the peak: $OUT/peaks.txt"
