//! The config server: what each client is told to use. Pro proxies first for pro users, the
//! user's fallback proxies, and a stable rendezvous subset of the free proxies; signed with
//! Ed25519, cacheable (ETag), compressed, long-pollable.

pub mod config;
pub mod keys;
pub mod notify;
pub mod routes;
pub mod subset;

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::error::Result;
use crate::fleet::model::User;
use crate::registry::Registry;
use config::{ClientConfig, FleetView, Rules};
use keys::Keys;

/// How often the background job re-reads the live fleet (load, roles).
pub const VIEW_REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct DistributionSettings {
    pub free_k: usize,
    pub pro_k: usize,
    /// When set, clients of one /16 (IPv6: /32) within one window share a free subset.
    pub network_window_secs: Option<u64>,
    pub poll_after_secs: u64,
}

pub struct Distribution {
    pub keys: Keys,
    pub settings: DistributionSettings,
    registry: Registry,
    view: RwLock<Option<(u64, Arc<FleetView>)>>,
}

impl Distribution {
    pub fn new(keys: Keys, settings: DistributionSettings, registry: Registry) -> Distribution {
        Distribution {
            keys,
            settings,
            registry,
            view: RwLock::new(None),
        }
    }

    /// The live fleet. Rebuilt here only when the routable set changed (a proxy came, left or
    /// moved: configs must follow at once); load and role changes are picked up by `refresh`,
    /// which a background job calls every `VIEW_REFRESH`, so no request waits for a rebuild.
    pub fn view(&self, now_ms: u64) -> Result<Arc<FleetView>> {
        let version = self.registry.generation();
        {
            let cached = self.view.read().unwrap_or_else(|e| e.into_inner());
            if let Some((seen, view)) = cached.as_ref() {
                if *seen == version {
                    return Ok(view.clone());
                }
            }
        }
        self.rebuild(version, now_ms)
    }

    /// Rebuilds the view from the registry (the background refresh).
    pub fn refresh(&self, now_ms: u64) -> Result<Arc<FleetView>> {
        let version = self.registry.generation();
        self.rebuild(version, now_ms)
    }

    fn rebuild(&self, version: u64, now_ms: u64) -> Result<Arc<FleetView>> {
        let view = Arc::new(FleetView::new(self.registry.list(now_ms)?));
        let mut cached = self.view.write().unwrap_or_else(|e| e.into_inner());
        *cached = Some((version, view.clone()));
        Ok(view)
    }

    /// The key of a user's free subset: the user, or the client's network and time window.
    pub fn subset_key(&self, user: &User, client: Option<IpAddr>, now_ms: u64) -> String {
        match (self.settings.network_window_secs, client) {
            (Some(window), Some(ip)) if window > 0 => {
                let slot = now_ms / 1000 / window;
                match ip {
                    IpAddr::V4(v4) => {
                        let [a, b, _, _] = v4.octets();
                        format!("net4:{a}.{b}:{slot}")
                    }
                    IpAddr::V6(v6) => {
                        let s = v6.segments();
                        format!("net6:{:x}:{:x}:{slot}", s[0], s[1])
                    }
                }
            }
            _ => format!("user:{}", user.id),
        }
    }

    pub fn config_for(
        &self,
        user: &User,
        client: Option<IpAddr>,
        now_ms: u64,
    ) -> Result<ClientConfig> {
        let view = self.view(now_ms)?;
        let key = self.subset_key(user, client, now_ms);
        let rules = Rules {
            secret: &self.keys.rendezvous,
            free_k: self.settings.free_k,
            pro_k: self.settings.pro_k,
            subset_key: &key,
            poll_after_secs: self.settings.poll_after_secs,
        };
        Ok(config::build(&view, user, &rules, now_ms))
    }
}
