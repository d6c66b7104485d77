//! `GET /api/v1/admin/mirror` (state, lag, last error), `POST /api/v1/admin/mirror/resync`,
//! and `GET /metrics` (Prometheus text; the mirror's gauges).

use std::sync::Arc;

use warp::http::StatusCode;
use warp::{Filter, Rejection};

use crate::api::filters::{admin, with_state};
use crate::api::AppState;
use crate::clock::now_ms;
use crate::http::{json, reject};

type Route = warp::reply::Response;

pub fn routes(state: Arc<AppState>) -> impl Filter<Extract = (Route,), Error = Rejection> + Clone {
    let status = warp::path!("api" / "v1" / "admin" / "mirror")
        .and(warp::get())
        .and(admin(&state))
        .and(with_state(&state))
        .and_then(|state: Arc<AppState>| async move {
            let report = state
                .mirror
                .report(&state.store, now_ms())
                .map_err(reject)?;
            Ok::<_, Rejection>(json(StatusCode::OK, &report))
        });
    let resync = warp::path!("api" / "v1" / "admin" / "mirror" / "resync")
        .and(warp::post())
        .and(admin(&state))
        .and(with_state(&state))
        .and_then(|state: Arc<AppState>| async move {
            state.mirror.request_resync().map_err(reject)?;
            Ok::<_, Rejection>(json(
                StatusCode::ACCEPTED,
                &serde_json::json!({ "status": "resync requested" }),
            ))
        });
    status.or(resync).unify()
}
