//! The HTTP API: the shared state, one route module per capability, and the root router that
//! merges them and makes every error JSON. Nothing below this layer knows about HTTP routes or
//! about `AppState`; handlers call the capabilities' services (docs/ARCHITECTURE.md).

pub mod admin;
pub mod backup;
pub mod billing;
pub mod distribution;
pub mod edge;
pub mod filters;
pub mod fleet;
pub mod gateways;
pub mod metrics;
pub mod mirror;
pub mod queue;
pub mod registry;
mod state;

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::Filter;

use crate::http::{json, recover};
pub use state::{AppState, Tokens};

/// Every endpoint, for people and for tools (tests/api/openapi.rs keeps it true to the routes).
pub const OPENAPI: &str = include_str!("../../assets/openapi.json");

/// Every route; `over_tls` when they answer on the HTTPS listener.
pub fn routes(state: Arc<AppState>, over_tls: bool) -> BoxedFilter<(warp::reply::Response,)> {
    // A monitor's probe: 503 while writes are refused for lack of disk, or after the engine
    // failed at a full disk (that one needs a restart).
    let storage = state.clone();
    let health = warp::path!("healthz").and(warp::get()).map(move || {
        let disk = storage.store.disk_status();
        let (status, word) = if disk.storage_failed {
            (StatusCode::SERVICE_UNAVAILABLE, "restart_needed")
        } else if disk.writes_refused {
            (StatusCode::SERVICE_UNAVAILABLE, "disk_full")
        } else {
            (StatusCode::OK, "ok")
        };
        json(
            status,
            &serde_json::json!({ "status": word, "storage": disk }),
        )
    });
    let openapi = warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .map(|| {
            warp::http::Response::builder()
                .header(warp::http::header::CONTENT_TYPE, "application/json")
                .header(warp::http::header::CACHE_CONTROL, "public, max-age=3600")
                .body(warp::hyper::Body::from(OPENAPI))
                .unwrap_or_default()
        });
    // The hot paths (config reads, heartbeats) come first: warp tries routes in order.
    let api = distribution::routes(state.clone())
        .boxed()
        .or(registry::routes(state.clone()).boxed())
        .unify()
        .or(gateways::routes(state.clone()).boxed())
        .unify()
        .or(health)
        .unify()
        .or(openapi)
        .unify()
        .or(queue::routes(state.clone()).boxed())
        .unify()
        .or(billing::routes(state.clone()).boxed())
        .unify()
        .or(mirror::routes(state.clone()).boxed())
        .unify()
        .or(metrics::routes(state.clone()).boxed())
        .unify()
        .or(backup::routes(state.clone()).boxed())
        .unify()
        .or(fleet::routes(state.clone()).boxed())
        .unify()
        .or(admin::routes(state.clone(), over_tls).boxed())
        .unify()
        .recover(recover)
        .unify()
        .boxed();
    // Every mutating admin call is recorded in the audit trail once answered; every answer is
    // counted by route template (never the raw path: it may hold a code or a user id).
    let observed = state.clone();
    admin::layer::audited(state, api)
        .with(warp::log::custom(move |info| {
            observed.metrics.observe_request(
                info.method().as_str(),
                info.path(),
                info.status().as_str(),
                info.elapsed(),
            )
        }))
        .map(warp::Reply::into_response)
        // The audit layer's own rejections, if any, get the JSON error shape too.
        .recover(recover)
        .unify()
        .boxed()
}
