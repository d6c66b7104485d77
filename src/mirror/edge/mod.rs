//! `proxyfleet edge`: serves the read APIs (`GET /json`, `GET /api/v1/config`,
//! `GET /api/v1/config/pubkey`) from Redis alone, with the primary's own rendering code, so
//! its answers are byte for byte the primary's. Writes get 421 with the primary's address.
//! Run many behind any load balancer, each against a Redis replica.

pub mod reader;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::keys::Keys;
use crate::clock::now_ms;
use crate::distribution::config::FleetView;
use crate::gateways::geo::GeoDb;
use crate::gateways::{GatewaySet, Gateways};
use reader::{Conn, Settings};

/// How often the edge looks for a new fleet in Redis (the primary refreshes as often).
pub const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub redis_url: String,
    pub listen: SocketAddr,
    pub prefix: String,
    pub geoip_db: Option<PathBuf>,
    /// Where writes must go, told to clients that send them here.
    pub primary: Option<String>,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub config_wait_max_secs: u64,
    /// The limits of the public endpoints the edge serves (only `json` applies: `/json` is
    /// the one limited endpoint that reads). Each edge counts its own clients.
    pub rate_limits: crate::config::RateLimitSettings,
}

/// The fleet as last read from Redis, with the gateway set `/json` ranks.
pub struct Loaded {
    pub settings: Settings,
    pub seq: Option<u64>,
    pub view: Arc<FleetView>,
    pub gateways: Gateways,
    pub set: Arc<GatewaySet>,
}

pub struct EdgeState {
    pub settings: EdgeSettings,
    pub keys: Keys,
    pub conn: Conn,
    pub loaded: RwLock<Option<Arc<Loaded>>>,
    /// Why the edge cannot serve from Redis now (`None`: it can), for `/healthz`.
    pub unready: RwLock<Option<String>>,
    /// `/json`'s limit per client address: a flood from one address can neither enumerate
    /// the gateways nor inflate a city's manual-choice count faster than the primary allows.
    pub limits: crate::http::rate_limit::RateLimits,
}

impl EdgeState {
    pub fn loaded(&self) -> Option<Arc<Loaded>> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Why the edge cannot serve from Redis now, if it cannot.
    pub fn unready(&self) -> Option<String> {
        self.unready
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_unready(&self, why: Option<String>) {
        *self.unready.write().unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// Counts a manual choice of `city` (`/json?type=refresh`) where the primary folds it in
    /// (`mirror::edge_counts`). A count Redis refuses is logged and lost: the answer to the
    /// client does not wait on a statistic.
    pub async fn count_override(&self, city: &str, now_ms: u64) {
        let mut conn = self.conn.clone();
        let field = format!("{}|{city}", crate::gateways::overrides::day_of(now_ms));
        let counted: redis::RedisResult<()> = redis::cmd("HINCRBY")
            .arg(self.keys.edge_overrides())
            .arg(field)
            .arg(1)
            .query_async(&mut conn)
            .await;
        if let Err(error) = counted {
            tracing::warn!(%error, city, "a manual city choice was not counted");
        }
    }

    /// Re-reads the fleet when the mirror moved on or a proxy expired since the last read,
    /// and records whether the edge can serve (`/healthz`).
    pub async fn refresh(&self) -> std::result::Result<(), String> {
        match self.read_fleet().await {
            Ok(()) => Ok(()),
            Err(error) => {
                // What was read before a failure may be older than Redis once it is back:
                // read everything again then.
                *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = None;
                self.set_unready(Some(format!("redis: {error}")));
                Err(error)
            }
        }
    }

    async fn read_fleet(&self) -> std::result::Result<(), String> {
        let mut conn = self.conn.clone();
        let seq = reader::seq(&mut conn, &self.keys).await?;
        if seq.is_none() {
            // Redis restarted empty, was flushed, or a full copy is under way: what it holds
            // is incomplete, and a valid token could be refused. Keep the last fleet read for
            // `/json`, but tell the load balancer.
            self.set_unready(Some(
                "redis holds no complete mirror (empty, flushed, or a full copy in progress)"
                    .into(),
            ));
            return Ok(());
        }
        let now = now_ms();
        if let Some(current) = self.loaded() {
            if current.seq == seq && current.view.none_expired_since_built(now) {
                self.set_unready(None);
                return Ok(());
            }
        }
        let Some(settings) = reader::settings(&mut conn, &self.keys).await? else {
            self.set_unready(Some("redis holds no settings from the primary".into()));
            return Ok(());
        };
        let proxies = reader::proxies(&mut conn, &self.keys).await?;
        let view = Arc::new(FleetView::new(proxies, now));
        let gateways = Gateways::new(
            GeoDb::open(self.settings.geoip_db.as_deref()),
            settings.peers_domain.clone(),
            settings.max_clients,
        );
        let set = gateways.set(&view, now);
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Loaded {
            settings,
            seq,
            view,
            gateways,
            set,
        }));
        self.set_unready(None);
        Ok(())
    }
}
