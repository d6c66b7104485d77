//! `GET /api/v1/admin/mirror` (state, lag, last error), `POST /api/v1/admin/mirror/resync`,
//! and `GET /metrics` (Prometheus text; the mirror's gauges).

use std::fmt::Write;
use std::sync::Arc;

use warp::http::StatusCode;
use warp::{Filter, Rejection};

use super::{Report, State};
use crate::app::AppState;
use crate::clock::now_ms;
use crate::http::{admin, json, reject, with_state};

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

/// The mirror's gauges in Prometheus' text format.
pub fn prometheus_text(report: &Report) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "proxyfleet_mirror_enabled",
        "1 when a Redis mirror is configured.",
        f64::from(u8::from(report.enabled)),
    );
    gauge(
        "proxyfleet_mirror_up",
        "1 while the mirror streams changes into Redis.",
        f64::from(u8::from(report.status.state == State::Streaming)),
    );
    gauge(
        "proxyfleet_mirror_applied_seq",
        "Last change sequence applied to Redis.",
        report.status.applied_seq as f64,
    );
    gauge(
        "proxyfleet_changelog_seq",
        "Last change sequence committed to the store.",
        report.last_seq as f64,
    );
    gauge(
        "proxyfleet_mirror_lag_changes",
        "Committed changes not yet in Redis.",
        report.changes_behind as f64,
    );
    gauge(
        "proxyfleet_mirror_lag_seconds",
        "Age of the oldest change not yet in Redis.",
        report.seconds_behind,
    );
    gauge(
        "proxyfleet_mirror_resyncs",
        "Full copies made since start.",
        report.status.resyncs as f64,
    );
    out
}
