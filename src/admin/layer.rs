//! Wraps the whole API: after a mutating request to an admin path is answered, records who
//! did it and how it ended in the audit trail. Requests that were not an admin's (no valid
//! token or session) are not recorded.

use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::Method;
use warp::path::FullPath;
use warp::{Filter, Rejection};

use super::audit;
use super::guard::{actor, is_mutating};
use super::sessions::COOKIE;
use crate::app::AppState;
use crate::clock::now_ms;

type Route = warp::reply::Response;

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
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::cookie::optional::<String>(COOKIE))
        .and(warp::addr::remote())
        .and(api)
        .and_then(
            move |method: Method,
                  path: FullPath,
                  query: String,
                  authorization: Option<String>,
                  cookie: Option<String>,
                  peer: Option<SocketAddr>,
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
                            let what = if query.is_empty() {
                                format!("{method} {}", path.as_str())
                            } else {
                                format!("{method} {}?{query}", path.as_str())
                            };
                            let ip = peer.map(|p| p.ip().to_string());
                            let status = response.status().as_u16();
                            if let Err(error) =
                                audit::record(&state.store, &who, &what, status, ip, now_ms())
                            {
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
