//! Backups over HTTP: `GET /api/v1/admin/backup`, a consistent snapshot of the running
//! server's store, for `proxyfleet backup` (with the backup cookie) or an admin (token or panel
//! session).

use std::sync::Arc;

use warp::http::{header, Response, StatusCode};
use warp::{Filter, Rejection};

use crate::api::filters::{admin, with_state};
use crate::api::AppState;
use crate::error::Error;
use crate::http::auth::bearer;
use crate::http::reject;

pub fn routes(
    state: Arc<AppState>,
) -> (
    super::Table,
    impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone,
) {
    endpoints! {
        GET "/api/v1/admin/backup" => backup(state),
    }
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
