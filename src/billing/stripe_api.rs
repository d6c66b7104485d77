//! The calls we make to Stripe, through async-stripe's client (form-encoded parameters, the
//! secret key as Bearer, an Idempotency-Key on every create). Only the fields we use are read
//! back, so responses from newer API versions (or an emulator) never fail to parse.

use std::collections::HashMap;
use std::str::FromStr;

use serde::Deserialize;
use stripe::{
    CheckoutSessionMode, Client, CreateCheckoutSession, CreateCheckoutSessionLineItems,
    CreateCheckoutSessionLineItemsPriceData, CreateCheckoutSessionLineItemsPriceDataProductData,
    CreateCustomer, CreatePaymentIntent, Currency, CustomerId, RequestStrategy,
};

use super::plans::Plan;
use crate::error::{Error, Result};

/// The part of a created Stripe object we need.
#[derive(Debug, Clone, Deserialize)]
pub struct Created {
    pub id: String,
    pub client_secret: Option<String>,
    pub url: Option<String>,
}

#[derive(Clone)]
pub struct StripeApi {
    client: Client,
    /// async-stripe sets no deadline: a Stripe that accepts the connection and never answers
    /// would hold the user's request (and a connection) forever.
    timeout: std::time::Duration,
}

/// Runs one Stripe call within the deadline; a failure or a timeout is a 503 to retry.
async fn within<T>(
    timeout: std::time::Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, stripe::StripeError>>,
) -> Result<T> {
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
    Currency::from_str(&plan.currency).map_err(|_| {
        Error::internal(format!(
            "plan {}: unknown currency {}",
            plan.id, plan.currency
        ))
    })
}

impl StripeApi {
    /// `base` is Stripe's API root (`https://api.stripe.com`), or an emulator's.
    pub fn new(base: &str, secret_key: &str, timeout: std::time::Duration) -> Result<StripeApi> {
        // async-stripe panics on a bad URL: check it first, as a configuration error.
        let parsed = url::Url::parse(base)
            .map_err(|e| Error::caused_by(format!("stripe_api_base {base:?}"), e))?;
        Ok(StripeApi {
            client: Client::from_url(parsed.as_str(), secret_key),
            timeout,
        })
    }

    fn idempotent(&self, key: String) -> Client {
        self.client
            .clone()
            .with_strategy(RequestStrategy::Idempotent(key))
    }

    /// A Customer for the user. The key makes a retried or concurrent first purchase reuse the
    /// same one.
    pub async fn create_customer(&self, user_id: u64, email: &str) -> Result<String> {
        let mut params = CreateCustomer::new();
        params.email = Some(email);
        params.metadata = Some(HashMap::from([(
            "user_id".to_string(),
            user_id.to_string(),
        )]));
        let client = self.idempotent(format!("proxyfleet-customer-{user_id}"));
        let created: Created = within(
            self.timeout,
            "customer creation",
            client.post_form("/customers", &params),
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
        let price = i64::try_from(plan.price).map_err(Error::internal)?;
        let mut params = CreatePaymentIntent::new(price, currency(plan)?);
        params.customer = Some(customer_id(customer)?);
        params.metadata = Some(metadata(user_id, plan));
        // Payment methods are left to Stripe's defaults (automatic since API 2023-08-16), which
        // also keeps the request within what localstripe, the test emulator, accepts.
        let client = self.idempotent(format!("proxyfleet-pi-{user_id}-{key}"));
        within(
            self.timeout,
            "payment intent",
            client.post_form("/payment_intents", &params),
        )
        .await
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
        let user = user_id.to_string();
        let mut params = CreateCheckoutSession::new();
        params.mode = Some(CheckoutSessionMode::Payment);
        params.customer = Some(customer_id(customer)?);
        params.client_reference_id = Some(&user);
        params.success_url = Some(success_url);
        params.cancel_url = Some(cancel_url);
        params.metadata = Some(metadata(user_id, plan));
        params.line_items = Some(vec![CreateCheckoutSessionLineItems {
            quantity: Some(1),
            price_data: Some(CreateCheckoutSessionLineItemsPriceData {
                currency: currency(plan)?,
                unit_amount: Some(i64::try_from(plan.price).map_err(Error::internal)?),
                product_data: Some(CreateCheckoutSessionLineItemsPriceDataProductData {
                    name: plan.name.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let client = self.idempotent(format!("proxyfleet-cs-{user_id}-{key}"));
        within(
            self.timeout,
            "checkout session",
            client.post_form("/checkout/sessions", &params),
        )
        .await
    }
}

fn customer_id(id: &str) -> Result<CustomerId> {
    CustomerId::from_str(id).map_err(|_| Error::internal(format!("bad stripe customer id {id:?}")))
}
