//! `GET /api/v1/admin/backup`: a consistent snapshot of the running server's store, for
//! `proxyfleet backup` (with the backup cookie) or an admin (token or panel session).

use std::sync::Arc;

use warp::http::{header, Response, StatusCode};
use warp::{Filter, Rejection};

use crate::app::AppState;
use crate::error::Error;
use crate::http::auth::bearer;
use crate::http::{admin, reject, with_state};

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let allowed = bearer(state.tokens.backup).or(admin(&state)).unify();
    warp::path!("api" / "v1" / "admin" / "backup")
        .and(warp::get())
        .and(allowed)
        .and(with_state(&state))
        .and_then(|state: Arc<AppState>| async move {
            let snapshot = tokio::task::spawn_blocking(move || {
                super::write_to(&state.store, Vec::new()).map(|(bytes, _)| bytes)
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
                .body(warp::hyper::Body::from(snapshot))
                .map_err(|e| reject(Error::internal(e)))
        })
}
