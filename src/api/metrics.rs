//! `GET /metrics` (admin token): the process's counters, the store's gauges, the mirror's lag.

use std::sync::Arc;

use warp::http::{header, Response, StatusCode};
use warp::{Filter, Rejection};

use crate::api::filters::{admin, with_state};
use crate::api::AppState;
use crate::error::Error;
use crate::http::reject;

pub fn routes(
    state: Arc<AppState>,
) -> (
    super::Table,
    impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone,
) {
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(admin(&state))
        .and(with_state(&state))
        .and_then(scrape);
    endpoints! {
        GET "/metrics" => metrics,
    }
}

async fn scrape(state: Arc<AppState>) -> Result<warp::reply::Response, Rejection> {
    let text = tokio::task::spawn_blocking(move || render(&state))
        .await
        .map_err(|e| reject(Error::internal(e)))?
        .map_err(reject)?;
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)
        .body(warp::hyper::Body::from(text))
        .map_err(|e| reject(Error::internal(e)))
}

fn render(state: &AppState) -> crate::error::Result<String> {
    let now = state.clock.now_ms();
    let summary = crate::admin::summary::summary(&state.summary_sources(), now)?;
    let mut text = state.metrics.encode_counters();
    text.push_str(&crate::metrics::scrape::gauges(
        &summary,
        &state.billing.totals()?,
    ));
    text.push_str(&crate::mirror::prometheus_text(&summary.mirror));
    text.push_str(&crate::metrics::scrape::blocked_gauges(
        &state.blocking.blocked().counts(),
    ));
    let overrides: Vec<(String, u64)> = crate::gateways::overrides::counts(&state.store)?
        .into_iter()
        .map(|(city, counts)| (city, counts.total))
        .collect();
    text.push_str(&crate::metrics::scrape::override_counters(&overrides));
    text.push_str(&crate::metrics::scrape::listener_gauges(
        state.capacity.connections(),
        state.capacity.long_polls(),
    ));
    Ok(text)
}
