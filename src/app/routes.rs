//! The root of the HTTP API: every capability's `routes()` merged, then errors made JSON.

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::Filter;

use super::AppState;
use crate::http::{json, recover};
use crate::{admin, billing, distribution, fleet, gateways, mirror, queue, registry};

pub fn routes(state: Arc<AppState>) -> BoxedFilter<(warp::reply::Response,)> {
    let health = warp::path!("healthz")
        .and(warp::get())
        .map(|| json(StatusCode::OK, &serde_json::json!({ "status": "ok" })));
    // The hot paths (config reads, heartbeats) come first: warp tries routes in order.
    let api = distribution::routes::routes(state.clone())
        .boxed()
        .or(registry::routes::routes(state.clone()).boxed())
        .unify()
        .or(gateways::routes::routes(state.clone()).boxed())
        .unify()
        .or(health)
        .unify()
        .or(queue::routes::routes(state.clone()).boxed())
        .unify()
        .or(billing::routes::routes(state.clone()).boxed())
        .unify()
        .or(mirror::routes::routes(state.clone()).boxed())
        .unify()
        .or(fleet::routes::routes(state.clone()).boxed())
        .unify()
        .or(admin::routes::routes(state.clone()).boxed())
        .unify()
        .recover(recover)
        .unify()
        .boxed();
    // Every mutating admin call is recorded in the audit trail once answered.
    admin::layer::audited(state, api).boxed()
}
