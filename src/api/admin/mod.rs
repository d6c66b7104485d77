//! HTTP: the panel's page and files under `/admin/`, and its own API under `/admin/api/`
//! (login, logout, session, password, accounts, audit trail). Everything else the panel shows
//! comes from the admin API (`/api/v1/admin/...`), which accepts its session.

pub mod guard;
pub mod layer;
mod second_factor;
mod ui;

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::http::{header, StatusCode};
use warp::path::Tail;
use warp::{Filter, Rejection, Reply};

use crate::admin::accounts::AdminAccount;
use crate::admin::audit::LoginFailure;
use crate::admin::sessions::{self, Session, COOKIE};
use crate::admin::signin::{self, SignIn};
use crate::admin::{accounts, audit};
use crate::api::filters::{admin, with_state};
use crate::api::AppState;
use crate::error::Error;
use crate::http::body::json as json_body;
use crate::http::client_ip::client_ip;
use crate::http::{json, json_with_etag, reject, StatusBody};
use guard::{check_csrf, CSRF_HEADER};

type Route = warp::reply::Response;

#[derive(Serialize)]
struct SignedIn<'a> {
    username: &'a str,
    csrf: &'a str,
}

#[derive(Serialize)]
struct CurrentSession<'a> {
    username: &'a str,
    csrf: &'a str,
    expires_ms: u64,
    totp_enabled: bool,
}

#[derive(Serialize)]
struct FleetMap {
    places: Vec<crate::admin::map::Place>,
}

/// The running settings, secrets masked.
#[derive(Serialize)]
struct Settings {
    settings: serde_json::Value,
}

#[derive(Serialize)]
struct AuditPage {
    entries: Vec<audit::AuditView>,
    next_before: Option<u64>,
}

#[derive(Serialize)]
struct Accounts {
    accounts: Vec<accounts::AccountView>,
}

/// An account action done; `password` only when it issued one (a reset), shown this once.
#[derive(Serialize)]
struct AccountActed {
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

/// Logins and password changes are tiny; anything bigger is not one.
const SMALL_BODY: u64 = 4 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
    /// The authenticator code, for accounts with the second factor on.
    totp: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current: String,
    new: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FirstAccount {
    /// The token of the setup link the server printed at its start.
    token: String,
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct SeriesQuery {
    days: Option<u64>,
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
    before: Option<u64>,
    q: Option<String>,
}

fn cookie_header(
    state: &AppState,
    value: &str,
    max_age_secs: u64,
    forwarded_https: bool,
) -> String {
    let secure = if state.config.admin_cookie_secure || forwarded_https {
        "; Secure"
    } else {
        ""
    };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
}

fn with_cookie(mut response: Route, cookie: String) -> Route {
    if let Ok(value) = header::HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn note(state: &AppState, actor: &str, action: &str, status: u16, ip: Option<IpAddr>) {
    let event = audit::Event {
        actor,
        action,
        status,
        client_ip: ip,
        params: None,
    };
    if let Err(error) = audit::record(&state.store, event, state.clock.now_ms()) {
        tracing::error!(%error, "audit trail: could not record");
    }
}

/// A failed or throttled login: counted into its (address, minute) audit entry.
fn count_failure(state: &AppState, username: &str, ip: Option<IpAddr>, why: LoginFailure) {
    let counted = state
        .admin
        .failures
        .count(&state.store, username, ip, why, state.clock.now_ms());
    if let Err(error) = counted {
        tracing::error!(%error, "audit trail: could not count a failed login");
    }
}

async fn login(
    body: Login,
    ip: Option<IpAddr>,
    forwarded_proto: Option<String>,
    over_tls: bool,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    // Whatever was typed, only a short printable name reaches the throttle, the audit and logs.
    let username = accounts::printable_name(&body.username);
    let started = state.clock.now_ms();
    if let Err(wait) = state.admin.throttle.check(ip, &username, started) {
        count_failure(&state, &username, ip, LoginFailure::Throttled);
        return Err(reject(Error::TooManyRequests(wait)));
    }
    // argon2 takes tens of milliseconds: off the async workers.
    let verdict = {
        let store = state.store.clone();
        let username = username.clone();
        tokio::task::spawn_blocking(move || {
            signin::check(
                &store,
                &username,
                &body.password,
                body.totp.as_deref(),
                started,
            )
        })
        .await
        .map_err(|e| reject(Error::internal(e)))?
        .map_err(reject)?
    };
    let account = match verdict {
        SignIn::Accepted(account) => account,
        SignIn::SecondFactorRequired => {
            // The password was right: not a failure (the step with the code may be).
            return Err(reject(Error::forbidden(
                "totp_required",
                "enter the code from your authenticator app (or a recovery code)",
            )));
        }
        SignIn::Refused => {
            state
                .admin
                .throttle
                .failed(ip, &username, state.clock.now_ms());
            count_failure(&state, &username, ip, LoginFailure::Refused);
            return Err(reject(Error::Unauthorized));
        }
    };
    state.admin.throttle.succeeded(ip, &username);
    let https = over_tls || forwarded_proto.is_some_and(|p| p.eq_ignore_ascii_case("https"));
    start_session(&state, &account, "login", ip, https).await
}

/// Starts a session for `account` (recorded as `action`) and answers with its cookie and
/// CSRF token.
async fn start_session(
    state: &AppState,
    account: &AdminAccount,
    action: &str,
    ip: Option<IpAddr>,
    https: bool,
) -> Result<Route, Rejection> {
    let ttl_ms = state.config.admin_session_hours * 3_600_000;
    let (cookie, session) =
        sessions::start(&state.store, account, state.clock.now_ms(), ttl_ms).map_err(reject)?;
    note(state, &account.username, action, 200, ip);
    state.store.durable().await.map_err(reject)?;
    let response = json(
        StatusCode::OK,
        &SignedIn {
            username: &account.username,
            csrf: &session.csrf,
        },
    );
    Ok(with_cookie(
        response,
        cookie_header(state, &cookie, ttl_ms / 1000, https),
    ))
}

/// `POST /admin/api/setup`: the first account, with the token of the link printed at start;
/// signs it in. Throttled as logins are: a guessed token is a guessed password.
async fn setup(
    body: FirstAccount,
    ip: Option<IpAddr>,
    forwarded_proto: Option<String>,
    over_tls: bool,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    const WHO: &str = "(setup link)";
    let started = state.clock.now_ms();
    if let Err(wait) = state.admin.throttle.check(ip, WHO, started) {
        count_failure(&state, WHO, ip, LoginFailure::Throttled);
        return Err(reject(Error::TooManyRequests(wait)));
    }
    // argon2 hashes the password: off the async workers.
    let created = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            state.admin.setup.create_first_account(
                &state.store,
                &body.token,
                &body.username,
                &body.password,
                started,
            )
        })
        .await
        .map_err(|e| reject(Error::internal(e)))?
    };
    let account = match created {
        Ok(account) => account,
        Err(error) => {
            if matches!(error, Error::Forbidden { .. }) {
                state.admin.throttle.failed(ip, WHO, state.clock.now_ms());
                count_failure(&state, WHO, ip, LoginFailure::Refused);
            }
            return Err(reject(error));
        }
    };
    tracing::info!(username = %account.username, "first admin account made with the setup link");
    let https = over_tls || forwarded_proto.is_some_and(|p| p.eq_ignore_ascii_case("https"));
    start_session(&state, &account, "setup", ip, https).await
}

/// `over_tls`: these routes answer on the HTTPS listener (the session cookie is then `Secure`).
pub fn routes(
    state: Arc<AppState>,
    over_tls: bool,
) -> (
    crate::api::Table,
    impl Filter<Extract = (Route,), Error = Rejection> + Clone,
) {
    let trusted = Arc::new(state.config.trusted_proxies.clone());
    let page = warp::path("admin")
        .and(warp::get())
        .and(warp::path::tail())
        .and_then(|tail: Tail| async move {
            ui::file(tail.as_str())
                .map(|r| r.into_response())
                .ok_or_else(warp::reject::not_found)
        });
    // `/admin` without the slash: the page's relative links need it.
    let bare = warp::path!("admin")
        .and(warp::get())
        .and(warp::path::full())
        .and_then(|full: warp::path::FullPath| async move {
            // `path!` also matches `/admin/`, which is the page itself.
            if full.as_str() == "/admin" {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .map(|| {
            warp::http::Response::builder()
                .status(StatusCode::MOVED_PERMANENTLY)
                .header(header::LOCATION, "/admin/")
                .body(warp::hyper::Body::empty())
                .unwrap_or_default()
        });

    let api = warp::path("admin").and(warp::path("api"));
    let login_route = api
        .and(warp::path!("login"))
        .and(warp::post())
        .and(json_body::<Login>(SMALL_BODY))
        .and(client_ip(trusted.clone()))
        .and(warp::header::optional::<String>("x-forwarded-proto"))
        .and(warp::any().map(move || over_tls))
        .and(with_state(&state))
        .and_then(login);

    let setup_route = api
        .and(warp::path!("setup"))
        .and(warp::post())
        .and(json_body::<FirstAccount>(SMALL_BODY))
        .and(client_ip(trusted.clone()))
        .and(warp::header::optional::<String>("x-forwarded-proto"))
        .and(warp::any().map(move || over_tls))
        .and(with_state(&state))
        .and_then(setup);

    let session_cookie = warp::cookie::optional::<String>(COOKIE);
    let logout = api
        .and(warp::path!("logout"))
        .and(warp::post())
        .and(session_cookie)
        .and(warp::header::optional::<String>(CSRF_HEADER))
        .and(client_ip(trusted.clone()))
        .and(with_state(&state))
        .and_then(end_session);

    let current = api
        .and(warp::path!("session"))
        .and(warp::get())
        .and(session_cookie)
        .and(with_state(&state))
        .and_then(current_session);

    let password = api
        .and(warp::path!("password"))
        .and(warp::post())
        .and(guard::signed_in(&state))
        .and(json_body::<PasswordChange>(SMALL_BODY))
        .and(client_ip(trusted))
        .and(with_state(&state))
        .and_then(change_password);

    let list_accounts = api
        .and(warp::path!("accounts"))
        .and(warp::get())
        .and(guard::admin_actor(&state))
        .and(with_state(&state))
        .and_then(accounts_list);
    let create_account = api
        .and(warp::path!("accounts"))
        .and(warp::post())
        .and(admin(&state))
        .and(json_body::<NewAccount>(SMALL_BODY))
        .and(with_state(&state))
        .and_then(account_create);
    // `POST /admin/api/accounts/{name}/{disable|enable|remove|reset-password|reset-totp}`:
    // the panel's Accounts page, and `proxyfleet admin ...` while the server runs.
    let account_action = api
        .and(warp::path!("accounts" / String / String))
        .and(warp::post())
        .and(guard::admin_actor(&state))
        .and(with_state(&state))
        .and_then(account_act);

    let audit_list = api
        .and(warp::path!("audit"))
        .and(warp::get())
        .and(admin(&state))
        .and(warp::query::<AuditQuery>())
        .and(with_state(&state))
        .and_then(audit_trail);

    let summary = warp::path!("api" / "v1" / "admin" / "summary")
        .and(warp::get())
        .and(admin(&state))
        .and(warp::header::optional::<String>("if-none-match"))
        .and(with_state(&state))
        .and_then(dashboard_summary);
    let series = warp::path!("api" / "v1" / "admin" / "summary" / "series")
        .and(warp::get())
        .and(admin(&state))
        .and(warp::query::<SeriesQuery>())
        .and(with_state(&state))
        .and_then(dashboard_series);

    let settings = warp::path!("api" / "v1" / "admin" / "settings")
        .and(warp::get())
        .and(admin(&state))
        .and(with_state(&state))
        .map(masked_settings);

    let map = warp::path!("api" / "v1" / "admin" / "map")
        .and(warp::get())
        .and(admin(&state))
        .and(warp::header::optional::<String>("if-none-match"))
        .and(with_state(&state))
        .and_then(fleet_map);

    let (second_factor_table, second_factor) = second_factor::routes(state.clone());
    let (mut table, panel) = endpoints! {
        POST "/admin/api/login" => login_route,
        POST "/admin/api/setup" => setup_route,
        GET "/api/v1/admin/map" => map,
        GET "/api/v1/admin/settings" => settings,
        GET "/api/v1/admin/summary" => summary,
        GET "/api/v1/admin/summary/series" => series,
        POST "/admin/api/logout" => logout,
        GET "/admin/api/session" => current,
        POST "/admin/api/password" => password,
        GET "/admin/api/accounts" => list_accounts,
        POST "/admin/api/accounts" => create_account,
        POST "/admin/api/accounts/{name}/{action}" => account_action,
        GET "/admin/api/audit" => audit_list,
        GET "/admin" => bare,
        GET "/admin/" | "/admin/{path}" => page,
    };
    table.extend(second_factor_table);
    (table, panel.or(second_factor).unify())
}

async fn fleet_map(seen: Option<String>, state: Arc<AppState>) -> Result<Route, Rejection> {
    let proxies = state.registry.list(state.clock.now_ms()).map_err(reject)?;
    let blocked = state.blocking.blocked();
    let places = crate::admin::map::places(&proxies, state.config.max_clients, |name| {
        blocked.countries_of(name)
    });
    let body = FleetMap { places };
    Ok(json_with_etag(&body, seen.as_deref()))
}

fn masked_settings(state: Arc<AppState>) -> Route {
    json(
        StatusCode::OK,
        &Settings {
            settings: crate::admin::settings::masked(&state.config),
        },
    )
}

async fn dashboard_series(query: SeriesQuery, state: Arc<AppState>) -> Result<Route, Rejection> {
    let days = query.days.unwrap_or(14).clamp(1, 90);
    let series =
        crate::admin::summary::series(&state.summary_sources(), state.clock.now_ms(), days)
            .map_err(reject)?;
    Ok(json(StatusCode::OK, &series))
}

async fn dashboard_summary(seen: Option<String>, state: Arc<AppState>) -> Result<Route, Rejection> {
    let summary = crate::admin::summary::summary(&state.summary_sources(), state.clock.now_ms())
        .map_err(reject)?;
    Ok(json_with_etag(&summary, seen.as_deref()))
}

async fn audit_trail(query: AuditQuery, state: Arc<AppState>) -> Result<Route, Rejection> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    // Failed-login counts are written at most once a second: bring them up to date.
    state
        .admin
        .failures
        .flush(&state.store, state.clock.now_ms())
        .map_err(reject)?;
    let (entries, next) = audit::page(&state.store, query.before, limit, q).map_err(reject)?;
    Ok(json(
        StatusCode::OK,
        &AuditPage {
            entries,
            next_before: next,
        },
    ))
}

async fn account_act(
    name: String,
    action: String,
    by: guard::Actor,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let action = accounts::AccountAction::parse(&action)
        .ok_or_else(|| reject(Error::NotFound(format!("account action `{action}`"))))?;
    // A panel session cannot lock every admin out; the token and the CLI can undo.
    let keep_one = matches!(by, guard::Actor::Session(_));
    let store = state.store.clone();
    let password =
        tokio::task::spawn_blocking(move || accounts::apply(&store, &name, action, keep_one))
            .await
            .map_err(|e| reject(Error::internal(e)))?
            .map_err(reject)?;
    state.store.durable().await.map_err(reject)?;
    Ok(json(
        StatusCode::OK,
        &AccountActed {
            done: true,
            password,
        },
    ))
}

async fn account_create(body: NewAccount, state: Arc<AppState>) -> Result<Route, Rejection> {
    let store = state.store.clone();
    let now = state.clock.now_ms();
    let account = tokio::task::spawn_blocking(move || {
        accounts::create(&store, &body.username, &body.password, now)
    })
    .await
    .map_err(|e| reject(Error::internal(e)))?
    .map_err(reject)?;
    state.store.durable().await.map_err(reject)?;
    Ok(json(
        StatusCode::CREATED,
        &accounts::AccountView::from(&account),
    ))
}

async fn accounts_list(_: guard::Actor, state: Arc<AppState>) -> Result<Route, Rejection> {
    let accounts: Vec<_> = accounts::list(&state.store)
        .map_err(reject)?
        .iter()
        .map(accounts::AccountView::from)
        .collect();
    Ok(json(StatusCode::OK, &Accounts { accounts }))
}

async fn current_session(cookie: Option<String>, state: Arc<AppState>) -> Result<Route, Rejection> {
    let (session, account) = guard::session(&state, cookie.as_deref())?;
    Ok(json(
        StatusCode::OK,
        &CurrentSession {
            username: &session.username,
            csrf: &session.csrf,
            expires_ms: session.expires_ms,
            totp_enabled: account.totp_secret.is_some(),
        },
    ))
}

async fn end_session(
    cookie: Option<String>,
    csrf: Option<String>,
    ip: Option<IpAddr>,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let (session, _) = guard::session(&state, cookie.as_deref())?;
    check_csrf(&session, csrf.as_deref())?;
    if let Some(cookie) = cookie.as_deref() {
        sessions::end(&state.store, cookie).map_err(reject)?;
    }
    note(&state, &session.username, "logout", 204, ip);
    state.store.durable().await.map_err(reject)?;
    let response = warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response();
    Ok(with_cookie(response, cookie_header(&state, "", 0, false)))
}

/// Runs a check of the signed-in account's password or code under the login throttle: a
/// stolen session guesses no faster through the password and second-factor forms than
/// through the login. Only a wrong password or code counts as a failure.
pub(super) async fn throttled<T: Send + 'static>(
    state: &AppState,
    ip: Option<IpAddr>,
    username: &str,
    check: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    state
        .admin
        .throttle
        .check(ip, username, state.clock.now_ms())
        .map_err(Error::TooManyRequests)?;
    // argon2 takes tens of milliseconds: off the async workers.
    let outcome = tokio::task::spawn_blocking(check)
        .await
        .map_err(Error::internal)?;
    if let Err(error) = &outcome {
        if matches!(error.code(), "wrong_password" | "wrong_code") {
            state
                .admin
                .throttle
                .failed(ip, username, state.clock.now_ms());
        }
    }
    outcome
}

/// Checks the current password, stores the new one under a new epoch and ends every session
/// of the account (this one too) in one transaction: the panel then asks to sign in again.
async fn change_password(
    (session, account): (Session, AdminAccount),
    body: PasswordChange,
    ip: Option<IpAddr>,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    accounts::check_password(&body.new).map_err(reject)?;
    let store = state.store.clone();
    let changed = throttled(&state, ip, &session.username, move || {
        if !accounts::password_matches(&account, &body.current) {
            return Err(signin::wrong_password());
        }
        let mut account = account;
        account.password_hash = accounts::hash_password(&body.new)?;
        account.session_epoch += 1;
        let ended = sessions::keys_of_account(&store, &account.username)?;
        accounts::save(&store, &account, &ended)?;
        Ok(account)
    })
    .await;
    let account = match changed {
        Ok(account) => account,
        Err(error) => {
            if error.code() == "wrong_password" {
                note(
                    &state,
                    &session.username,
                    "password_change_refused",
                    403,
                    ip,
                );
                state.store.durable().await.map_err(reject)?;
            }
            return Err(reject(error));
        }
    };
    note(&state, &account.username, "password_changed", 200, ip);
    state.store.durable().await.map_err(reject)?;
    let response = json(
        StatusCode::OK,
        &StatusBody {
            status: "password changed; every session has ended, sign in again",
        },
    );
    Ok(with_cookie(response, cookie_header(&state, "", 0, false)))
}
