//! HTTP: plans (public), the Stripe webhook, a user's payments, and the admin's payments list.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use crate::api::filters::limited;
use crate::api::filters::{admin, user, with_state};
use crate::api::AppState;
use crate::billing::payments::Payment;
use crate::billing::purchase::PurchaseMode;
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

pub fn routes(
    state: Arc<AppState>,
) -> (
    super::Table,
    impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone,
) {
    let plans = warp::path!("api" / "v1" / "pro" / "plans")
        .and(warp::get())
        .and(with_state(&state))
        .map(pro_plans);
    let webhook = warp::path!("api" / "v1" / "stripe" / "webhook")
        .and(warp::post())
        .and(warp::header::optional::<String>("stripe-signature"))
        .and(warp::body::content_length_limit(WEBHOOK_MAX_BYTES))
        .and(warp::body::bytes())
        .and(with_state(&state))
        .and_then(stripe_webhook);
    let mine = warp::path!("api" / "v1" / "pro" / "payments")
        .and(warp::get())
        .and(user(&state))
        .and(with_state(&state))
        .and_then(own_payments);
    let all = warp::path!("api" / "v1" / "admin" / "payments")
        .and(warp::get())
        .and(admin(&state))
        .and(warp::query::<Page>())
        .and(with_state(&state))
        .and_then(all_payments);
    let limit = state.config.max_body_bytes;
    let add_device = warp::path!("api" / "v1" / "devices")
        .and(warp::post())
        .and(user(&state))
        .and(json_body::<NewDevice>(limit))
        .and(with_state(&state))
        .and_then(link_device);
    let list_devices = warp::path!("api" / "v1" / "devices")
        .and(warp::get())
        .and(user(&state))
        .and(with_state(&state))
        .map(own_devices);
    let remove_device = warp::path!("api" / "v1" / "devices" / u64)
        .and(warp::delete())
        .and(user(&state))
        .and(with_state(&state))
        .and_then(unlink_device);
    let purchase = warp::path!("api" / "v1" / "pro" / "purchase")
        .and(warp::post())
        .and(user(&state))
        .and(json_body::<Purchase>(limit))
        .and(with_state(&state))
        .and_then(start_purchase);
    let referral = warp::path!("api" / "v1" / "referrals")
        .and(warp::get())
        .and(user(&state))
        .and(with_state(&state))
        .and_then(own_referral_code);
    let redeem = warp::path!("api" / "v1" / "referrals" / "redeem")
        .and(warp::post())
        .and(limited(&state, Endpoint::ReferralRedeem))
        .and(user(&state))
        .and(json_body::<Redeem>(limit))
        .and(with_state(&state))
        .and_then(redeem_code);
    let promo_base = warp::path!("api" / "v1" / "admin" / "promo-codes").and(admin(&state));
    let create_promo = promo_base
        .clone()
        .and(warp::post())
        .and(json_body::<NewPromo>(limit))
        .and(with_state(&state))
        .and_then(create_promo_code);
    let list_promos = promo_base
        .and(warp::get())
        .and(with_state(&state))
        .and_then(promo_codes);
    let referral_codes = warp::path!("api" / "v1" / "admin" / "referral-codes")
        .and(warp::get())
        .and(admin(&state))
        .and(warp::query::<Page>())
        .and(with_state(&state))
        .and_then(referral_codes_page);
    endpoints! {
        GET "/api/v1/pro/plans" => plans,
        GET "/api/v1/admin/referral-codes" => referral_codes,
        POST "/api/v1/pro/purchase" => purchase,
        GET "/api/v1/referrals" => referral,
        POST "/api/v1/referrals/redeem" => redeem,
        POST "/api/v1/admin/promo-codes" => create_promo,
        GET "/api/v1/admin/promo-codes" => list_promos,
        POST "/api/v1/devices" => add_device,
        GET "/api/v1/devices" => list_devices,
        DELETE "/api/v1/devices/{id}" => remove_device,
        POST "/api/v1/stripe/webhook" => webhook,
        GET "/api/v1/pro/payments" => mine,
        GET "/api/v1/admin/payments" => all,
    }
}

#[derive(Serialize)]
struct Plans<'a> {
    plans: &'a [crate::billing::plans::Plan],
}

/// A linked device as its owner and the admin see it (never its token, shown once at linking).
#[derive(Serialize)]
pub struct DeviceView {
    id: u64,
    name: String,
    created_at: u64,
}

impl From<&crate::fleet::model::Device> for DeviceView {
    fn from(d: &crate::fleet::model::Device) -> Self {
        DeviceView {
            id: d.id,
            name: d.name.clone(),
            created_at: d.created_ms / 1000,
        }
    }
}

#[derive(Serialize)]
struct Devices {
    devices: Vec<DeviceView>,
    /// How many devices the account may link (more with Pro).
    limit: usize,
}

/// `POST /api/v1/devices`: the device and its token, shown this once.
#[derive(Serialize)]
struct LinkedDevice {
    id: u64,
    name: String,
    token: String,
    created_at: u64,
}

#[derive(Serialize)]
struct WebhookReceived {
    received: bool,
    outcome: String,
}

#[derive(Serialize)]
struct OwnPayments {
    pro_until: Option<u64>,
    payments: Vec<Payment>,
}

/// `GET /api/v1/admin/payments`: a page, where the next starts, and the totals per currency.
#[derive(Serialize)]
struct PaymentPage {
    payments: Vec<Payment>,
    next: Option<String>,
    totals: std::collections::BTreeMap<String, crate::billing::payments::Totals>,
}

#[derive(Serialize)]
struct OwnReferralCode {
    code: String,
    bonus_days: u64,
    redeemed_by: usize,
}

#[derive(Serialize)]
struct PromoCodes {
    codes: Vec<crate::billing::referrals::PromoCode>,
}

#[derive(Serialize)]
struct ReferralCodePage {
    codes: Vec<crate::billing::referrals::ReferralCode>,
    next: Option<String>,
}

fn pro_plans(state: Arc<AppState>) -> Route {
    let plans = Plans {
        plans: &state.billing.settings.plans,
    };
    json(StatusCode::OK, &plans)
}

fn own_devices(user: User, state: Arc<AppState>) -> Route {
    let devices = user.devices.iter().map(DeviceView::from).collect();
    let limit = state.billing.device_limit(&user, state.clock.now_ms());
    json(StatusCode::OK, &Devices { devices, limit })
}

async fn stripe_webhook(
    signature: Option<String>,
    body: Bytes,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let outcome = state
        .billing
        .webhook(signature.as_deref(), &body, state.clock.now_ms())
        .await
        .inspect_err(|_| state.metrics.webhook("rejected"))
        .map_err(reject)?;
    state.metrics.webhook(outcome.kind());
    let received = WebhookReceived {
        received: true,
        outcome: outcome.describe(),
    };
    Ok(json(StatusCode::OK, &received))
}

async fn own_payments(user: User, state: Arc<AppState>) -> Result<Route, Rejection> {
    let payments = state.billing.payments_of(user.id).map_err(reject)?;
    let own = OwnPayments {
        pro_until: user.pro_until_ms.map(|t| t / 1000),
        payments,
    };
    Ok(json(StatusCode::OK, &own))
}

async fn all_payments(page: Page, state: Arc<AppState>) -> Result<Route, Rejection> {
    let limit = page.limit();
    let payments = state
        .billing
        .payments(page.after.as_deref(), limit)
        .map_err(reject)?;
    let next = Page::next(&payments, limit, |p| p.id.clone());
    let totals = state.billing.totals().map_err(reject)?;
    let page = PaymentPage {
        payments,
        next,
        totals,
    };
    Ok(json(StatusCode::OK, &page))
}

async fn link_device(
    user: User,
    body: NewDevice,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let (device, token) = state
        .billing
        .add_device(user.id, &body.name, state.clock.now_ms())
        .await
        .map_err(reject)?;
    let linked = LinkedDevice {
        id: device.id,
        name: device.name,
        token,
        created_at: device.created_ms / 1000,
    };
    Ok(json(StatusCode::CREATED, &linked))
}

async fn unlink_device(id: u64, user: User, state: Arc<AppState>) -> Result<Route, Rejection> {
    state
        .billing
        .remove_device(user.id, id, state.clock.now_ms())
        .await
        .map_err(reject)?;
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

async fn start_purchase(
    user: User,
    body: Purchase,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let started = state
        .billing
        .purchase(
            &user,
            &body.plan,
            body.mode,
            body.idempotency_key.as_deref(),
            state.clock.now_ms(),
        )
        .await
        .map_err(reject)?;
    Ok(json(StatusCode::CREATED, &started))
}

async fn own_referral_code(user: User, state: Arc<AppState>) -> Result<Route, Rejection> {
    let code = state
        .billing
        .referral_code(user.id, state.clock.now_ms())
        .await
        .map_err(reject)?;
    let redeemed_by = state.billing.redemptions(&code);
    let bonus_days = state.billing.settings.referral_bonus_days;
    let own = OwnReferralCode {
        code,
        bonus_days,
        redeemed_by,
    };
    Ok(json(StatusCode::OK, &own))
}

async fn redeem_code(user: User, body: Redeem, state: Arc<AppState>) -> Result<Route, Rejection> {
    let redeemed = state
        .billing
        .redeem(user.id, &body.code, state.clock.now_ms())
        .await
        .map_err(reject)?;
    Ok(json(StatusCode::OK, &redeemed))
}

async fn create_promo_code(body: NewPromo, state: Arc<AppState>) -> Result<Route, Rejection> {
    let promo = state
        .billing
        .create_promo(
            body.code.as_deref(),
            body.days,
            body.max_uses,
            body.expires_at.map(|t| t.saturating_mul(1000)),
            state.clock.now_ms(),
        )
        .await
        .map_err(reject)?;
    Ok(json(StatusCode::CREATED, &promo))
}

async fn promo_codes(state: Arc<AppState>) -> Result<Route, Rejection> {
    let codes = state.billing.promo_codes().map_err(reject)?;
    Ok(json(StatusCode::OK, &PromoCodes { codes }))
}

async fn referral_codes_page(page: Page, state: Arc<AppState>) -> Result<Route, Rejection> {
    let limit = page.limit();
    let codes = state
        .billing
        .referral_codes(page.after.as_deref(), limit)
        .map_err(reject)?;
    let next = Page::next(&codes, limit, |c| c.code.clone());
    Ok(json(StatusCode::OK, &ReferralCodePage { codes, next }))
}
