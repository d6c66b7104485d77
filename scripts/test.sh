#!/usr/bin/env bash
# Installs what the tests need (Debian packages, as root or with sudo) and runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v varnishd >/dev/null 2>&1 || [ -x /usr/sbin/varnishd ] || need_packages+=(varnish)
command -v redis-server >/dev/null 2>&1 || need_packages+=(redis-server)

if [ ${#need_packages[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need_packages[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi
# The Debian package starts a system varnish on port 6081; the tests run their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet varnish 2>/dev/null; then
  systemctl stop varnish || true
fi

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
