//! HTTP: plans (public), the Stripe webhook, a user's payments, and the admin's payments list.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use crate::app::AppState;
use crate::clock::now_ms;
use crate::fleet::model::User;
use crate::http::{admin, json, reject, user, with_state};

/// Stripe's event payloads are small; this bounds a hostile one.
const WEBHOOK_MAX_BYTES: u64 = 256 * 1024;
const PAGE_MAX: usize = 500;

#[derive(Deserialize)]
struct Page {
    after: Option<String>,
    limit: Option<usize>,
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
                    .map_err(reject)?;
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
            let limit = page.limit.unwrap_or(100).clamp(1, PAGE_MAX);
            let payments = state
                .billing
                .payments(page.after.as_deref(), limit)
                .map_err(reject)?;
            let next = (payments.len() == limit)
                .then(|| payments.last().map(|p| p.id.clone()))
                .flatten();
            let totals = state.billing.totals().map_err(reject)?;
            Ok::<_, Rejection>(json(
                StatusCode::OK,
                &json!({ "payments": payments, "next": next, "totals": totals }),
            ))
        });
    plans.or(webhook).unify().or(mine).unify().or(all).unify()
}
