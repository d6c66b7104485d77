//! What every handler shares: the configuration, the tokens and every capability's service.

use std::sync::Arc;

use crate::billing::Billing;
use crate::config::Config;
use crate::distribution::Distribution;
use crate::fleet::rebalance::RebalanceSettings;
use crate::fleet::Fleet;
use crate::gateways::Gateways;
use crate::http::TokenHash;
use crate::mail::Mailer;
use crate::mirror::Mirror;
use crate::queue::Queue;
use crate::registry::edge::EdgeSettings;
use crate::registry::Registry;
use crate::store::Store;

pub struct Tokens {
    pub admin: TokenHash,
    pub registry: TokenHash,
    /// The control cookie: accepted by `GET /api/v1/admin/backup` and the admin account
    /// routes only (see `tokens::write_control_cookie`).
    pub control: TokenHash,
}

pub struct AppState {
    pub admin: crate::admin::AdminPanel,
    pub config: Config,
    pub store: Store,
    pub queue: Queue,
    pub tokens: Tokens,
    pub registry: Registry,
    pub edge: EdgeSettings,
    pub fleet: Fleet,
    pub rebalance: RebalanceSettings,
    pub distribution: Arc<Distribution>,
    pub gateways: Gateways,
    pub billing: Billing,
    pub blocking: crate::blocking::Blocking,
    pub mailer: Mailer,
    pub mirror: Arc<Mirror>,
    pub backup_schedule: crate::backup::schedule::Schedule,
    pub limits: crate::http::rate_limit::RateLimits,
    pub metrics: crate::metrics::Metrics,
    /// The time every handler reads (the system clock; a test may move it forward).
    pub clock: crate::clock::Clock,
    /// What the listeners hold now (connections, long-polls), for `/metrics`.
    pub capacity: std::sync::Arc<crate::http::listener::Capacity>,
}

impl AppState {
    /// Where the dashboard's figures are read from.
    pub fn summary_sources(&self) -> crate::admin::summary::Sources<'_> {
        crate::admin::summary::Sources {
            config: &self.config,
            store: &self.store,
            registry: &self.registry,
            queue: &self.queue,
            mirror: &self.mirror,
            blocked: self.blocking.blocked(),
            mail: &self.mailer,
        }
    }

    /// Drops the change-log entries beyond the retention that the mirror has already sent.
    pub fn drop_replayed_changes(&self) -> crate::error::Result<u64> {
        self.store
            .compact_changes(self.config.changelog_retain, self.mirror.consumed_seq())
    }
}
