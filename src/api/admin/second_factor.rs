//! Turning the second factor on and off for the signed-in account. The secret is made by the
//! server, shown once to the browser (with its QR code), and stored only when the admin proves
//! with a code that their app holds it. Setting, replacing or removing it also needs the
//! account's password and, while it is on, a current code: a stolen session cannot take the
//! account over. The audit layer records each.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use super::guard;
use super::throttled;
use crate::admin::accounts::AdminAccount;
use crate::admin::sessions::{self, Session, COOKIE};
use crate::admin::signin::{self, SecondFactorChange};
use crate::admin::totp;
use crate::api::filters::with_state;
use crate::api::AppState;
use crate::http::body::json as json_body;
use crate::http::client_ip::client_ip;
use crate::http::{json, reject};

type Route = warp::reply::Response;

/// Whether the account now has a second factor; the recovery codes once, when it was set.
#[derive(Serialize)]
struct SecondFactor {
    totp_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes: Option<Vec<String>>,
}

/// A fresh secret to scan, not yet enabled.
#[derive(Serialize)]
struct NewSecondFactor<'a> {
    qr_svg: String,
    otpauth_url: &'a str,
    secret: &'a str,
}
const SMALL_BODY: u64 = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enable {
    /// The account's password: a stolen session alone cannot set a second factor.
    password: String,
    /// A code (or recovery code) of the secret in use, when the factor is already on.
    current_code: Option<String>,
    secret: String,
    /// A code of `secret`, proof that the app holds it.
    code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Disable {
    password: String,
    code: String,
}

pub fn routes(
    state: Arc<AppState>,
) -> (
    crate::api::Table,
    impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone,
) {
    let trusted = Arc::new(state.config.trusted_proxies.clone());
    let base = warp::path("admin")
        .and(warp::path("api"))
        .and(warp::path("totp"));

    let fresh = base
        .and(warp::path!("new"))
        .and(warp::get())
        .and(guard::signed_in(&state))
        .and_then(new_second_factor);

    let enable = base
        .and(warp::path::end())
        .and(warp::post())
        .and(guard::signed_in(&state))
        .and(warp::cookie::optional::<String>(COOKIE))
        .and(json_body::<Enable>(SMALL_BODY))
        .and(client_ip(trusted.clone()))
        .and(with_state(&state))
        .and_then(enable_second_factor);

    let disable = base
        .and(warp::path!("disable"))
        .and(warp::post())
        .and(guard::signed_in(&state))
        .and(json_body::<Disable>(SMALL_BODY))
        .and(client_ip(trusted))
        .and(with_state(&state))
        .and_then(disable_second_factor);

    endpoints! {
        GET "/admin/api/totp/new" => fresh,
        POST "/admin/api/totp" => enable,
        POST "/admin/api/totp/disable" => disable,
    }
}

async fn disable_second_factor(
    (session, _): (Session, AdminAccount),
    body: Disable,
    ip: Option<IpAddr>,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let store = state.store.clone();
    let username = session.username.clone();
    let now = state.clock.now_ms();
    throttled(&state, ip, &username, move || {
        signin::remove_second_factor(&store, &session.username, &body.password, &body.code, now)
    })
    .await
    .map_err(reject)?;
    state.store.durable().await.map_err(reject)?;
    Ok(json(
        StatusCode::OK,
        &SecondFactor {
            totp_enabled: false,
            recovery_codes: None,
        },
    ))
}

async fn enable_second_factor(
    (session, _): (Session, AdminAccount),
    cookie: Option<String>,
    body: Enable,
    ip: Option<IpAddr>,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let store = state.store.clone();
    let keep = cookie.as_deref().map(sessions::key_of).unwrap_or_default();
    let username = session.username.clone();
    let now = state.clock.now_ms();
    let codes = throttled(&state, ip, &username, move || {
        let change = SecondFactorChange {
            password: &body.password,
            current_code: body.current_code.as_deref(),
            new_secret: &body.secret,
            code: &body.code,
        };
        signin::set_second_factor(&store, &session.username, change, &keep, now)
    })
    .await
    .map_err(reject)?;
    state.store.durable().await.map_err(reject)?;
    Ok(json(
        StatusCode::OK,
        &SecondFactor {
            totp_enabled: true,
            recovery_codes: Some(codes),
        },
    ))
}

async fn new_second_factor((session, _): (Session, AdminAccount)) -> Result<Route, Rejection> {
    let secret = totp::new_secret();
    let url = totp::otpauth_url(&session.username, &secret);
    Ok(json(
        StatusCode::OK,
        &NewSecondFactor {
            qr_svg: totp::qr_svg(&url),
            otpauth_url: &url,
            secret: &secret,
        },
    ))
}
