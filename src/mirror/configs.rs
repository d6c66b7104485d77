//! Keeps `<prefix>config:<user>` equal to what the primary would send each user. A user's
//! config changes when the user changes (written with the user's change) or when a proxy
//! comes, leaves or changes what a config shows of it (ip, port, role, country, city): then
//! every user's config is rewritten, a chunk at a time between change batches, so streaming
//! never waits for a whole sweep.

use std::collections::HashMap;
use std::sync::Arc;

use redis::Pipeline;

use super::keys::Keys;
use super::records::write_config;
use super::MirrorDeps;
use crate::changes::{Change, ChangeKind};
use crate::distribution::config::{render, FleetView};
use crate::error::Result;
use crate::fleet::model::User;
use crate::registry::Proxy;
use crate::store::codec::u64_key;
use crate::store::TreeId;

/// Users whose configs one sweep step rewrites.
pub const SWEEP_CHUNK: usize = 1_000;

/// What a client config shows of a proxy: a change here changes configs.
type Shown = (
    std::net::IpAddr,
    u16,
    crate::registry::Role,
    Option<String>,
    Option<String>,
    crate::registry::model::Transport,
);

fn shown(proxy: &Proxy) -> Shown {
    (
        proxy.ip,
        proxy.port,
        proxy.role,
        proxy.location.country.clone(),
        proxy.location.city.clone(),
        proxy.transport.clone(),
    )
}

pub struct Configs {
    view: Arc<FleetView>,
    shown: HashMap<String, Shown>,
    /// The next user id of a sweep in progress.
    sweep_from: Option<u64>,
    /// `issued_at` of the configs the last sweep wrote: when the signing window moves on,
    /// every config is signed again before the ones in Redis expire.
    signed_at: u64,
}

fn signed_at(deps: &MirrorDeps, now_ms: u64) -> u64 {
    let validity = deps.distribution.settings.validity_secs;
    crate::distribution::config::signing_window(now_ms, validity).0
}

impl Configs {
    /// The fleet as it is now; no sweep pending.
    pub fn load(deps: &MirrorDeps, now_ms: u64) -> Result<Configs> {
        let proxies = deps.registry.list(now_ms)?;
        Ok(Configs {
            shown: proxies
                .iter()
                .map(|p| (p.name.to_string(), shown(p)))
                .collect(),
            view: Arc::new(FleetView::new(proxies, now_ms)),
            sweep_from: None,
            signed_at: signed_at(deps, now_ms),
        })
    }

    /// True when the signing window moved on since the last sweep (configs must be re-signed).
    pub fn window_moved(&self, deps: &MirrorDeps, now_ms: u64) -> bool {
        signed_at(deps, now_ms) != self.signed_at
    }

    /// Notes what a change does to the fleet; true when configs must be swept.
    pub fn observe(&mut self, change: &Change) -> bool {
        match &change.kind {
            ChangeKind::ProxiesUpserted(proxies) => {
                let mut changed = false;
                for proxy in proxies {
                    let now = shown(proxy);
                    if self.shown.get(proxy.name.as_str()) != Some(&now) {
                        self.shown.insert(proxy.name.to_string(), now);
                        changed = true;
                    }
                }
                changed
            }
            ChangeKind::ProxyRemoved { name, .. } => self.shown.remove(name).is_some(),
            ChangeKind::UserUpserted(_) | ChangeKind::Writes(_) => false,
            // The configs served in that country change: sign every one again.
            ChangeKind::BlockChanged { .. } => true,
        }
    }

    /// Rebuilds the view from the registry and starts (or restarts) a sweep of every user.
    pub fn start_sweep(&mut self, deps: &MirrorDeps, now_ms: u64) -> Result<()> {
        self.view = Arc::new(FleetView::new(deps.registry.list(now_ms)?, now_ms));
        self.sweep_from = Some(0);
        self.signed_at = signed_at(deps, now_ms);
        Ok(())
    }

    pub fn sweeping(&self) -> bool {
        self.sweep_from.is_some()
    }

    /// Appends the config of `user` as the primary would render it now.
    pub fn write(
        &self,
        pipe: &mut Pipeline,
        keys: &Keys,
        deps: &MirrorDeps,
        user: &User,
        now_ms: u64,
    ) {
        // Where the user was last seen: an edge serves what the primary would serve there.
        let country = deps
            .store
            .get::<String>(crate::store::TreeId::UserCountries, user.id.key())
            .unwrap_or_default();
        let config =
            deps.distribution
                .config_in(&self.view, user, None, country.as_deref(), now_ms);
        let rendered = render(&config);
        let signature = deps.distribution.signature(&rendered);
        write_config(pipe, keys, user.id.0, config.version, &rendered, &signature);
    }

    /// The next chunk of the sweep in progress: its commands and how many users it covers.
    /// Ends the sweep after the last user.
    pub fn sweep_step(
        &mut self,
        pipe: &mut Pipeline,
        keys: &Keys,
        deps: &MirrorDeps,
        now_ms: u64,
    ) -> Result<usize> {
        let Some(from) = self.sweep_from else {
            return Ok(0);
        };
        let users: Vec<User> = deps
            .store
            .scan_from::<User>(TreeId::Users, u64_key(from))
            .take(SWEEP_CHUNK)
            .map(|item| item.map(|(_, user)| user))
            .collect::<Result<_>>()?;
        for user in &users {
            self.write(pipe, keys, deps, user, now_ms);
        }
        self.sweep_from = match users.last() {
            Some(last) if users.len() == SWEEP_CHUNK => Some(last.id.0 + 1),
            _ => None,
        };
        Ok(users.len())
    }
}
