//! The calls we make to Stripe, through async-stripe's client (form-encoded parameters, the
//! secret key as Bearer, an Idempotency-Key on every create). Only the fields we use are read
//! back, so responses from newer API versions (or an emulator) never fail to parse.

use std::collections::HashMap;
use std::str::FromStr;

use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    ProductData,
};
use stripe_core::customer::CreateCustomer;
use stripe_core::payment_intent::CreatePaymentIntent;
use stripe_shared::CheckoutSessionMode;
use stripe_types::Currency;

use super::plans::Plan;
use crate::error::{Error, Result};

/// The part of a created Stripe object we need. async-stripe's own types would read (and
/// require) every field of the API version it was made for.
#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct Created {
    pub id: String,
    pub client_secret: Option<String>,
    pub url: Option<String>,
}

#[derive(Clone)]
pub struct StripeApi {
    client: Client,
    /// The whole call's deadline: async-stripe sets none by default (its `timeout` bounds
    /// one attempt), and a Stripe that accepts the connection and never answers would hold the
    /// user's request (and a connection) forever.
    timeout: std::time::Duration,
}

/// Sends one Stripe request, with the idempotency key, within the deadline; a failure or a
/// timeout is a 503 to retry.
async fn send(
    client: &Client,
    timeout: std::time::Duration,
    what: &str,
    key: String,
    request: impl StripeRequest,
) -> Result<Created> {
    let key = IdempotencyKey::new(key).map_err(Error::internal)?;
    let call = request
        .build()
        .customize::<Created>()
        .request_strategy(RequestStrategy::Idempotent(key))
        .send(client);
    match tokio::time::timeout(timeout, call).await {
        Ok(answer) => answer.map_err(|e| provider_error(what, e)),
        Err(_) => {
            tracing::warn!(seconds = timeout.as_secs_f64(), "stripe {what} timed out");
            Err(Error::Unavailable(format!(
                "the payment provider did not answer the {what} in time: try again"
            )))
        }
    }
}

fn provider_error(what: &str, e: stripe::StripeError) -> Error {
    tracing::warn!(error = %e, "stripe {what} failed");
    Error::Unavailable(format!(
        "the payment provider did not answer the {what}: try again"
    ))
}

fn metadata(user_id: u64, plan: &Plan) -> HashMap<String, String> {
    HashMap::from([
        ("user_id".to_string(), user_id.to_string()),
        ("plan".to_string(), plan.id.clone()),
    ])
}

fn currency(plan: &Plan) -> Result<Currency> {
    match Currency::from_str(&plan.currency) {
        Ok(Currency::Unknown(_)) | Err(_) => Err(Error::internal(format!(
            "plan {}: unknown currency {}",
            plan.id, plan.currency
        ))),
        Ok(currency) => Ok(currency),
    }
}

fn price(plan: &Plan) -> Result<i64> {
    i64::try_from(plan.price).map_err(Error::internal)
}

impl StripeApi {
    /// `base` is Stripe's API root (`https://api.stripe.com`), or an emulator's.
    pub fn new(base: &str, secret_key: &str, timeout: std::time::Duration) -> Result<StripeApi> {
        let parsed = url::Url::parse(base)
            .map_err(|e| Error::caused_by(format!("stripe_api_base {base:?}"), e))?;
        let client = ClientBuilder::new(secret_key)
            .url(parsed.as_str())
            .build()
            .map_err(|e| Error::caused_by(format!("stripe_api_base {base:?}"), e))?;
        Ok(StripeApi { client, timeout })
    }

    /// A Customer for the user. The key makes a retried or concurrent first purchase reuse the
    /// same one.
    pub async fn create_customer(&self, user_id: u64, email: &str) -> Result<String> {
        let request = CreateCustomer::new().email(email).metadata(HashMap::from([(
            "user_id".to_string(),
            user_id.to_string(),
        )]));
        let key = format!("proxyfleet-customer-{user_id}");
        let created = send(
            &self.client,
            self.timeout,
            "customer creation",
            key,
            request,
        )
        .await?;
        Ok(created.id)
    }

    /// A PaymentIntent for `plan` (the app confirms it with the client secret). The webhook
    /// relies on `metadata.user_id` and `metadata.plan`.
    pub async fn create_payment_intent(
        &self,
        customer: &str,
        user_id: u64,
        plan: &Plan,
        key: &str,
    ) -> Result<Created> {
        // Payment methods are left to Stripe's defaults (automatic since API 2023-08-16), which
        // also keeps the request within what localstripe, the test emulator, accepts.
        let request = CreatePaymentIntent::new(price(plan)?, currency(plan)?)
            .customer(customer)
            .metadata(metadata(user_id, plan));
        let key = format!("proxyfleet-pi-{user_id}-{key}");
        send(&self.client, self.timeout, "payment intent", key, request).await
    }

    /// A Checkout Session link for web users. Its metadata (not the PaymentIntent's) names the
    /// user and plan, so its `checkout.session.completed` grants the days once.
    pub async fn create_checkout_session(
        &self,
        customer: &str,
        user_id: u64,
        plan: &Plan,
        success_url: &str,
        cancel_url: &str,
        key: &str,
    ) -> Result<Created> {
        let mut price_data = CreateCheckoutSessionLineItemsPriceData::new(currency(plan)?);
        price_data.unit_amount = Some(price(plan)?);
        price_data.product_data = Some(ProductData::new(plan.name.clone()));
        let line_item = CreateCheckoutSessionLineItems {
            quantity: Some(1),
            price_data: Some(price_data),
            ..Default::default()
        };
        let request = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Payment)
            .customer(customer)
            .client_reference_id(user_id.to_string())
            .success_url(success_url)
            .cancel_url(cancel_url)
            .metadata(metadata(user_id, plan))
            .line_items(vec![line_item]);
        let key = format!("proxyfleet-cs-{user_id}-{key}");
        send(&self.client, self.timeout, "checkout session", key, request).await
    }
}
