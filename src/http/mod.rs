//! Shared HTTP pieces: JSON replies, the error shape, bearer-token filters, body parsing.

pub mod auth;
pub mod body;
pub mod client_ip;
pub mod error;
pub mod listener;
pub mod rate_limit;

use serde::Serialize;
use warp::http::StatusCode;
use warp::Reply;

pub use auth::TokenHash;
pub use error::{recover, reject, ErrorBody};

/// The body of an answer that is only a word or sentence: `{"status": "..."}`.
#[derive(Serialize)]
pub struct StatusBody<'a> {
    pub status: &'a str,
}

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// A 200 JSON reply with a strong ETag of its bytes, or a bare 304 when `if_none_match` names
/// it: the admin panel polls its live pages every few seconds, and most polls find nothing new.
pub fn json_with_etag<T: Serialize>(
    body: &T,
    if_none_match: Option<&str>,
) -> warp::reply::Response {
    use sha2::{Digest, Sha256};
    let Ok(bytes) = serde_json::to_vec(body) else {
        return json(StatusCode::OK, body); // not reachable for our types; no ETag then
    };
    let digest = Sha256::digest(&bytes);
    let etag = format!("\"{}\"", hex::encode(&digest[..12]));
    let unchanged = if_none_match.is_some_and(|header| {
        header
            .split(',')
            .any(|tag| tag.trim().trim_start_matches("W/") == etag)
    });
    let builder = warp::http::Response::builder()
        .header(warp::http::header::ETAG, &etag)
        .header(warp::http::header::CACHE_CONTROL, "private, no-cache");
    let response = if unchanged {
        builder
            .status(StatusCode::NOT_MODIFIED)
            .body(warp::hyper::Body::empty())
    } else {
        builder
            .status(StatusCode::OK)
            .header(warp::http::header::CONTENT_TYPE, "application/json")
            .body(warp::hyper::Body::from(bytes))
    };
    response.unwrap_or_else(|_| warp::http::Response::new(warp::hyper::Body::empty()))
}
