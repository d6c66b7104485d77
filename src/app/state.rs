//! What every handler and background job shares.

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
    pub distribution: Distribution,
    pub gateways: Gateways,
    pub billing: Billing,
    pub mailer: Mailer,
    pub mirror: Mirror,
    pub limits: crate::http::rate_limit::RateLimits,
    pub metrics: crate::metrics::Metrics,
}
