#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time each (default 60 s): the parsers of outside
# input (register bodies, the config query and ETag, the Stripe-Signature header, webhook
# payloads, the config file). Stable Rust: RUSTC_BOOTSTRAP lets cargo-fuzz pass its -Z flags;
# no sanitizer (`-s none`), so a failure is a panic or an assertion in the target.
# `--dev` builds without optimisations: a shorter build, fewer runs per second (what CI uses).
#   bash scripts/fuzz.sh [seconds per target] [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
profile=()
[ "${2:-}" = --dev ] && profile=(--dev)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build "${profile[@]}" -s none
log=$(mktemp)
for target in $(cargo fuzz list); do
  echo "== $target: ${seconds}s"
  if ! cargo fuzz run "${profile[@]}" -s none "$target" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $target failed" >&2
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|DONE" "$log" || true
done
rm -f "$log"
