//! The config server: what each client is told to use. Pro proxies first for pro users, the
//! user's fallback proxies, and a stable rendezvous subset of the free proxies; signed with
//! Ed25519, cacheable (ETag), compressed, long-pollable.

pub mod blocked;
pub mod bundle;
pub mod config;
pub mod keys;
pub mod notify;
pub mod subset;

/// Header carrying the base64 Ed25519 signature of the (uncompressed) body.
pub const SIGNATURE_HEADER: &str = "x-proxyfleet-signature";

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::error::Result;
use crate::fleet::model::User;
use crate::registry::{ProxyName, Registry};
use blocked::BlockedSet;
use config::{ClientConfig, FleetView, Rendered, Rules};
use keys::Keys;

/// How often the background job re-reads the live fleet (load, roles).
pub const VIEW_REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct DistributionSettings {
    pub free_k: usize,
    /// When set, clients of one /16 (IPv6: /32) within one window share a free subset.
    pub network_window_secs: Option<u64>,
    pub poll_after_secs: u64,
    /// How long a signed config is valid (`config_validity_secs`).
    pub validity_secs: u64,
}

/// The fleet view with the registry generation and revision it was built from.
struct CachedView {
    generation: u64,
    revision: u64,
    view: Arc<FleetView>,
    /// Changes when a rebuilt view would list proxies differently in some config (not when
    /// only load or heartbeat times moved): the part of a rendered config's inputs it stands for.
    listing: u64,
}

/// How many config signatures are kept: a client polls the same config again and again, and
/// an Ed25519 signature costs more than the rest of a config request.
const SIGNATURES_CACHED: usize = 200_000;

/// How many bytes of rendered configs are kept (bodies and what they were built from), about
/// 50,000 users' at 1 KiB each: a client that polls with its ETag is answered 304 without
/// building and hashing its config again while nothing it depends on changed.
const RENDERED_BYTES: u64 = 64 << 20;

/// What a user's config is built from besides the user's proxies and the settings.
#[derive(PartialEq)]
struct ConfigContext {
    listing: u64,
    blocked: u64,
    country: Option<String>,
    subset_key: String,
    issued_at: u64,
    pro: bool,
}

/// A user's last rendered config and what it was built from: the same inputs give the same
/// body.
struct RenderedFor {
    context: ConfigContext,
    proxies: Vec<ProxyName>,
    pro_proxies: Vec<ProxyName>,
    rendered: Arc<Rendered>,
}

impl RenderedFor {
    fn built_from(&self, context: &ConfigContext, user: &User) -> bool {
        self.context == *context
            && self.proxies == user.proxies
            && self.pro_proxies == user.pro_proxies
    }
}

#[derive(Clone)]
struct RenderedWeight;

impl quick_cache::Weighter<u64, Arc<RenderedFor>> for RenderedWeight {
    fn weight(&self, _user: &u64, kept: &Arc<RenderedFor>) -> u64 {
        let names = |names: &[ProxyName]| -> usize {
            names.iter().map(|name| name.as_str().len() + 24).sum()
        };
        (kept.rendered.body.len()
            + kept.context.subset_key.len()
            + names(&kept.proxies)
            + names(&kept.pro_proxies)
            + 256) as u64
    }
}

pub struct Distribution {
    pub keys: Keys,
    pub settings: DistributionSettings,
    registry: Registry,
    /// The proxies blocked per country: left out of the configs served there.
    blocked: BlockedSet,
    view: RwLock<Option<CachedView>>,
    /// Signatures by the SHA-256 of the body they sign.
    signatures: quick_cache::sync::Cache<[u8; 32], Arc<str>>,
    /// Each user's last rendered config, by user id.
    rendered: quick_cache::sync::Cache<u64, Arc<RenderedFor>, RenderedWeight>,
}

impl Distribution {
    pub fn new(
        keys: Keys,
        settings: DistributionSettings,
        registry: Registry,
        blocked: BlockedSet,
    ) -> Distribution {
        Distribution {
            keys,
            settings,
            registry,
            blocked,
            view: RwLock::new(None),
            signatures: quick_cache::sync::Cache::new(SIGNATURES_CACHED),
            rendered: quick_cache::sync::Cache::with_weighter(
                (RENDERED_BYTES / 1024) as usize,
                RENDERED_BYTES,
                RenderedWeight,
            ),
        }
    }

    /// The base64 Ed25519 signature of a rendered config, signed once per distinct body.
    pub fn signature(&self, rendered: &Rendered) -> Arc<str> {
        if let Some(signature) = self.signatures.get(&rendered.digest) {
            return signature;
        }
        let signature: Arc<str> = self.keys.sign(&rendered.body).into();
        self.signatures.insert(rendered.digest, signature.clone());
        signature
    }

    /// The live fleet. Rebuilt here only when the routable set changed (a proxy came, left or
    /// moved: configs must follow at once); load and role changes are picked up by `refresh`,
    /// which a background job calls every `VIEW_REFRESH`, so no request waits for a rebuild.
    pub fn view(&self, now_ms: u64) -> Result<Arc<FleetView>> {
        Ok(self.listed_view(now_ms)?.0)
    }

    /// The live fleet with its listing number (see `CachedView::listing`).
    fn listed_view(&self, now_ms: u64) -> Result<(Arc<FleetView>, u64)> {
        let generation = self.registry.generation();
        {
            let cached = self.view.read().unwrap_or_else(|e| e.into_inner());
            if let Some(cached) = cached.as_ref() {
                if cached.generation == generation {
                    return Ok((cached.view.clone(), cached.listing));
                }
            }
        }
        let revision = self.registry.revision();
        let view = Arc::new(FleetView::new(self.registry.list(now_ms)?, now_ms));
        let listing = self.publish(generation, revision, view.clone());
        Ok((view, listing))
    }

    /// Rebuilds the view from the registry (the background refresh) when a proxy record was
    /// written or a proxy expired since the last build. `prepare` runs on the new view before
    /// requests can see it, so what is derived from it (the gateway set) is ready and no
    /// request pays for building it.
    pub fn refresh(&self, now_ms: u64, prepare: impl FnOnce(&Arc<FleetView>)) -> Result<()> {
        // Read before the list, so a write landing during the rebuild triggers the next one.
        let (generation, revision) = (self.registry.generation(), self.registry.revision());
        let unchanged = {
            let cached = self.view.read().unwrap_or_else(|e| e.into_inner());
            cached.as_ref().is_some_and(|c| {
                c.generation == generation
                    && c.revision == revision
                    && c.view.none_expired_since_built(now_ms)
            })
        };
        if unchanged {
            return Ok(());
        }
        let view = Arc::new(FleetView::new(self.registry.list(now_ms)?, now_ms));
        prepare(&view);
        self.publish(generation, revision, view);
        Ok(())
    }

    /// Makes `view` the current one; returns its listing number.
    fn publish(&self, generation: u64, revision: u64, view: Arc<FleetView>) -> u64 {
        let mut cached = self.view.write().unwrap_or_else(|e| e.into_inner());
        let listing = match cached.as_ref() {
            Some(old) if old.view.lists_as(&view) => old.listing,
            Some(old) => old.listing + 1,
            None => 0,
        };
        *cached = Some(CachedView {
            generation,
            revision,
            view,
            listing,
        });
        listing
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

    /// The config of `user` for a client at `client` in `country` (none of the proxies
    /// blocked there).
    pub fn config_for(
        &self,
        user: &User,
        client: Option<IpAddr>,
        country: Option<&str>,
        now_ms: u64,
    ) -> Result<ClientConfig> {
        let view = self.view(now_ms)?;
        Ok(self.config_in(&view, user, client, country, now_ms))
    }

    /// `config_for`, rendered: the user's last rendered config when nothing it was built
    /// from changed (the common case of a client polling with its ETag), else built anew.
    pub fn rendered_for(
        &self,
        user: &User,
        client: Option<IpAddr>,
        country: Option<&str>,
        now_ms: u64,
    ) -> Result<Arc<Rendered>> {
        // The blocked generation is read before the set and the view: a change landing in
        // between leaves this render under the older generation, so it is not reused.
        let blocked = self.blocked.generation();
        let (view, listing) = self.listed_view(now_ms)?;
        let context = ConfigContext {
            listing,
            blocked,
            country: country.map(str::to_string),
            subset_key: self.subset_key(user, client, now_ms),
            issued_at: config::signing_window(now_ms, self.settings.validity_secs).0,
            pro: user.is_pro(now_ms),
        };
        // A proxy expiring changes configs without a new listing: only reuse before that.
        let reusable = view.none_expired_since_built(now_ms);
        if reusable {
            if let Some(kept) = self.rendered.get(&user.id.0) {
                if kept.built_from(&context, user) {
                    return Ok(kept.rendered.clone());
                }
            }
        }
        let config = self.config_in(&view, user, client, country, now_ms);
        let rendered = Arc::new(config::render(&config));
        if reusable {
            let kept = RenderedFor {
                context,
                proxies: user.proxies.clone(),
                pro_proxies: user.pro_proxies.clone(),
                rendered: rendered.clone(),
            };
            self.rendered.insert(user.id.0, Arc::new(kept));
        }
        Ok(rendered)
    }

    /// The config of `user` against a given fleet view (the Redis mirror keeps its own).
    pub fn config_in(
        &self,
        view: &FleetView,
        user: &User,
        client: Option<IpAddr>,
        country: Option<&str>,
        now_ms: u64,
    ) -> ClientConfig {
        let key = self.subset_key(user, client, now_ms);
        let blocked = self.blocked.in_country(country);
        let rules = Rules {
            secret: &self.keys.rendezvous,
            free_k: self.settings.free_k,
            subset_key: &key,
            poll_after_secs: self.settings.poll_after_secs,
            validity_secs: self.settings.validity_secs,
            blocked: &blocked,
        };
        config::build(view, user, &rules, now_ms)
    }
}
