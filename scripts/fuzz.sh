#!/usr/bin/env bash
# Runs every fuzz target (the parsers of outside input: register bodies, the config query and
# ETag, the Stripe-Signature header, webhook payloads, the config file, admin input) for a
# bounded time each (default 60 s). A failure is a panic or an assertion in the target (no
# sanitizer: the code under test has no `unsafe`).
#
# The targets are built by cargo in this workspace, with the tests' dev profile, so all the
# dependencies the tests built are reused; scripts/fuzz-rustc adds libFuzzer's coverage
# instrumentation to proxyfleet and the targets only. `--release` builds them optimised (more
# runs per second, a longer build): `bash scripts/fuzz.sh 600 --release`. Corpora are kept in
# fuzz/corpus/<target>, crashes written to fuzz/artifacts/<target>/ (cargo-fuzz's layout, so
# `cargo fuzz run <target>` works on the same files).
#   bash scripts/fuzz.sh [seconds per target] [--release]
#   bash scripts/fuzz.sh --build-only   (scripts/test.sh builds them while the tests run)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
profile=(--profile dev)
dir=debug
if [ "${2:-}" = --release ]; then
  profile=(--release)
  dir=release
fi
RUSTC_WORKSPACE_WRAPPER="$PWD/scripts/fuzz-rustc" cargo build -p proxyfleet-fuzz --bins "${profile[@]}"
[ "$seconds" = --build-only ] && exit 0
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# One target per core at a time: each still runs its full time on a core of its own, and the
# whole run takes half as long on two cores.
parallel=$(nproc)
logs=$(mktemp -d)
run_target() {
  local target="$1"
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  "$target_dir/$dir/$target" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$target/" "fuzz/corpus/$target" >"$logs/$target.log" 2>&1 \
    || touch "$logs/$target.failed"
}
targets=()
for source in fuzz/fuzz_targets/*.rs; do
  targets+=("$(basename "$source" .rs)")
done
for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  echo "== $target: ${seconds}s"
  run_target "$target" &
done
wait
failed=0
for target in "${targets[@]}"; do
  echo "== $target"
  if [ -e "$logs/$target.failed" ]; then
    tail -40 "$logs/$target.log"
    echo "fuzz target $target failed" >&2
    failed=1
  else
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)|DONE" "$logs/$target.log" || true
  fi
done
rm -rf "$logs"
exit "$failed"
