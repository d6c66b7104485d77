//! Store upkeep over HTTP:
//! - `GET /api/v1/admin/backup`: a consistent snapshot of the running server's store, for
//!   `proxyfleet backup` (with the backup cookie) or an admin (token or panel session);
//! - `GET /api/v1/admin/store`: its size on disk and compactions;
//! - `POST /api/v1/admin/store/compact`: rewrite it now (`store::compaction`).

use std::sync::Arc;

use warp::http::{header, Response, StatusCode};
use warp::{Filter, Rejection};

use crate::api::filters::{admin, with_state};
use crate::api::AppState;
use crate::error::Error;
use crate::http::auth::bearer;
use crate::http::{json, reject};

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    backup(state.clone())
        .or(store_status(state.clone()))
        .unify()
        .or(compact(state))
        .unify()
}

fn store_status(
    state: Arc<AppState>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "admin" / "store")
        .and(warp::get())
        .and(admin(&state))
        .and(with_state(&state))
        .and_then(|state: Arc<AppState>| async move {
            let status = state
                .store
                .compaction_status(crate::store::CompactPolicy::from_config(&state.config))
                .map_err(reject)?;
            Ok::<_, Rejection>(json(StatusCode::OK, &status))
        })
}

fn compact(
    state: Arc<AppState>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "admin" / "store" / "compact")
        .and(warp::post())
        .and(admin(&state))
        .and(with_state(&state))
        .and_then(|state: Arc<AppState>| async move {
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
            Ok::<_, Rejection>(json(StatusCode::OK, &done))
        })
}

fn backup(
    state: Arc<AppState>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let allowed = bearer(state.tokens.control).or(admin(&state)).unify();
    warp::path!("api" / "v1" / "admin" / "backup")
        .and(warp::get())
        .and(allowed)
        .and(with_state(&state))
        .and_then(|state: Arc<AppState>| async move {
            let (snapshot, records) = tokio::task::spawn_blocking(move || {
                let recipient = crate::backup::encryption::recipient(&state.config)?;
                crate::backup::write_to(&state.store, Vec::new(), recipient.as_ref())
            })
            .await
            .map_err(|e| reject(Error::internal(e)))?
            .map_err(reject)?;
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"proxyfleet.pfbak\"",
                )
                .header(header::CACHE_CONTROL, "no-store")
                .header(crate::backup::RECORDS_HEADER, records)
                .body(warp::hyper::Body::from(snapshot))
                .map_err(|e| reject(Error::internal(e)))
        })
}
