//! The filters every route table shares: the state, the caller (user or admin), rate limits.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::{Filter, Rejection};

use super::AppState;
use crate::error::Error;
use crate::fleet::model::User;
use crate::http::auth::bearer_lookup;
use crate::http::client_ip::client_ip;
use crate::http::rate_limit::Endpoint;
use crate::http::reject;

/// Hands the shared state to a handler.
pub fn with_state(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone {
    let state = state.clone();
    warp::any().map(move || state.clone())
}

/// The active user whose token the Authorization header carries; else 401.
pub fn user(state: &Arc<AppState>) -> impl Filter<Extract = (User,), Error = Rejection> + Clone {
    let state = state.clone();
    bearer_lookup(move |token| state.fleet.user_by_token(token))
}

/// The user whose token may read its config (active, or pending: an invitee whose client
/// holds the invitation's bundle); else 401. Only the config routes take it.
pub fn config_reader(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (User,), Error = Rejection> + Clone {
    let state = state.clone();
    bearer_lookup(move |token| state.fleet.config_reader_by_token(token))
}

/// The admin token, or an admin panel session (with its CSRF token on mutating calls).
pub fn admin(state: &Arc<AppState>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    super::admin::guard::admin(state)
}

/// Rejects with 429 once the client address or its bearer token is over the endpoint's limit.
/// Put it right after the path match: it counts only this endpoint's requests, and it runs
/// before authentication, so it slows down token guessing too.
pub fn limited(state: &Arc<AppState>, endpoint: Endpoint) -> BoxedFilter<()> {
    let state = state.clone();
    client_ip(Arc::new(state.config.trusted_proxies.clone()))
        .and(warp::header::optional::<String>("authorization"))
        .and_then(move |ip: Option<IpAddr>, authorization: Option<String>| {
            let state = state.clone();
            async move {
                state
                    .limits
                    .check(endpoint, ip, authorization.as_deref())
                    .map_err(|wait| reject(Error::TooManyRequests(wait)))
            }
        })
        .untuple_one()
        .boxed()
}

/// As [`limited`], for endpoints whose credential is a code in the path.
pub fn check_code(
    state: &AppState,
    endpoint: Endpoint,
    ip: Option<IpAddr>,
    code: &str,
) -> Result<(), Rejection> {
    state
        .limits
        .check(endpoint, ip, Some(code))
        .map_err(|wait| reject(Error::TooManyRequests(wait)))
}
