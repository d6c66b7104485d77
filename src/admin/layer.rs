//! Wraps the whole API: after a mutating request to an admin path is answered, records who
//! did it and how it ended in the audit trail. Requests that were not an admin's (no valid
//! token or session) are not recorded.

use std::net::IpAddr;
use std::sync::Arc;

use warp::http::Method;
use warp::path::FullPath;
use warp::{Filter, Rejection};

use super::audit;
use super::guard::{actor, is_mutating};
use super::sessions::COOKIE;
use crate::app::AppState;
use crate::clock::now_ms;
use crate::http::client_ip::client_ip;

type Route = warp::reply::Response;

/// Query parameters whose values are secrets (none of the admin API's today; kept safe for
/// the routes of tomorrow).
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

pub fn audited<F>(
    state: Arc<AppState>,
    api: F,
) -> impl Filter<Extract = (Route,), Error = Rejection> + Clone
where
    F: Filter<Extract = (Route,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        // Read leniently: a header that is not UTF-8 is the routes' to refuse (as JSON), not
        // this layer's (warp's own rejection would answer in plain text).
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
                )
            }),
        )
        .and(client_ip(Arc::new(state.config.trusted_proxies.clone())))
        .and(api)
        .and_then(
            move |method: Method,
                  path: FullPath,
                  query: String,
                  (authorization, cookie): (Option<String>, Option<String>),
                  ip: Option<IpAddr>,
                  response: Route| {
                let state = state.clone();
                async move {
                    // Logins, logouts and password changes record themselves, with the account they concern.
                    let own = path.as_str().starts_with("/admin/api/log")
                        || path.as_str() == "/admin/api/password";
                    if is_mutating(&method) && is_admin_path(path.as_str()) && !own {
                        if let Some(who) =
                            actor(&state, authorization.as_deref(), cookie.as_deref())
                        {
                            let what = format!("{method} {}", path.as_str());
                            let event = audit::Event {
                                actor: &who,
                                action: &what,
                                status: response.status().as_u16(),
                                client_ip: ip,
                                params: (!query.is_empty()).then(|| mask_query(&query)),
                            };
                            if let Err(error) = audit::record(&state.store, event, now_ms()) {
                                tracing::error!(%error, "audit trail: could not record");
                            }
                            let _ = state.store.durable().await;
                        }
                    }
                    Ok::<_, Rejection>(response)
                }
            },
        )
}
