//! The store's upkeep over HTTP (admin):
//! - `GET /api/v1/admin/store`: its size on disk and compactions;
//! - `POST /api/v1/admin/store/compact`: rewrite it now (`store::compaction`);
//! - `GET /api/v1/admin/check`: the invariants `proxyfleet check` verifies (link indexes, the
//!   task queue, proxy credentials), on the live store.

use std::sync::Arc;

use serde::Serialize;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use crate::api::filters::{admin, with_state};
use crate::api::AppState;
use crate::error::Error;
use crate::http::{json, reject};

type Route = warp::reply::Response;

pub fn routes(
    state: Arc<AppState>,
) -> (
    super::Table,
    impl Filter<Extract = (Route,), Error = Rejection> + Clone,
) {
    let base = warp::path!("api" / "v1" / "admin" / ..).and(admin(&state));
    let status = base
        .clone()
        .and(warp::path!("store"))
        .and(warp::get())
        .and(with_state(&state))
        .and_then(store_status);
    let compact = base
        .clone()
        .and(warp::path!("store" / "compact"))
        .and(warp::post())
        .and(with_state(&state))
        .and_then(compact_now);
    let check = base
        .and(warp::path!("check"))
        .and(warp::get())
        .and(with_state(&state))
        .and_then(check_invariants);
    endpoints! {
        GET "/api/v1/admin/store" => status,
        POST "/api/v1/admin/store/compact" => compact,
        GET "/api/v1/admin/check" => check,
    }
}

async fn store_status(state: Arc<AppState>) -> Result<Route, Rejection> {
    let policy = crate::store::CompactPolicy::from_config(&state.config);
    let status = state.store.compaction_status(policy).map_err(reject)?;
    Ok(json(StatusCode::OK, &status))
}

async fn compact_now(state: Arc<AppState>) -> Result<Route, Rejection> {
    let done = tokio::task::spawn_blocking(move || {
        state.drop_replayed_changes()?;
        state.store.compact()
    })
    .await
    .map_err(|e| reject(Error::internal(e)))?
    .map_err(reject)?;
    tracing::info!(
        generation = done.generation,
        bytes_before = done.bytes_before,
        bytes_after = done.bytes_after,
        writes_paused_ms = done.writes_paused_ms,
        "store compacted on request"
    );
    Ok(json(StatusCode::OK, &done))
}

#[derive(Serialize)]
struct CheckReport {
    ok: bool,
    problems: Vec<String>,
}

async fn check_invariants(state: Arc<AppState>) -> Result<Route, Rejection> {
    let problems =
        tokio::task::spawn_blocking(move || crate::admin::check::store_invariants(&state.store))
            .await
            .map_err(|e| reject(Error::internal(e)))?
            .map_err(reject)?;
    let report = CheckReport {
        ok: problems.is_empty(),
        problems,
    };
    Ok(json(StatusCode::OK, &report))
}
