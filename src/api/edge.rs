//! The edge's HTTP API: the primary's read routes, answered from Redis; 421 for everything
//! that would write.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::http::listener::Connection;
use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::{Filter, Rejection};

use crate::api::distribution::{pubkey_response, respond};
use crate::api::gateways::{json_request, recommend_in, JsonQuery};
use crate::distribution::config::matches;
use crate::error::Error;
use crate::http::client_ip::client_ip;
use crate::http::rate_limit::Endpoint;
use crate::http::{json, recover, reject, ErrorBody};
use crate::mirror::edge::reader::{self, StoredConfig};
use crate::mirror::edge::EdgeState;

type Route = warp::reply::Response;

/// How often a long-polling client's config is looked at again.
const POLL: Duration = Duration::from_millis(500);

#[derive(Deserialize)]
struct ConfigQuery {
    wait: Option<u64>,
}

fn with_edge(
    state: &Arc<EdgeState>,
) -> impl Filter<Extract = (Arc<EdgeState>,), Error = std::convert::Infallible> + Clone {
    let state = state.clone();
    warp::any().map(move || state.clone())
}

fn unavailable(error: impl std::fmt::Display) -> Rejection {
    reject(Error::Unavailable(format!("redis: {error}")))
}

fn not_loaded() -> Rejection {
    reject(Error::Unavailable(
        "nothing mirrored yet: the primary has not written this Redis".into(),
    ))
}

pub fn routes(
    state: Arc<EdgeState>,
) -> impl Filter<Extract = (Route,), Error = std::convert::Infallible> + Clone {
    let trusted = Arc::new(state.settings.trusted_proxies.clone());
    let config = warp::path!("api" / "v1" / "config")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::query::<ConfigQuery>())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(warp::header::optional::<String>("accept-encoding"))
        .and(warp::ext::optional::<Connection>())
        .and(with_edge(&state))
        .and_then(get_config);
    let pubkey = warp::path!("api" / "v1" / "config" / "pubkey")
        .and(warp::get())
        .and(with_edge(&state))
        .and_then(|state: Arc<EdgeState>| async move {
            let loaded = state.loaded().ok_or_else(not_loaded)?;
            Ok::<_, Rejection>(pubkey_response(&loaded.settings.public_key))
        });
    let gateways = json_request()
        .and(client_ip(trusted))
        .and(with_edge(&state))
        .and_then(
            |query: JsonQuery, client: Option<IpAddr>, state: Arc<EdgeState>| async move {
                state
                    .limits
                    .check(Endpoint::Json, client, None)
                    .map_err(|wait| reject(Error::TooManyRequests(wait)))?;
                let loaded = state.loaded().ok_or_else(not_loaded)?;
                // A manual city choice is added to the counts the primary folds in.
                let mut chosen = None;
                let answer =
                    recommend_in(&loaded.set, &loaded.gateways.geo, &query, client, |city| {
                        chosen = Some(city.to_string());
                        Ok(())
                    });
                if let Some(city) = chosen {
                    state.count_override(&city, crate::clock::now_ms()).await;
                }
                answer
            },
        );
    // With the long-polls waiting on this edge (load balancers and tests read it).
    // 503 while the edge cannot serve from Redis, so a load balancer sends clients elsewhere.
    let health = warp::path!("healthz")
        .and(warp::get())
        .and(warp::ext::optional::<Connection>())
        .and(with_edge(&state))
        .map(|connection: Option<Connection>, state: Arc<EdgeState>| {
            let long_polls = connection.map(|c| c.capacity().long_polls());
            let reason = state.unready();
            let status = if reason.is_some() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            json(
                status,
                &EdgeHealth {
                    status: if reason.is_some() {
                        "unavailable"
                    } else {
                        "ok"
                    },
                    reason,
                    long_polls,
                },
            )
        });
    // Checked first: a write never reaches the read routes. Reads fall through (not_found is
    // the weakest rejection, so a read route's own 401 or 400 wins over it).
    let writes = warp::method()
        .and(warp::path::full())
        .and(with_edge(&state))
        .and_then(
            |method: Method, path: warp::path::FullPath, state: Arc<EdgeState>| async move {
                // `POST /json` is a read (bitmask-vpn's way of asking for gateways).
                let read = method == Method::GET || method == Method::HEAD;
                if read || (method == Method::POST && path.as_str() == "/json") {
                    Err(warp::reject::not_found())
                } else {
                    Ok(read_only(&state))
                }
            },
        );
    writes
        .or(config)
        .unify()
        .or(pubkey)
        .unify()
        .or(gateways)
        .unify()
        .or(health)
        .unify()
        .recover(recover)
        .unify()
}

#[derive(Serialize)]
struct EdgeHealth {
    status: &'static str,
    /// Why the edge cannot serve from Redis (with status `unavailable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Absent when the listener does not count them.
    long_polls: Option<usize>,
}

/// The error shape, and the primary that takes writes.
#[derive(Serialize)]
struct ReadOnly<'a> {
    #[serde(flatten)]
    error: ErrorBody<'a>,
    primary: Option<&'a str>,
}

/// 421 for a write, naming the primary when known.
fn read_only(state: &EdgeState) -> Route {
    let message = match &state.settings.primary {
        Some(primary) => {
            format!("this is a read-only edge; send writes to the primary at {primary}")
        }
        None => "this is a read-only edge; send writes to the primary".to_string(),
    };
    json(
        StatusCode::MISDIRECTED_REQUEST,
        &ReadOnly {
            error: ErrorBody::new("read_only_edge", &message),
            primary: state.settings.primary.as_deref(),
        },
    )
}

fn bearer(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn current(state: &EdgeState, user: u64) -> Result<StoredConfig, Rejection> {
    let mut conn = state.conn.clone();
    reader::config(&mut conn, &state.keys, user)
        .await
        .map_err(unavailable)?
        .ok_or_else(not_loaded)
}

async fn get_config(
    authorization: Option<String>,
    query: ConfigQuery,
    if_none_match: Option<String>,
    accept_encoding: Option<String>,
    connection: Option<Connection>,
    state: Arc<EdgeState>,
) -> Result<Route, Rejection> {
    let token = bearer(authorization.as_deref()).ok_or_else(|| reject(Error::Unauthorized))?;
    let mut conn = state.conn.clone();
    let user = match reader::user_of(&mut conn, &state.keys, token)
        .await
        .map_err(unavailable)?
    {
        Some(user) => user,
        // An unknown token is refused only by a Redis that holds a complete mirror: an
        // emptied one, or one being copied, would turn valid users away.
        None => match reader::seq(&mut conn, &state.keys)
            .await
            .map_err(unavailable)?
        {
            Some(_) => return Err(reject(Error::Unauthorized)),
            None => return Err(not_loaded()),
        },
    };
    let mut config = current(&state, user).await?;
    let wait = Duration::from_secs(
        query
            .wait
            .unwrap_or(0)
            .min(state.settings.config_wait_max_secs),
    );
    if !wait.is_zero() {
        // Waiting moves the connection under the long-poll caps (503 when they are full).
        let _waiting = connection
            .map(|c| c.wait_long())
            .transpose()
            .map_err(reject)?;
        // Hold until the config differs from what the client has (or had when it asked).
        let known = if_none_match.clone().unwrap_or_else(|| config.etag.clone());
        let deadline = tokio::time::Instant::now() + wait;
        while matches(&known, &config.etag) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + POLL)).await;
            config = current(&state, user).await?;
        }
    }
    respond(
        &config.body,
        &config.etag,
        || config.signature.as_str(),
        if_none_match.as_deref(),
        accept_encoding.as_deref(),
    )
}
