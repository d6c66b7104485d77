//! `GET /api/v1/config`: the user's config with ETag / If-None-Match (304), and `?wait=SECS`
//! to hold the request until the config changes (long-poll).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use warp::http::{header, Response, StatusCode};
use warp::{Filter, Rejection};

use super::config::{build, matches, render};
use crate::app::AppState;
use crate::clock::now_ms;
use crate::fleet::model::User;
use crate::http::{reject, user, with_state};

#[derive(Deserialize)]
struct ConfigQuery {
    wait: Option<u64>,
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "config")
        .and(warp::get())
        .and(user(&state))
        .and(warp::query::<ConfigQuery>())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(with_state(&state))
        .and_then(get_config)
}

async fn get_config(
    user: User,
    query: ConfigQuery,
    if_none_match: Option<String>,
    state: Arc<AppState>,
) -> Result<warp::reply::Response, Rejection> {
    let poll = state.config.config_poll_secs;
    let (mut body, mut etag) =
        render(&build(&state.registry, &user, poll, now_ms()).map_err(reject)?);
    let wait = Duration::from_secs(
        query
            .wait
            .unwrap_or(0)
            .min(state.config.config_wait_max_secs),
    );
    if !wait.is_zero() {
        // Hold until the config differs from what the client has (or had when it asked).
        let known = if_none_match.clone().unwrap_or_else(|| etag.clone());
        let deadline = tokio::time::Instant::now() + wait;
        let bell = state.fleet.notifier.bell(user.id);
        while matches(&known, &etag) {
            let notified = bell.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-read after arming the bell, so a change in between is not missed.
            let current = state
                .fleet
                .user(user.id)
                .map_err(reject)?
                .unwrap_or_else(|| user.clone());
            (body, etag) =
                render(&build(&state.registry, &current, poll, now_ms()).map_err(reject)?);
            if !matches(&known, &etag) {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        state.fleet.notifier.release(user.id, bell);
    }
    let unchanged = if_none_match
        .as_deref()
        .is_some_and(|inm| matches(inm, &etag));
    let builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, "private, no-cache");
    let response = if unchanged {
        builder.status(StatusCode::NOT_MODIFIED).body(Vec::new())
    } else {
        builder
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
    };
    response
        .map(|r| r.map(warp::hyper::Body::from))
        .map_err(|e| reject(crate::error::Error::internal(e)))
}
