//! The Redis mirror: replays the change log into a real Redis, in order and without loss, so
//! http-proxies, config servers and edges read the fleet from Redis (LEP 013's shared memory).
//!
//! - `keys.rs`: the key schema (docs/REDIS.md); `records.rs`: records -> commands (pure);
//! - `stream.rs`: the replication loop (batches of changes in MULTI/EXEC, resume, retry);
//! - `resync.rs`: full copy from sled when Redis is empty, replaced or too far behind;
//! - `rebuild.rs`: a primary's store rebuilt from the replica (`restore --from-redis`);
//! - `sealing.rs`: the replica's secrets sealed with a key file (`redis_encrypt_secrets`);
//! - the admin's view (state, lag, last error) is served by the HTTP API (src/api/mirror.rs);
//! - `edge/`: `proxyfleet edge`, the read APIs served from Redis alone.

pub mod configs;
pub mod edge;
pub mod edge_counts;
pub mod keys;
pub mod rebuild;
pub mod records;
pub mod resync;
pub mod sealing;
pub mod stream;

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::distribution::Distribution;
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::store::Store;
use keys::Keys;

/// Where the last applied sequence is kept in sled (Redis keeps its own copy in `mirror:seq`).
pub const APPLIED_SEQ: &str = "mirror.applied_seq";
/// The id of this store, written to Redis so a Redis holding another store's data is resynced.
pub const SOURCE_ID: &str = "mirror.source";
/// The layout of `<p>replica:<tree>` a full copy writes (`<p>mirror:replica`).
pub const REPLICA_FORMAT: u64 = 1;
/// Changes sent per MULTI/EXEC.
pub const BATCH: usize = 1_000;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Off,
    Connecting,
    Resyncing,
    Streaming,
    /// Redis unreachable or refusing: retrying with backoff.
    Failing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub state: State,
    pub applied_seq: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
    pub resyncs: u64,
    pub last_resync_records: u64,
    pub last_resync_ms: u64,
    /// Why the last full copy was made (Redis empty, flushed, restarted, diverged...).
    pub last_resync_reason: Option<String>,
    /// When (unix seconds).
    pub last_resync_at: Option<u64>,
    pub configs_written: u64,
    /// Users whose config is still to be rewritten after a proxy came, left or changed.
    pub configs_pending: bool,
}

/// What the mirror job reads: the store and its change log, the fleet (to render each user's
/// config), and the settings published to edges.
#[derive(Clone)]
pub struct MirrorDeps {
    pub store: Store,
    pub registry: Registry,
    pub distribution: Arc<Distribution>,
    pub mirror: Arc<Mirror>,
    pub settings: PublishedSettings,
}

/// The primary's settings an edge needs to answer as the primary does.
#[derive(Debug, Clone)]
pub struct PublishedSettings {
    pub peers_domain: String,
    pub max_clients: u32,
}

/// The mirror's shared handle: settings, status for the admin, resync requests.
pub struct Mirror {
    pub keys: Keys,
    pub url: Option<String>,
    /// How often an idle mirror checks that Redis still holds what it wrote.
    pub check_every: Duration,
    /// Seals the replica's secrets (`redis_encrypt_secrets`); `None` writes them as stored.
    pub sealing: Option<sealing::Sealing>,
    status: Mutex<Status>,
    resync_requested: AtomicBool,
}

/// What the admin sees: the status plus the lag against the store.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub enabled: bool,
    #[serde(flatten)]
    pub status: Status,
    pub last_seq: u64,
    pub changes_behind: u64,
    pub seconds_behind: f64,
}

impl Mirror {
    pub fn new(url: Option<String>, prefix: &str, check_every: Duration) -> Mirror {
        Mirror {
            keys: Keys::new(prefix),
            check_every,
            sealing: None,
            status: Mutex::new(Status {
                state: if url.is_some() {
                    State::Connecting
                } else {
                    State::Off
                },
                applied_seq: 0,
                last_error: None,
                last_error_at: None,
                resyncs: 0,
                last_resync_records: 0,
                last_resync_ms: 0,
                last_resync_reason: None,
                last_resync_at: None,
                configs_written: 0,
                configs_pending: false,
            }),
            url,
            resync_requested: AtomicBool::new(false),
        }
    }

    pub fn sealing_secrets(self, sealing: Option<sealing::Sealing>) -> Mirror {
        Mirror { sealing, ..self }
    }

    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut Status)) {
        change(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Asks the mirror to copy everything again (the admin's resync button).
    pub fn request_resync(&self) -> Result<()> {
        if self.url.is_none() {
            return Err(Error::conflict(
                "mirror_off",
                "the Redis mirror is off: set PROXYFLEET_REDIS_URL",
            ));
        }
        self.resync_requested.store(true, Ordering::Release);
        Ok(())
    }

    fn take_resync_request(&self) -> bool {
        self.resync_requested.swap(false, Ordering::AcqRel)
    }

    /// The newest change the mirror has replayed into Redis, so older ones can go from the
    /// log; `None` when there is no mirror (nothing reads the log).
    pub fn consumed_seq(&self) -> Option<u64> {
        self.url.as_ref().map(|_| self.status().applied_seq)
    }

    pub fn report(&self, store: &Store, now_ms: u64) -> Result<Report> {
        let status = self.status();
        let last_seq = store.last_seq()?;
        // With no Redis configured nothing is owed to it: nothing is behind.
        let enabled = self.url.is_some();
        let behind = if enabled {
            // Deferred heartbeats are owed to Redis too, though the log gets them at the fold.
            last_seq.saturating_sub(status.applied_seq) + store.changes_deferred()
        } else {
            0
        };
        let seconds_behind = match store
            .changes_after::<crate::changes::ChangeKind>(status.applied_seq, 1)?
            .first()
        {
            Some(oldest) if behind > 0 => now_ms.saturating_sub(oldest.at_ms) as f64 / 1000.0,
            _ => 0.0,
        };
        Ok(Report {
            enabled,
            status,
            last_seq,
            changes_behind: behind,
            seconds_behind,
        })
    }
}

/// A connection to Redis with timeouts, so a hung server fails the batch instead of the mirror.
pub async fn connect(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// An edge's connection to Redis: the same timeouts, and reconnection with backoff (100 ms
/// doubling to 5 s) after any error.
pub async fn connect_managed(url: &str) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(5));
    redis::aio::ConnectionManager::new_with_config(client, config).await
}

/// The mirror's gauges in Prometheus' text format.
pub fn prometheus_text(report: &Report) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "proxyfleet_mirror_enabled",
        "1 when a Redis mirror is configured.",
        f64::from(u8::from(report.enabled)),
    );
    gauge(
        "proxyfleet_mirror_up",
        "1 while the mirror streams changes into Redis.",
        f64::from(u8::from(report.status.state == State::Streaming)),
    );
    gauge(
        "proxyfleet_mirror_applied_seq",
        "Last change sequence applied to Redis.",
        report.status.applied_seq as f64,
    );
    gauge(
        "proxyfleet_changelog_seq",
        "Last change sequence committed to the store.",
        report.last_seq as f64,
    );
    gauge(
        "proxyfleet_mirror_lag_changes",
        "Committed changes not yet in Redis.",
        report.changes_behind as f64,
    );
    gauge(
        "proxyfleet_mirror_lag_seconds",
        "Age of the oldest change not yet in Redis.",
        report.seconds_behind,
    );
    gauge(
        "proxyfleet_mirror_resyncs",
        "Full copies made since start.",
        report.status.resyncs as f64,
    );
    out
}
