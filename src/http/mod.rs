//! Shared HTTP pieces: JSON replies, the error shape, bearer-token filters, body parsing.

pub mod auth;
pub mod body;
pub mod client_ip;
pub mod error;

use std::convert::Infallible;
use std::sync::Arc;

use serde::Serialize;
use warp::http::StatusCode;
use warp::{Filter, Reply};

pub use auth::{admin, registry, user, TokenHash};
pub use error::{recover, reject};

use crate::app::AppState;

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// Hands the shared state to a handler.
pub fn with_state(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone {
    let state = state.clone();
    warp::any().map(move || state.clone())
}
