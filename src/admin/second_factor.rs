//! Turning the second factor on and off for the signed-in account. The secret is made by the
//! server, shown once to the browser, and stored only when the admin proves with a code that
//! their app holds it; turning it off needs a current code too. The audit layer records both.

use std::sync::Arc;

use serde::Deserialize;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use super::accounts::AdminAccount;
use super::guard;
use super::sessions::Session;
use super::{accounts, totp};
use crate::app::AppState;
use crate::clock::now_ms;
use crate::error::Error;
use crate::http::body::json as json_body;
use crate::http::{json, reject, with_state};

type Route = warp::reply::Response;
const SMALL_BODY: u64 = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enable {
    secret: String,
    code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Disable {
    code: String,
}

fn wrong_code() -> Rejection {
    reject(Error::invalid(
        "wrong_code",
        "that code is not the current one for this secret",
    ))
}

pub fn routes(state: Arc<AppState>) -> impl Filter<Extract = (Route,), Error = Rejection> + Clone {
    let base = warp::path("admin")
        .and(warp::path("api"))
        .and(warp::path("totp"));

    let fresh = base
        .and(warp::path!("new"))
        .and(warp::get())
        .and(guard::signed_in(&state))
        .and_then(|(session, _): (Session, AdminAccount)| async move {
            let secret = totp::new_secret();
            Ok::<_, Rejection>(json(
                StatusCode::OK,
                &serde_json::json!({
                    "otpauth_url": totp::otpauth_url(&session.username, &secret),
                    "secret": secret,
                }),
            ))
        });

    let enable =
        base.and(warp::path::end())
            .and(warp::post())
            .and(guard::signed_in(&state))
            .and(json_body::<Enable>(SMALL_BODY))
            .and(with_state(&state))
            .and_then(
                |(_, mut account): (Session, AdminAccount),
                 body: Enable,
                 state: Arc<AppState>| async move {
                    totp::check_secret(&body.secret).map_err(reject)?;
                    if !totp::code_matches(&body.secret, &body.code, now_ms() / 1000) {
                        return Err(wrong_code());
                    }
                    account.totp_secret = Some(body.secret);
                    accounts::save(&state.store, &account, &[]).map_err(reject)?;
                    state.store.durable().await.map_err(reject)?;
                    Ok(json(
                        StatusCode::OK,
                        &serde_json::json!({ "totp_enabled": true }),
                    ))
                },
            );

    let disable =
        base.and(warp::path!("disable"))
            .and(warp::post())
            .and(guard::signed_in(&state))
            .and(json_body::<Disable>(SMALL_BODY))
            .and(with_state(&state))
            .and_then(
                |(_, mut account): (Session, AdminAccount),
                 body: Disable,
                 state: Arc<AppState>| async move {
                    let Some(secret) = account.totp_secret.clone() else {
                        return Err(reject(Error::conflict(
                            "totp_off",
                            "the second factor is already off",
                        )));
                    };
                    if !totp::code_matches(&secret, &body.code, now_ms() / 1000) {
                        return Err(wrong_code());
                    }
                    account.totp_secret = None;
                    accounts::save(&state.store, &account, &[]).map_err(reject)?;
                    state.store.durable().await.map_err(reject)?;
                    Ok(json(
                        StatusCode::OK,
                        &serde_json::json!({ "totp_enabled": false }),
                    ))
                },
            );

    fresh.or(enable).unify().or(disable).unify()
}
