//! Wraps the whole API: after a mutating request to an admin path is answered, records who
//! did it and how it ended in the audit trail. Requests that were not an admin's (no valid
//! token or session) are not recorded.

use std::net::IpAddr;
use std::sync::Arc;

use warp::http::Method;
use warp::path::FullPath;
use warp::{Filter, Rejection};

use super::guard::{actor, is_mutating};
use crate::admin::audit;
use crate::admin::sessions::COOKIE;
use crate::api::AppState;
use crate::http::client_ip::{peer, resolve};
use crate::http::listener::KeptBody;

type Route = warp::reply::Response;

/// Parameter names (in a query or a body, at any depth) whose values are secrets.
const SECRET_PARAMS: [&str; 5] = ["token", "password", "secret", "code", "key"];

/// The query as the trail shows it, values of secret-looking parameters masked.
fn mask_query(query: &str) -> String {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let masked: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| {
            let secret = SECRET_PARAMS.iter().any(|s| k.to_lowercase().contains(s));
            (k, if secret { "***".to_string() } else { v })
        })
        .collect();
    serde_urlencoded::to_string(masked).unwrap_or_default()
}

/// A JSON value as the trail shows it: values under secret-looking keys masked, at any depth.
fn mask_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                let key = key.to_lowercase();
                if SECRET_PARAMS.iter().any(|s| key.contains(s)) {
                    *value = serde_json::Value::String("***".to_string());
                } else {
                    mask_json(value);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_json),
        _ => {}
    }
}

/// A request body as the trail shows it: compact JSON or a form, masked; anything else by size.
fn mask_body(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) {
        mask_json(&mut value);
        return Some(value.to_string());
    }
    match std::str::from_utf8(body) {
        Ok(text) if serde_urlencoded::from_str::<Vec<(String, String)>>(text).is_ok() => {
            Some(mask_query(text))
        }
        _ => Some(format!("({} bytes)", body.len())),
    }
}

/// What the trail records of a request's parameters: the query, then the body.
pub fn params(query: &str, body: Option<&[u8]>) -> Option<String> {
    let parts: Vec<String> = [
        (!query.is_empty()).then(|| mask_query(query)),
        body.and_then(mask_body),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Requests the trail records: mutations of admin paths, except those that record
/// themselves with the account they concern (logins, logouts, password changes and the
/// first account's setup, whose bodies are passwords).
pub fn is_audited(method: &Method, path: &str) -> bool {
    let own = path.starts_with("/admin/api/log")
        || path == "/admin/api/password"
        || path == "/admin/api/setup";
    is_mutating(method) && is_admin_path(path) && !own
}

/// The panel's session cookie in a `Cookie` header.
fn cookie_value(header: Option<String>) -> Option<String> {
    header?.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE).then(|| value.to_string())
    })
}

pub fn is_admin_path(path: &str) -> bool {
    path.starts_with("/api/v1/admin/") || path.starts_with("/admin/api/")
}

/// Wraps `api` so that audited requests (`is_audited`) are recorded once answered. Only those
/// pay for reading the headers, the query and the client address: every other request (the
/// heartbeats and config reads) goes straight to `api`.
pub fn audited<F>(
    state: Arc<AppState>,
    api: F,
) -> impl Filter<Extract = (Route,), Error = Rejection> + Clone
where
    F: Filter<Extract = (Route,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    // Read leniently: a header that is not UTF-8 is the routes' to refuse (as JSON). Nothing
    // in the recording branch may reject once the request is known to be audited: `or` would
    // then run it through `api` unrecorded.
    let trusted = Arc::new(state.config.trusted_proxies.clone());
    let who = peer()
        .and(
            warp::header::headers_cloned().map(|headers: warp::http::HeaderMap| {
                let text = |name| {
                    headers
                        .get(name)
                        .and_then(|v: &warp::http::HeaderValue| v.to_str().ok())
                        .map(str::to_string)
                };
                (
                    text(warp::http::header::AUTHORIZATION),
                    cookie_value(text(warp::http::header::COOKIE)),
                    text(warp::http::header::HeaderName::from_static(
                        "x-forwarded-for",
                    )),
                )
            }),
        )
        .map(
            move |peer: Option<std::net::SocketAddr>,
                  (authorization, cookie, forwarded): (
                Option<String>,
                Option<String>,
                Option<String>,
            )| {
                let ip = resolve(peer.map(|p| p.ip()), forwarded.as_deref(), &trusted);
                ((authorization, cookie), ip)
            },
        )
        .untuple_one();
    let recorded = warp::method()
        .and(warp::path::full())
        .and_then(|method: Method, path: FullPath| async move {
            if is_audited(&method, path.as_str()) {
                Ok((method, path))
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(who)
        .and(warp::ext::optional::<KeptBody>())
        .and(api.clone())
        .and_then(
            move |method: Method,
                  path: FullPath,
                  query: String,
                  (authorization, cookie): (Option<String>, Option<String>),
                  ip: Option<IpAddr>,
                  body: Option<KeptBody>,
                  response: Route| {
                let state = state.clone();
                async move {
                    if let Some(who) = actor(&state, authorization.as_deref(), cookie.as_deref()) {
                        let what = format!("{method} {}", path.as_str());
                        let event = audit::Event {
                            actor: &who,
                            action: &what,
                            status: response.status().as_u16(),
                            client_ip: ip,
                            params: params(&query, body.as_ref().map(|b| &b.0[..])),
                        };
                        let recorded = state.admin.trail.record(event, state.clock.now_ms()).await;
                        if let Err(error) = recorded {
                            tracing::error!(%error, "audit trail: could not record");
                        }
                    }
                    Ok::<_, Rejection>(response)
                }
            },
        );
    // `api` answers every request (it recovers its own rejections), so once an audited request
    // reached it, the first branch cannot fall through and run it a second time. Boxed: inline,
    // the recording branch's future (which holds `api`'s) made the state `or` keeps for every
    // request kilobytes large, moved whole when a request passed on to `api` (`perf`: memmove).
    recorded.boxed().or(api).unify()
}
