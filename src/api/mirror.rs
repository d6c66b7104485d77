//! `GET /api/v1/admin/mirror` (state, lag, last error), `POST /api/v1/admin/mirror/resync`,
//! and `GET /metrics` (Prometheus text; the mirror's gauges).

use std::sync::Arc;

use warp::http::StatusCode;
use warp::{Filter, Rejection};

use crate::api::filters::{admin, with_state};
use crate::api::AppState;
use crate::http::{json, reject, StatusBody};

type Route = warp::reply::Response;

pub fn routes(
    state: Arc<AppState>,
) -> (
    super::Table,
    impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone,
) {
    let status = warp::path!("api" / "v1" / "admin" / "mirror")
        .and(warp::get())
        .and(admin(&state))
        .and(with_state(&state))
        .and_then(mirror_status);
    let resync = warp::path!("api" / "v1" / "admin" / "mirror" / "resync")
        .and(warp::post())
        .and(admin(&state))
        .and(with_state(&state))
        .and_then(request_resync);
    endpoints! {
        GET "/api/v1/admin/mirror" => status,
        POST "/api/v1/admin/mirror/resync" => resync,
    }
}

async fn mirror_status(state: Arc<AppState>) -> Result<Route, Rejection> {
    let report = state
        .mirror
        .report(&state.store, state.clock.now_ms())
        .map_err(reject)?;
    Ok(json(StatusCode::OK, &report))
}

async fn request_resync(state: Arc<AppState>) -> Result<Route, Rejection> {
    state.mirror.request_resync().map_err(reject)?;
    Ok(json(
        StatusCode::ACCEPTED,
        &StatusBody {
            status: "resync requested",
        },
    ))
}
