//! Who may call the admin API: the admin bearer token (scripts, CI, the CLI) or a panel
//! session cookie. A session's mutating calls must also carry its CSRF token in
//! `X-CSRF-Token`: the cookie alone is what a forged cross-site request would have.

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::{Filter, Rejection};

use crate::admin::accounts::AdminAccount;
use crate::admin::sessions::{self, Session, COOKIE};
use crate::api::AppState;
use crate::error::Error;
use crate::http::reject;

pub const CSRF_HEADER: &str = "x-csrf-token";
pub use crate::admin::audit::{CLI_ACTOR, TOKEN_ACTOR};

pub fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn bearer_value(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Who calls an account route.
pub enum Actor {
    Token,
    /// `proxyfleet admin ...` on the server's box, with the control cookie.
    Cli,
    /// A panel session (the username).
    Session(String),
}

/// The admin behind a request, if any (does not check CSRF).
pub fn actor(
    state: &AppState,
    authorization: Option<&str>,
    cookie: Option<&str>,
) -> Option<String> {
    if bearer_value(authorization).is_some_and(|token| state.tokens.admin.matches(token)) {
        return Some(TOKEN_ACTOR.to_string());
    }
    if bearer_value(authorization).is_some_and(|token| state.tokens.control.matches(token)) {
        return Some(CLI_ACTOR.to_string());
    }
    let (session, _) = sessions::find(&state.store, cookie?, state.clock.now_ms()).ok()??;
    Some(session.username)
}

/// A panel session's own calls (password, second factor): the live session from the cookie,
/// and, on mutating calls, its CSRF token. Put it before the body is read, so an anonymous
/// caller learns nothing about the body's shape.
pub fn signed_in(state: &Arc<AppState>) -> BoxedFilter<((Session, AdminAccount),)> {
    let state = state.clone();
    warp::method()
        .and(warp::cookie::optional::<String>(COOKIE))
        .and(warp::header::optional::<String>(CSRF_HEADER))
        .and_then(
            move |method: Method, cookie: Option<String>, csrf: Option<String>| {
                let state = state.clone();
                async move {
                    let (session, account) = session(&state, cookie.as_deref())?;
                    if is_mutating(&method) {
                        check_csrf(&session, csrf.as_deref())?;
                    }
                    Ok::<_, Rejection>((session, account))
                }
            },
        )
        .boxed()
}

/// The session a cookie stands for; 401 when there is none or it ended.
pub fn session(
    state: &AppState,
    cookie: Option<&str>,
) -> Result<(Session, AdminAccount), Rejection> {
    let cookie = cookie.ok_or_else(|| reject(Error::Unauthorized))?;
    sessions::find(&state.store, cookie, state.clock.now_ms())
        .map_err(reject)?
        .ok_or_else(|| reject(Error::Unauthorized))
}

/// A mutating call of a session must echo its CSRF token.
pub fn check_csrf(session: &Session, presented: Option<&str>) -> Result<(), Rejection> {
    match presented {
        Some(token) if session.csrf_matches(token) => Ok(()),
        _ => Err(reject(Error::forbidden(
            "csrf_failed",
            "missing or wrong X-CSRF-Token for this session",
        ))),
    }
}

/// Like `admin`, and also the control cookie; tells which of the three called.
pub fn admin_actor(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Actor,), Error = Rejection> + Clone {
    authorized(state, true)
}

/// Passes for the admin token, or for a live session (with its CSRF token when mutating).
pub fn admin(state: &Arc<AppState>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    authorized(state, false).map(|_: Actor| ()).untuple_one()
}

/// The admin token, the control cookie (only with `accept_control`), or a live session with
/// its CSRF token on mutating calls; 401 or 403 otherwise.
fn authorized(state: &Arc<AppState>, accept_control: bool) -> BoxedFilter<(Actor,)> {
    let state = state.clone();
    warp::method()
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::cookie::optional::<String>(COOKIE))
        .and(warp::header::optional::<String>(CSRF_HEADER))
        .and_then(
            move |method: Method,
                  authorization: Option<String>,
                  cookie: Option<String>,
                  csrf: Option<String>| {
                let state = state.clone();
                async move {
                    let token = bearer_value(authorization.as_deref());
                    if token.is_some_and(|t| state.tokens.admin.matches(t)) {
                        return Ok(Actor::Token);
                    }
                    if accept_control && token.is_some_and(|t| state.tokens.control.matches(t)) {
                        return Ok(Actor::Cli);
                    }
                    let (session, _) = session(&state, cookie.as_deref())?;
                    if is_mutating(&method) {
                        check_csrf(&session, csrf.as_deref())?;
                    }
                    Ok::<_, Rejection>(Actor::Session(session.username))
                }
            },
        )
        .boxed()
}
