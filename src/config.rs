//! Typed configuration: built-in defaults < TOML file (`--config`) < `PROXYFLEET_*` environment.
//!
//! figment does the layering; this module only declares the settings and their defaults.
//! Environment names are fixed (docs/CONFIG.md): `PROXYFLEET_` + the field name in upper case.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// A secret value (token, key, password): never shown by `Debug`, so it cannot leak into logs.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port the HTTP server listens on.
    pub listen: SocketAddr,
    /// sled database directory.
    pub data_dir: PathBuf,
    /// HTTPS listener for the client APIs (and the panel); unset = no HTTPS.
    pub https_listen: Option<SocketAddr>,
    /// PEM certificate chain and key for HTTPS; both unset = a self-signed pair made on first
    /// start under `<data_dir>/tls/` (its SHA-256 fingerprint is printed at every start).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Names the self-signed certificate is made for; empty = `localhost`, `127.0.0.1`.
    pub tls_hostnames: Vec<String>,
    /// Allow `listen` (plain HTTP) off loopback, e.g. behind a TLS proxy on a private network.
    pub allow_public_http: bool,
    /// Log lines as `text` or `json`; the level comes from `RUST_LOG` (default `info`).
    pub log_format: LogFormat,
    /// Bearer token of the admin API; generated and stored on first start when unset.
    pub admin_token: Option<Secret>,
    /// Bearer token proxies use to register; generated and stored on first start when unset.
    pub registry_token: Option<Secret>,
    /// A proxy silent for this long is unregistered by the sweeper.
    pub heartbeat_ttl_secs: u64,
    /// Accept private, loopback and link-local proxy addresses (labs and tests only).
    pub allow_private_ips: bool,
    /// Distinct clients a proxy may carry before the rebalancer acts.
    pub max_clients: u32,
    /// Most proxy names the fleet holds (enrolled names, live or gone); past it, enrolling a
    /// new name answers 503 `fleet_full`.
    pub max_proxies: u64,
    /// Largest `capacity` a proxy may claim (an enrolment token may set a lower one).
    pub max_proxy_capacity: u32,
    /// The credential of a proxy gone (unregistered, expired or revoked) this long is
    /// forgotten, and its name can be enrolled again.
    pub proxy_credential_keep_days: u64,
    /// How long a signed client config is valid (`expires_at - issued_at`). Configs are
    /// re-signed after half of it, so a client always holds one valid for at least half.
    pub config_validity_secs: u64,
    /// Redis mirror target; unset means no mirror.
    pub redis_url: Option<String>,
    /// Prefix of every key the Redis mirror writes (several fleets can share one Redis).
    pub redis_prefix: String,
    /// How often an idle mirror checks that Redis still holds what it wrote (a restart, a
    /// FLUSHALL or an eviction is then copied again).
    pub redis_check_secs: u64,
    /// Key file (64 hex digits, mode 0600) sealing the replica's secrets in Redis (the
    /// signing key, admin accounts, credentials); unset means they are written as the store
    /// holds them, and Redis must be kept as private as the data directory.
    pub redis_encrypt_secrets: Option<PathBuf>,
    /// MaxMind-format city database; unset means timezone fallback only.
    pub geoip_db: Option<PathBuf>,
    pub stripe_api_base: String,
    pub stripe_secret_key: Option<Secret>,
    pub stripe_webhook_secret: Option<Secret>,
    /// Seconds a call to Stripe's API may take before the purchase answers 503 (retry).
    pub stripe_timeout_secs: u64,
    /// e.g. `smtp://user:pass@host:587?tls=starttls`; unset means mail is queued, not sent.
    pub smtp_url: Option<Secret>,
    /// Sender of every mail, e.g. `proxyfleet <noreply@example.org>`.
    pub mail_from: String,
    /// Product name the mails use.
    pub mail_product_name: String,
    /// Where the invitation mail sends people to install the app; unset = not shown.
    pub app_download_url: Option<String>,

    /// Largest request body accepted, in bytes (413 above it).
    pub max_body_bytes: u64,
    /// Writes are refused (503 `storage_full`) while the data disk has less free space than
    /// this, in MiB, so the storage engine never meets a full disk; 0 turns the guard off.
    pub min_free_disk_mb: u64,
    /// The store is rewritten (compacted) once it takes this many times the space it took after
    /// its last rewrite: sled keeps the space of rewritten values. 0 never compacts.
    pub store_compact_ratio: u64,
    /// ... and never while it takes less than this, in MiB.
    pub store_compact_min_mb: u64,
    /// Edge routing: proxies are reachable as `<name>.<peers_domain>` through varnish.
    pub peers_domain: String,
    /// varnishd admin (CLI) address, e.g. `127.0.0.1:6082`; unset means the VCL is only written.
    pub varnish_admin: Option<String>,
    /// File holding varnishd's `-S` secret.
    pub varnish_secret_file: Option<PathBuf>,
    /// How often varnishd is asked whether it still runs the VCL we loaded (a restarted
    /// varnishd boots its own, and is then loaded again).
    pub varnish_check_secs: u64,
    /// Where the rendered VCL is written; default `<data_dir>/edge/proxyfleet.vcl`.
    pub edge_vcl_path: Option<PathBuf>,
    /// URL path varnish probes on every proxy to decide whether it is healthy.
    pub edge_probe_path: String,
    /// A burst of registry changes within this window makes one VCL reload.
    pub edge_debounce_ms: u64,
    /// Proxies per Varnish VCL: a larger fleet is split into groups, each its own VCL, so a
    /// change recompiles one group (`varnishd -C` time grows faster than the backends).
    pub edge_vcl_group_size: usize,

    /// Background workers taking tasks off the durable queue.
    pub queue_workers: usize,
    /// Tries before a task becomes a dead letter.
    pub queue_max_attempts: u32,
    /// First retry delay; doubled on every further failure (with jitter), capped at 10 minutes.
    pub queue_backoff_base_ms: u64,
    /// A leased task whose worker neither acks nor fails in this time is handed out again.
    pub queue_lease_secs: u64,
    /// Finished tasks (and their idempotency keys) are kept this long.
    pub queue_done_retention_secs: u64,
    /// Change-log entries kept at most for a Redis mirror that is behind (entries it has
    /// replayed go at once, all of them when there is no mirror).
    pub changelog_retain: u64,

    /// How an invitee's fallback is chosen: `trust` (inviter's, else closest ancestor's, else
    /// least loaded) or `least_loaded`.
    pub assignment_policy: AssignmentPolicy,
    /// Fallback proxies each user is given.
    pub fallbacks_per_user: usize,
    /// An unused invitation code expires this long after it was made.
    pub invitation_ttl_secs: u64,
    /// The window invitation quotas count in.
    pub invitation_period_secs: u64,
    /// Invitations a user may send per period (an admin can set more or fewer per user); 0
    /// turns invitations off for users without Pro.
    pub invitations_per_period: u32,
    /// The same for users with Pro.
    pub pro_invitations_per_period: u32,

    /// Blocking reports older than this are forgotten (docs/BLOCKING.md).
    pub block_window_secs: u64,
    /// The weight of distinct reporters a verdict of blocked needs (a located client weighs
    /// 1): one account can never reach it alone.
    pub block_min_weight: f64,
    /// The share of that weight reporting failures that makes a proxy blocked in a country.
    pub block_failure_share: f64,
    /// Below this share of failures among reports made since the block, it recovered; at or
    /// above it (with any failure), an unblocked proxy is suspected.
    pub block_recovery_share: f64,
    /// The weight of a client GeoIP could not place, which declared its country.
    pub block_declared_weight: f64,
    /// The weight of one of the operator's probes.
    pub block_probe_weight: f64,
    /// Past this suspicion a user is quarantined: it keeps what it has, gets no new proxy and
    /// cannot invite (each block adds 1/n to the n users there who had been given the proxy).
    pub suspicion_threshold: f64,
    /// A block's blame weighs 1 on each user given the proxy this long before the block or
    /// less, and `blame_old_weight` on those who had it longer (docs/BLOCKING.md).
    pub blame_recent_secs: u64,
    pub blame_old_weight: f64,
    /// Trust levels 0-4 (`[trust]` table; docs/BLOCKING.md): when they rise, and what each
    /// level may have.
    pub trust: TrustRules,
    /// Below this percentage of its limit a proxy counts as idle.
    pub low_water_percent: u32,
    /// Periodic rebalance interval; 0 turns periodic runs off.
    pub rebalance_interval_secs: u64,
    /// Periodic runs act on a proxy only once it has been over its limit this long.
    pub rebalance_hysteresis_secs: u64,
    /// A user is not moved twice within this time.
    pub rebalance_cooldown_secs: u64,
    /// Most users moved by one run.
    pub rebalance_max_moves: usize,
    /// A proxy idle (under the low-water mark) this long is drained.
    pub drain_after_secs: u64,
    /// Draining never leaves fewer fallback proxies than this.
    pub min_fallback_proxies: usize,
    /// Command run (by `sh -c`) to bring up a new proxy when none has headroom.
    pub provision_command: Option<String>,
    /// Command run to retire a drained proxy (`PROXYFLEET_PROXY` names it); unset = back to standby.
    pub retire_command: Option<String>,
    /// A provisioning request is not repeated for this long while we wait for the new proxy.
    pub provision_wait_secs: u64,
    /// Seed of the rebalancer's random choice of users (tests); unset = random.
    pub rebalance_seed: Option<u64>,
    /// Clients are told to poll their config again after this many seconds.
    pub config_poll_secs: u64,
    /// Longest `?wait=` of a config long-poll.
    pub config_wait_max_secs: u64,
    /// Free proxies in each client's subset.
    pub free_subset_k: usize,
    /// Pro proxies assigned to each pro user (the least loaded ones).
    pub pro_proxies_per_user: usize,
    /// Users a pro proxy without a declared capacity carries before it counts as full.
    pub pro_max_clients: u32,
    /// Pro plans; empty means the defaults `pro-1m` (30 days) and `pro-1y` (365 days).
    pub plans: Vec<Plan>,
    /// How often the sweeper ends Pro that ran out.
    pub pro_sweep_secs: u64,
    /// Linked devices a Pro account may have.
    pub devices_per_pro_user: usize,
    /// Linked devices a free account may have.
    pub devices_per_free_user: usize,
    /// Pro days the redeemer and the owner of a referral code each get.
    pub referral_bonus_days: u64,
    /// Where Stripe Checkout sends a web buyer after paying; unset = checkout links are off.
    pub checkout_success_url: Option<String>,
    /// Where Stripe Checkout sends a web buyer who cancels.
    pub checkout_cancel_url: Option<String>,
    /// When set, clients of one /16 network within a window of this many seconds share a free
    /// subset (so mass sign-ups from one network learn little).
    pub subset_network_window_secs: Option<u64>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How long an admin panel session lasts.
    pub admin_session_hours: u64,
    /// Mark the panel's session cookie `Secure` (set it when the panel is served over HTTPS;
    /// a request with `X-Forwarded-Proto: https` gets it anyway).
    pub admin_cookie_secure: bool,
    /// Seconds a client has to send a request's headers.
    pub http_header_timeout_secs: u64,
    /// A kept-alive connection with no request in flight and no traffic for this many
    /// seconds is closed.
    pub http_idle_timeout_secs: u64,
    /// Seconds a client has to finish the TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Open connections at most (all listeners; lowered at start to fit the open-file limit);
    /// over it a connection gets a 503 (plain HTTP) or is closed (TLS).
    pub max_connections: usize,
    /// Open connections at most from one client address.
    pub max_connections_per_ip: usize,
    /// Config long-polls waiting at once (counted apart from connections); over it, 503.
    pub max_long_polls: usize,
    pub max_long_polls_per_ip: usize,
    /// Failed logins allowed per client address and per username before the waits start
    /// (1 s, doubling: up to a minute per account, a quarter of an hour per address).
    pub admin_login_burst: u32,
    /// Audit entries older than this are removed by the upkeep job.
    pub audit_keep_days: u64,
    /// Per-address and per-token limits of the public endpoints (`[rate_limits]` table;
    /// environment: `PROXYFLEET_RATE_LIMITS__JSON__PER_IP_PER_MINUTE=...`).
    pub rate_limits: RateLimitSettings,
    /// Where scheduled and pre-migration backups go; default: `<data_dir>-backups` beside it.
    pub backup_dir: Option<PathBuf>,
    /// A backup every this many seconds while the server runs (default a day); 0 = off.
    pub backup_interval_secs: u64,
    /// Scheduled backups kept (the oldest go first).
    pub backup_keep: usize,
    /// An age X25519 recipient (`age1...`): every backup (scheduled, online, offline,
    /// pre-migration) is encrypted to it; `proxyfleet restore --identity FILE` decrypts.
    pub backup_recipient: Option<String>,
}

/// How log lines are written: `text` for people, `json` (one object a line) for collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentPolicy {
    Trust,
    LeastLoaded,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            https_listen: Some(SocketAddr::from(([0, 0, 0, 0], 8443))),
            tls_cert: None,
            tls_key: None,
            tls_hostnames: Vec::new(),
            allow_public_http: false,
            log_format: LogFormat::Text,
            admin_token: None,
            registry_token: None,
            heartbeat_ttl_secs: 300,
            allow_private_ips: false,
            max_clients: 200,
            max_proxies: 100_000,
            max_proxy_capacity: 10_000,
            proxy_credential_keep_days: 30,
            config_validity_secs: 7 * 24 * 3600,
            redis_url: None,
            redis_prefix: "proxyfleet:".into(),
            redis_check_secs: 5,
            redis_encrypt_secrets: None,
            geoip_db: None,
            stripe_api_base: "https://api.stripe.com".into(),
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            smtp_url: None,
            mail_from: "proxyfleet <noreply@localhost>".into(),
            mail_product_name: "proxyfleet".into(),
            app_download_url: None,
            stripe_timeout_secs: 20,
            max_body_bytes: 64 * 1024,
            min_free_disk_mb: 256,
            store_compact_ratio: 4,
            store_compact_min_mb: 256,
            peers_domain: "peers.localhost".into(),
            varnish_admin: None,
            varnish_secret_file: None,
            varnish_check_secs: 10,
            edge_vcl_path: None,
            edge_probe_path: "/".into(),
            edge_debounce_ms: 500,
            edge_vcl_group_size: 500,
            queue_workers: 2,
            queue_max_attempts: 8,
            queue_backoff_base_ms: 1000,
            queue_lease_secs: 60,
            queue_done_retention_secs: 7 * 24 * 3600,
            changelog_retain: 1_000_000,
            assignment_policy: AssignmentPolicy::Trust,
            fallbacks_per_user: 1,
            invitation_ttl_secs: 14 * 86_400,
            invitation_period_secs: 30 * 86_400,
            invitations_per_period: 5,
            pro_invitations_per_period: 20,
            block_window_secs: 86_400,
            block_min_weight: 3.0,
            block_failure_share: 0.6,
            block_recovery_share: 0.3,
            block_declared_weight: 0.5,
            block_probe_weight: 2.0,
            suspicion_threshold: 1.0 / 3.0,
            blame_recent_secs: 86_400,
            blame_old_weight: 0.1,
            trust: Default::default(),
            low_water_percent: 10,
            rebalance_interval_secs: 60,
            rebalance_hysteresis_secs: 300,
            rebalance_cooldown_secs: 3600,
            rebalance_max_moves: 10_000,
            drain_after_secs: 3600,
            min_fallback_proxies: 2,
            provision_command: None,
            retire_command: None,
            provision_wait_secs: 900,
            rebalance_seed: None,
            config_poll_secs: 300,
            config_wait_max_secs: 60,
            free_subset_k: 3,
            pro_proxies_per_user: 2,
            pro_max_clients: 50,
            plans: Vec::new(),
            pro_sweep_secs: 30,
            devices_per_pro_user: 3,
            devices_per_free_user: 1,
            referral_bonus_days: 7,
            checkout_success_url: None,
            checkout_cancel_url: None,
            subset_network_window_secs: None,
            trusted_proxies: Vec::new(),
            admin_session_hours: 12,
            admin_cookie_secure: false,
            http_header_timeout_secs: 10,
            http_idle_timeout_secs: 30,
            tls_handshake_timeout_secs: 10,
            max_connections: 8_192,
            max_connections_per_ip: 256,
            max_long_polls: 8_192,
            max_long_polls_per_ip: 256,
            admin_login_burst: 5,
            audit_keep_days: 365,
            rate_limits: Default::default(),
            backup_dir: None,
            backup_interval_secs: 86_400,
            backup_keep: 7,
            backup_recipient: None,
        }
    }
}

/// Files the server leaves in its data directory for the CLI on the same box
/// (`proxyfleet backup`, `proxyfleet admin ...` while it runs): a random cookie that stands for
/// the admin token on the backup and account routes, and the address it listens on.
pub const CONTROL_COOKIE: &str = "control.cookie";
pub const CONTROL_URL: &str = "control.url";

impl Config {
    /// Checks the settings once, at start: every duration, cap and count that must be at
    /// least 1 is, so no code clamps them where it uses them. Names each setting that is not.
    pub fn validate(&self) -> Result<(), String> {
        let at_least_one: [(&str, u64); 24] = [
            ("heartbeat_ttl_secs", self.heartbeat_ttl_secs),
            ("config_validity_secs", self.config_validity_secs),
            ("stripe_timeout_secs", self.stripe_timeout_secs),
            ("max_body_bytes", self.max_body_bytes),
            ("edge_vcl_group_size", self.edge_vcl_group_size as u64),
            ("queue_workers", self.queue_workers as u64),
            ("queue_max_attempts", u64::from(self.queue_max_attempts)),
            ("queue_lease_secs", self.queue_lease_secs),
            ("fallbacks_per_user", self.fallbacks_per_user as u64),
            ("invitation_ttl_secs", self.invitation_ttl_secs),
            ("invitation_period_secs", self.invitation_period_secs),
            ("block_window_secs", self.block_window_secs),
            ("pro_sweep_secs", self.pro_sweep_secs),
            ("redis_check_secs", self.redis_check_secs),
            ("varnish_check_secs", self.varnish_check_secs),
            ("referral_bonus_days", self.referral_bonus_days),
            ("admin_session_hours", self.admin_session_hours),
            ("http_header_timeout_secs", self.http_header_timeout_secs),
            ("http_idle_timeout_secs", self.http_idle_timeout_secs),
            (
                "tls_handshake_timeout_secs",
                self.tls_handshake_timeout_secs,
            ),
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            ("max_long_polls", self.max_long_polls as u64),
            ("max_long_polls_per_ip", self.max_long_polls_per_ip as u64),
        ];
        let mut problems: Vec<String> = at_least_one
            .iter()
            .filter(|(_, value)| *value == 0)
            .map(|(name, _)| format!("{name} must be at least 1"))
            .collect();
        if self.backup_keep == 0 {
            problems.push("backup_keep must be at least 1".to_string());
        }
        let shares = [
            ("block_failure_share", self.block_failure_share),
            ("block_recovery_share", self.block_recovery_share),
            ("blame_old_weight", self.blame_old_weight),
        ];
        for (name, share) in shares {
            if !(share > 0.0 && share <= 1.0) {
                problems.push(format!("{name} must be above 0 and at most 1"));
            }
        }
        let weights = [
            ("block_min_weight", self.block_min_weight),
            ("block_declared_weight", self.block_declared_weight),
            ("block_probe_weight", self.block_probe_weight),
            ("suspicion_threshold", self.suspicion_threshold),
        ];
        for (name, weight) in weights {
            if !(weight.is_finite() && weight >= 0.0) {
                problems.push(format!("{name} must be a number of at least 0"));
            }
        }
        // NaN is refused too: it is not above 1.
        if self.block_min_weight.partial_cmp(&1.0) != Some(std::cmp::Ordering::Greater) {
            problems.push(
                "block_min_weight must be above 1, so one account cannot block a proxy alone"
                    .to_string(),
            );
        }
        problems.extend(self.trust.problems());
        if self.block_recovery_share > self.block_failure_share {
            problems.push("block_recovery_share must be at most block_failure_share".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("invalid configuration: {}", problems.join("; ")))
        }
    }

    pub fn control_cookie_path(&self) -> PathBuf {
        self.data_dir.join(CONTROL_COOKIE)
    }

    pub fn control_url_path(&self) -> PathBuf {
        self.data_dir.join(CONTROL_URL)
    }

    /// Defaults, then the settings in `text` (a config file's TOML), without the environment.
    pub fn from_toml(text: &str) -> Result<Config, Box<figment::Error>> {
        Ok(Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()?)
    }

    /// Defaults, then the TOML file if given, then `PROXYFLEET_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only the names this struct declares: an unrelated PROXYFLEET_* variable in the
        // environment must not stop the server.
        let known = known_keys();
        figment
            .merge(
                Env::prefixed("PROXYFLEET_")
                    .filter(move |key| {
                        let top = key.as_str().split("__").next().unwrap_or_default();
                        known.iter().any(|k| k.eq_ignore_ascii_case(top))
                    })
                    // `__` reaches into a table: PROXYFLEET_RATE_LIMITS__ENABLED=false.
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)
    }

    pub fn backup_dir(&self) -> PathBuf {
        self.backup_dir.clone().unwrap_or_else(|| {
            let mut name = self
                .data_dir
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_else(|| "data".into());
            name.push("-backups");
            self.data_dir.with_file_name(name)
        })
    }

    pub fn edge_vcl_path(&self) -> PathBuf {
        self.edge_vcl_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("edge").join("proxyfleet.vcl"))
    }
}

fn known_keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// A Pro plan (`[[plans]]`): what the buyer pays and how many days of Pro it buys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Stable identifier the apps and the payment metadata use, e.g. `pro-1m`.
    pub id: String,
    pub name: String,
    /// Price in the currency's minor unit (cents).
    pub price: u64,
    /// ISO 4217 code, lower case as Stripe writes it.
    pub currency: String,
    /// Days of Pro the plan buys.
    pub days: u64,
}

/// One endpoint's allowance: requests per minute, per client address and per credential
/// (the bearer token, or the invitation code), each with the burst allowed at once.
/// A rate of 0 turns that side off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limit {
    pub per_ip_per_minute: u32,
    pub per_token_per_minute: u32,
    pub ip_burst: u32,
    pub token_burst: u32,
}

impl Default for Limit {
    fn default() -> Self {
        Limit::new((60, 30), (0, 1))
    }
}

impl Limit {
    /// `(per minute, burst)` per address, then per credential.
    pub const fn new(per_ip: (u32, u32), per_token: (u32, u32)) -> Limit {
        Limit {
            per_ip_per_minute: per_ip.0,
            ip_burst: per_ip.1,
            per_token_per_minute: per_token.0,
            token_burst: per_token.1,
        }
    }
}

/// The `[rate_limits]` table of the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Off only for benchmarks and labs: every limit below is ignored.
    pub enabled: bool,
    /// `POST /register`: proxies heartbeat about once a minute each; the registry token is
    /// shared by the whole fleet, so it has no per-token limit by default.
    pub register: Limit,
    /// `POST /unregister`: as `/register`, so a stolen credential cannot empty the fleet at
    /// line rate.
    pub unregister: Limit,
    /// `GET /json` (gateway recommendation, no token).
    pub json: Limit,
    /// `POST /api/v1/invitations/{code}/accept`: the sign-up.
    pub invitation_accept: Limit,
    /// `POST /api/v1/invitations` (a user inviting someone).
    pub invitation_create: Limit,
    /// `POST /api/v1/referrals/redeem`.
    pub referral_redeem: Limit,
    /// `POST /api/v1/reports` (reachability reports of clients and probes).
    pub report: Limit,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            enabled: true,
            register: Limit::new((120, 60), (0, 1)),
            unregister: Limit::new((120, 60), (0, 1)),
            json: Limit::new((60, 30), (0, 1)),
            invitation_accept: Limit::new((10, 10), (5, 5)),
            invitation_create: Limit::new((30, 10), (20, 10)),
            referral_redeem: Limit::new((10, 10), (5, 5)),
            // A client reports after a failed connection, a probe on its schedule (its
            // reports come from one address: its burst covers a round of checks).
            report: Limit::new((30, 20), (6, 6)),
        }
    }
}

/// The highest trust level (levels are 0 to this).
pub const TRUST_TOP: u8 = 4;

/// The `[trust]` settings: when levels rise and what each level may have (`fleet::trust`;
/// defaults and reasons in docs/BLOCKING.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustRules {
    /// Days at level n, without a block of a proxy the user knew, before it rises to n + 1.
    pub rise_days: [u64; TRUST_TOP as usize],
    /// The lowest level that may invite.
    pub invite_level: u8,
    /// The level of accounts an admin (or a sign-up front using the admin API) creates, unless
    /// the request names one or an inviter.
    pub created_level: u8,
    /// The most fallback proxies a user of each level holds (and never more than
    /// `fallbacks_per_user`).
    pub fallbacks: [usize; TRUST_TOP as usize + 1],
    /// The highest level an invitee starts at (one below its inviter's, at most this). 0: an
    /// invitation admits (with the inviter's proxy) but does not vouch, and levels are earned.
    pub invitee_max_level: u8,
    /// The lowest level given a proxy nobody has had yet before proxies others already know.
    pub fresh_level: u8,
    /// Days a user given a proxy shortly before its block (`blame_recent_secs`) waits for a new
    /// one: a censor's agent gets nothing more to give away for that long.
    pub probation_days: u64,
}

impl Default for TrustRules {
    fn default() -> TrustRules {
        TrustRules {
            rise_days: [2, 4, 8, 16],
            invite_level: 2,
            created_level: TRUST_TOP,
            fallbacks: [1, 1, 2, 2, 3],
            invitee_max_level: 0,
            fresh_level: 3,
            probation_days: 4,
        }
    }
}

impl TrustRules {
    /// What is wrong with these settings, each naming the setting (checked once, at start).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let levels = [
            ("invite_level", self.invite_level),
            ("created_level", self.created_level),
            ("invitee_max_level", self.invitee_max_level),
            ("fresh_level", self.fresh_level),
        ];
        for (name, level) in levels {
            if level > TRUST_TOP {
                problems.push(format!(
                    "trust.{name} must be a level from 0 to {TRUST_TOP}"
                ));
            }
        }
        if self.rise_days.contains(&0) {
            problems.push("trust.rise_days must be at least 1 day each".to_string());
        }
        if self.fallbacks.contains(&0) {
            problems.push("trust.fallbacks must be at least 1 proxy each".to_string());
        }
        problems
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn a_zero_where_one_is_the_least_is_refused_by_name() {
        assert_eq!(Config::default().validate(), Ok(()));
        let config = Config {
            queue_workers: 0,
            http_idle_timeout_secs: 0,
            ..Config::default()
        };
        let refused = config.validate().unwrap_err();
        assert!(
            refused.contains("queue_workers must be at least 1"),
            "{refused}"
        );
        assert!(refused.contains("http_idle_timeout_secs"), "{refused}");
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("pf.toml", "heartbeat_ttl_secs = 42\nmax_clients = 7\n")?;
            jail.set_env("PROXYFLEET_MAX_CLIENTS", "9");
            jail.set_env("PROXYFLEET_ALLOW_PRIVATE_IPS", "true");
            jail.set_env("PROXYFLEET_RATE_LIMITS__JSON__IP_BURST", "3");
            jail.set_env("PROXYFLEET_RATE_LIMITS__ENABLED", "false");
            let config = Config::load(Some(Path::new("pf.toml"))).map_err(|e| *e)?;
            assert_eq!(config.heartbeat_ttl_secs, 42);
            assert_eq!(config.max_clients, 9);
            assert!(config.allow_private_ips);
            assert_eq!(config.listen.port(), 8080);
            assert_eq!(config.rate_limits.json.ip_burst, 3);
            assert_eq!(config.rate_limits.json.per_ip_per_minute, 60);
            assert!(!config.rate_limits.enabled);
            Ok(())
        });
    }

    #[test]
    fn unknown_setting_in_file_is_an_error() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("pf.toml", "heartbeat_tll_secs = 1\n")?;
            assert!(Config::load(Some(Path::new("pf.toml"))).is_err());
            Ok(())
        });
    }

    /// The commented example install.sh writes lists every setting, and uncommented it is a
    /// valid configuration: it cannot fall behind the struct.
    #[test]
    fn the_example_file_lists_every_setting_and_parses() {
        let example = include_str!("../assets/config.example.toml");
        for key in known_keys() {
            let listed = example.contains(&format!("# {key} = "))
                || example.contains(&format!("# [{key}"))
                || example.contains(&format!("# [[{key}]]"));
            assert!(listed, "assets/config.example.toml lacks `{key}`");
        }
        let uncommented: String = example
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                line.starts_with('[')
                    || line
                        .split_once(" = ")
                        .is_some_and(|(k, _)| !k.contains(' '))
            })
            .map(|line| line.split("   # ").next().unwrap_or(line))
            .collect::<Vec<_>>()
            .join("\n");
        let parsed =
            Config::from_toml(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(parsed.rate_limits, Config::default().rate_limits);
        assert_eq!(parsed.backup_keep, 7);
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let config = Config {
            admin_token: Some(Secret::new("hunter2")),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
