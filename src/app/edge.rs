//! `proxyfleet edge`: the edge's listener and its refresh loop, around the state in
//! `crate::mirror::edge` and the routes in `crate::api::edge`.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::mirror::edge::{EdgeSettings, EdgeState, REFRESH};
use crate::mirror::keys::Keys;

/// How often the rate limiter forgets idle addresses.
const SHRINK_LIMITS: std::time::Duration = std::time::Duration::from_secs(60);

pub struct EdgeApp {
    address: SocketAddr,
    server: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    state: Arc<EdgeState>,
    stop: Arc<watch::Sender<bool>>,
}

impl EdgeApp {
    /// Connects to Redis and binds the listener (port 0 picks a free port).
    pub async fn build(settings: EdgeSettings) -> Result<EdgeApp> {
        let conn = crate::mirror::connect_managed(&settings.redis_url)
            .await
            .map_err(|e| Error::caused_by(format!("redis {}", settings.redis_url), e))?;
        let state = Arc::new(EdgeState {
            keys: Keys::new(&settings.prefix),
            limits: crate::http::rate_limit::RateLimits::new(&settings.rate_limits),
            settings,
            conn,
            loaded: RwLock::new(None),
            unready: RwLock::new(Some("the fleet was not read from redis yet".into())),
        });
        if let Err(e) = state.refresh().await {
            tracing::warn!(error = %e, "edge: first read of the fleet failed");
        }
        let stop = Arc::new(watch::channel(false).0);
        let listen = state.settings.listen;
        let listener = crate::http::listener::bind(listen)
            .await
            .map_err(|e| Error::caused_by(format!("cannot listen on {listen}"), e))?;
        let address = listener.local_addr().map_err(Error::internal)?;
        // The primary's defaults: an edge faces the same clients.
        let limits = crate::http::listener::Limits::from_config(&crate::config::Config::default())
            .within_file_limit();
        let capacity = crate::http::listener::Capacity::new(&limits);
        let server = crate::http::listener::serve(
            listener,
            None,
            crate::api::edge::routes(state.clone()),
            limits,
            capacity,
            stop.subscribe(),
        );
        Ok(EdgeApp {
            address,
            server: Box::pin(server),
            state,
            stop,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn stopper(&self) -> Arc<watch::Sender<bool>> {
        self.stop.clone()
    }

    /// Serves until `stopper()` sends true, refreshing the fleet every second.
    pub async fn run(self) {
        let state = self.state.clone();
        let stop = self.stop.subscribe();
        let refresher = tokio::spawn(async move {
            crate::clock::every(REFRESH, stop, || async {
                if let Err(e) = state.refresh().await {
                    tracing::warn!(error = %e, "edge: fleet refresh from redis failed");
                }
            })
            .await;
        });
        // As the primary's upkeep does: addresses idle long enough to be full again are
        // forgotten, so a scan from many addresses does not grow the limiter for good.
        let (state, stop) = (self.state.clone(), self.stop.subscribe());
        let shrinker = tokio::spawn(async move {
            crate::clock::every(SHRINK_LIMITS, stop, || async { state.limits.shrink() }).await;
        });
        self.server.await;
        refresher.abort();
        shrinker.abort();
    }
}
