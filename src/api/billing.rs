//! HTTP: plans (public), the Stripe webhook, a user's payments, and the admin's payments list.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use crate::api::filters::limited;
use crate::api::filters::{admin, user, with_state};
use crate::api::AppState;
use crate::billing::purchase::PurchaseMode;
use crate::clock::now_ms;
use crate::fleet::model::User;
use crate::http::body::json as json_body;
use crate::http::rate_limit::Endpoint;
use crate::http::{json, reject};
use warp::Reply;

/// Stripe's event payloads are small; this bounds a hostile one.
const WEBHOOK_MAX_BYTES: u64 = 256 * 1024;
const PAGE_MAX: usize = 500;

#[derive(Deserialize)]
struct NewDevice {
    name: String,
}

#[derive(Deserialize)]
struct Purchase {
    plan: String,
    #[serde(default)]
    mode: PurchaseMode,
    idempotency_key: Option<String>,
}

#[derive(Deserialize)]
struct Redeem {
    code: String,
}

#[derive(Deserialize)]
struct NewPromo {
    code: Option<String>,
    days: u64,
    max_uses: u64,
    /// Unix seconds.
    expires_at: Option<u64>,
}

#[derive(Deserialize)]
struct Page {
    after: Option<String>,
    limit: Option<usize>,
}

impl Page {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, PAGE_MAX)
    }

    /// The cursor of the next page: the last item's key, when this page came back full.
    fn next<T>(items: &[T], limit: usize, key: impl Fn(&T) -> String) -> Option<String> {
        items.last().filter(|_| items.len() == limit).map(key)
    }
}

type Route = warp::reply::Response;

pub fn routes(state: Arc<AppState>) -> impl Filter<Extract = (Route,), Error = Rejection> + Clone {
    let plans = warp::path!("api" / "v1" / "pro" / "plans")
        .and(warp::get())
        .and(with_state(&state))
        .map(|state: Arc<AppState>| {
            json(
                StatusCode::OK,
                &json!({ "plans": state.billing.settings.plans }),
            )
        });
    let webhook = warp::path!("api" / "v1" / "stripe" / "webhook")
        .and(warp::post())
        .and(warp::header::optional::<String>("stripe-signature"))
        .and(warp::body::content_length_limit(WEBHOOK_MAX_BYTES))
        .and(warp::body::bytes())
        .and(with_state(&state))
        .and_then(
            |signature: Option<String>, body: Bytes, state: Arc<AppState>| async move {
                let outcome = state
                    .billing
                    .webhook(signature.as_deref(), &body, now_ms())
                    .await
                    .inspect_err(|_| state.metrics.webhook("rejected"))
                    .map_err(reject)?;
                state.metrics.webhook(outcome.kind());
                Ok::<_, Rejection>(json(
                    StatusCode::OK,
                    &json!({ "received": true, "outcome": outcome.describe() }),
                ))
            },
        );
    let mine = warp::path!("api" / "v1" / "pro" / "payments")
        .and(warp::get())
        .and(user(&state))
        .and(with_state(&state))
        .and_then(|user: User, state: Arc<AppState>| async move {
            let payments = state.billing.payments_of(user.id).map_err(reject)?;
            Ok::<_, Rejection>(json(
                StatusCode::OK,
                &json!({ "pro_until": user.pro_until_ms.map(|t| t / 1000), "payments": payments }),
            ))
        });
    let all = warp::path!("api" / "v1" / "admin" / "payments")
        .and(warp::get())
        .and(admin(&state))
        .and(warp::query::<Page>())
        .and(with_state(&state))
        .and_then(|page: Page, state: Arc<AppState>| async move {
            let limit = page.limit();
            let payments = state
                .billing
                .payments(page.after.as_deref(), limit)
                .map_err(reject)?;
            let next = Page::next(&payments, limit, |p| p.id.clone());
            let totals = state.billing.totals().map_err(reject)?;
            Ok::<_, Rejection>(json(
                StatusCode::OK,
                &json!({ "payments": payments, "next": next, "totals": totals }),
            ))
        });
    let limit = state.config.max_body_bytes;
    let add_device = warp::path!("api" / "v1" / "devices")
        .and(warp::post())
        .and(user(&state))
        .and(json_body::<NewDevice>(limit))
        .and(with_state(&state))
        .and_then(
            |user: User, body: NewDevice, state: Arc<AppState>| async move {
                let (device, token) = state
                    .billing
                    .add_device(user.id, &body.name, now_ms())
                    .await
                    .map_err(reject)?;
                Ok::<_, Rejection>(json(
                    StatusCode::CREATED,
                    &json!({ "id": device.id, "name": device.name, "token": token,
                             "created_at": device.created_ms / 1000 }),
                ))
            },
        );
    let list_devices = warp::path!("api" / "v1" / "devices")
        .and(warp::get())
        .and(user(&state))
        .and(with_state(&state))
        .map(|user: User, state: Arc<AppState>| {
            let devices: Vec<_> = user
                .devices
                .iter()
                .map(|d| json!({ "id": d.id, "name": d.name, "created_at": d.created_ms / 1000 }))
                .collect();
            let limit = state.billing.device_limit(&user, now_ms());
            json(
                StatusCode::OK,
                &json!({ "devices": devices, "limit": limit }),
            )
        });
    let remove_device = warp::path!("api" / "v1" / "devices" / u64)
        .and(warp::delete())
        .and(user(&state))
        .and(with_state(&state))
        .and_then(|id: u64, user: User, state: Arc<AppState>| async move {
            state
                .billing
                .remove_device(user.id, id, now_ms())
                .await
                .map_err(reject)?;
            Ok::<_, Rejection>(
                warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response(),
            )
        });
    let purchase = warp::path!("api" / "v1" / "pro" / "purchase")
        .and(warp::post())
        .and(user(&state))
        .and(json_body::<Purchase>(limit))
        .and(with_state(&state))
        .and_then(
            |user: User, body: Purchase, state: Arc<AppState>| async move {
                let started = state
                    .billing
                    .purchase(
                        &user,
                        &body.plan,
                        body.mode,
                        body.idempotency_key.as_deref(),
                        now_ms(),
                    )
                    .await
                    .map_err(reject)?;
                Ok::<_, Rejection>(json(StatusCode::CREATED, &started))
            },
        );
    let referral = warp::path!("api" / "v1" / "referrals")
        .and(warp::get())
        .and(user(&state))
        .and(with_state(&state))
        .and_then(|user: User, state: Arc<AppState>| async move {
            let code = state
                .billing
                .referral_code(user.id, now_ms())
                .await
                .map_err(reject)?;
            let redeemed_by = state.billing.redemptions(&code);
            let bonus_days = state.billing.settings.referral_bonus_days;
            Ok::<_, Rejection>(json(
                StatusCode::OK,
                &json!({ "code": code, "bonus_days": bonus_days, "redeemed_by": redeemed_by }),
            ))
        });
    let redeem = warp::path!("api" / "v1" / "referrals" / "redeem")
        .and(warp::post())
        .and(limited(&state, Endpoint::ReferralRedeem))
        .and(user(&state))
        .and(json_body::<Redeem>(limit))
        .and(with_state(&state))
        .and_then(
            |user: User, body: Redeem, state: Arc<AppState>| async move {
                let redeemed = state
                    .billing
                    .redeem(user.id, &body.code, now_ms())
                    .await
                    .map_err(reject)?;
                Ok::<_, Rejection>(json(StatusCode::OK, &redeemed))
            },
        );
    let promo_base = warp::path!("api" / "v1" / "admin" / "promo-codes").and(admin(&state));
    let create_promo = promo_base
        .clone()
        .and(warp::post())
        .and(json_body::<NewPromo>(limit))
        .and(with_state(&state))
        .and_then(|body: NewPromo, state: Arc<AppState>| async move {
            let promo = state
                .billing
                .create_promo(
                    body.code.as_deref(),
                    body.days,
                    body.max_uses,
                    body.expires_at.map(|t| t.saturating_mul(1000)),
                    now_ms(),
                )
                .await
                .map_err(reject)?;
            Ok::<_, Rejection>(json(StatusCode::CREATED, &promo))
        });
    let list_promos = promo_base
        .and(warp::get())
        .and(with_state(&state))
        .and_then(|state: Arc<AppState>| async move {
            let codes = state.billing.promo_codes().map_err(reject)?;
            Ok::<_, Rejection>(json(StatusCode::OK, &json!({ "codes": codes })))
        });
    let referral_codes = warp::path!("api" / "v1" / "admin" / "referral-codes")
        .and(warp::get())
        .and(admin(&state))
        .and(warp::query::<Page>())
        .and(with_state(&state))
        .and_then(|page: Page, state: Arc<AppState>| async move {
            let limit = page.limit();
            let codes = state
                .billing
                .referral_codes(page.after.as_deref(), limit)
                .map_err(reject)?;
            let next = Page::next(&codes, limit, |c| c.code.clone());
            Ok::<_, Rejection>(json(
                StatusCode::OK,
                &json!({ "codes": codes, "next": next }),
            ))
        });
    plans
        .or(referral_codes)
        .unify()
        .or(purchase)
        .unify()
        .or(referral)
        .unify()
        .or(redeem)
        .unify()
        .or(create_promo)
        .unify()
        .or(list_promos)
        .unify()
        .or(add_device)
        .unify()
        .or(list_devices)
        .unify()
        .or(remove_device)
        .unify()
        .or(webhook)
        .unify()
        .or(mine)
        .unify()
        .or(all)
        .unify()
}
