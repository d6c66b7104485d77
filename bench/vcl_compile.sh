#!/usr/bin/env bash
# The edge config for a full fleet, compiled as varnishd compiles it. Enrols PROXIES proxies
# (default 100000, the default max_proxies) into the release server, fetches the VCL it
# renders (GET /api/v1/admin/edge/varnish.vcl: the top VCL, then one per group), and runs
# `varnishd -C` (its default cc_command) on each file, two at a time. Prints the slowest file
# and the sum; a registry change recompiles one group and the top.
#   bash bench/vcl_compile.sh [proxies] [group_size]
set -euo pipefail
cd "$(dirname "$0")/.."
PROXIES="${1:-100000}"
GROUP_SIZE="${2:-500}"
cargo build --release --bin proxyfleet >/dev/null
source bench/lib.sh
require_tools varnishd python3 curl
port=$(port_of)
PROXYFLEET_LISTEN="127.0.0.1:$port" PROXYFLEET_DATA_DIR="$work/data" \
  PROXYFLEET_REGISTRY_TOKEN=bench-token PROXYFLEET_ADMIN_TOKEN=bench-admin \
  PROXYFLEET_ALLOW_PRIVATE_IPS=true PROXYFLEET_EDGE_VCL_GROUP_SIZE="$GROUP_SIZE" \
  PROXYFLEET_RATE_LIMITS__ENABLED=false \
  RUST_LOG=warn ./target/release/proxyfleet serve >/dev/null &
wait_up "http://127.0.0.1:$port/healthz"
per=$(( (PROXIES + 3) / 4 ))
for k in 0 1 2 3; do
  count=$(( k == 3 ? PROXIES - 3 * per : per ))
  python3 bench/enrol.py "http://127.0.0.1:$port" bench-token "$count" "$work/secrets$k" $((k * per)) >/dev/null &
done
wait $(jobs -p | tail -4)
curl -fs -H "Authorization: Bearer bench-admin" "http://127.0.0.1:$port/api/v1/admin/edge/varnish.vcl" \
  > "$work/all.vcl"
mkdir "$work/vcl"
# One file per VCL: the top first, then each group after its "# ---- VCL label" line.
python3 - "$work/all.vcl" "$work/vcl" <<'PY'
import sys
text = open(sys.argv[1]).read()
parts = text.split("\n# ---- VCL label ")
open(f"{sys.argv[2]}/top.vcl", "w").write(parts[0])
for part in parts[1:]:
    label, vcl = part.split(" ----\n", 1)
    open(f"{sys.argv[2]}/{label}.vcl", "w").write(vcl)
print(f"{len(parts) - 1} group VCLs")
PY
# The top VCL returns to labels only a running varnishd has; `varnishd -C` has none, so it
# is compiled with each `return (vcl(label))` read as `return (synth(200, "label"))`.
sed -i -E 's/return \(vcl\(([a-z0-9_]+)\)\)/return (synth(200, "\1"))/' "$work/vcl/top.vcl"
# varnishd compiles as its own user: let it read the files.
chmod a+rx "$work" "$work/vcl" && chmod a+r "$work"/vcl/*.vcl
compile() {
  local file=$1 start end
  start=$(date +%s.%N)
  varnishd -C -n "$work/n-$(basename "$file")" -f "$file" >/dev/null 2>"$work/err-$(basename "$file")" \
    || { cat "$work/err-$(basename "$file")" >&2; return 1; }
  end=$(date +%s.%N)
  echo "$(basename "$file") $(echo "$end - $start" | bc)"
}
export -f compile
export work
ls "$work"/vcl/*.vcl | xargs -P 2 -I{} bash -c 'compile {}' > "$work/times"
echo "proxies: $PROXIES, group size: $GROUP_SIZE, VCL files: $(wc -l < "$work/times")"
sort -k2 -n -r "$work/times" | head -3 | sed 's/^/slowest: /'
awk '{s += $2} END {printf "sum of varnishd -C times: %.1f s\n", s}' "$work/times"
grep top.vcl "$work/times" | sed 's/^/top: /'
