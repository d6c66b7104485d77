#!/usr/bin/env bash
# Where the server's CPU goes under one hot path's load: perf samples the server while wrk
# drives it as bench/run.sh does, then prints the server's CPU time per request and the
# functions above 1% of the samples.
#   bash bench/profile.sh [heartbeat | config304] [seconds, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-heartbeat}"
seconds="${2:-10}"
cargo build --release --bin proxyfleet >/dev/null
source bench/lib.sh
require_tools wrk perf python3
port=$(port_of)
url="http://127.0.0.1:$port"
start_server "$port" "$work/data" PROXYFLEET_FALLBACKS_PER_USER=3
case "$what" in
  heartbeat)
    python3 bench/enrol.py "$url" bench-token 1000 "$work/secrets" >/dev/null
    export BENCH_SECRETS="$work/secrets"
    load=(wrk -t2 -c64 -d"$((seconds + 2))s" -s bench/heartbeat.lua "$url")
    ;;
  config304)
    for i in 1 2 3; do
      curl -fs -H "Authorization: Bearer bench-token" -d "name=cfg$i&ip=127.0.0.$i&port=8443" "$url/register" >/dev/null
    done
    token=$(curl -fs -H "Authorization: Bearer bench-admin" -H 'Content-Type: application/json' \
      -d '{"email":"bench@example.org"}' "$url/api/v1/admin/users" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    etag=$(curl -fs -D - -o /dev/null -H "Authorization: Bearer $token" "$url/api/v1/config" \
      | awk 'tolower($1)=="etag:" {print $2}' | tr -d '\r')
    load=(wrk -t2 -c64 -d"$((seconds + 2))s" -H "Authorization: Bearer $token" -H "If-None-Match: $etag" "$url/api/v1/config")
    ;;
  *) echo "usage: bash bench/profile.sh [heartbeat | config304] [seconds]" >&2; exit 2 ;;
esac
# The server's CPU time (user + system, in clock ticks) over the whole load, per request: on a
# shared 2-core machine it varies far less from run to run than requests per second do.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
ticks_before=$(cpu_ticks)
"${load[@]}" > "$work/wrk.txt" &
load_pid=$!
perf record -F 499 -p "$server_pid" -o "$work/perf.data" -- sleep "$seconds" 2>/dev/null
wait "$load_pid"
ticks_after=$(cpu_ticks)
grep -E "Requests/sec" "$work/wrk.txt"
requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
python3 -c "print(f'server CPU per request (under perf): {($ticks_after - $ticks_before) * 1e6 / $(getconf CLK_TCK) / $requests:.1f} us')"
echo "samples by thread name (sled-io-N: sled's IO thread pool):"
perf report -i "$work/perf.data" --no-children --sort comm --stdio 2>/dev/null \
  | grep -v '^#' | grep -v '^$' | sed -E 's/ +/ /g' | head -12
perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio --percent-limit 1 2>/dev/null \
  | grep -v '^#' | grep -v '^$' | sed -E 's/ +/ /g' | cut -c1-150 | head -50
