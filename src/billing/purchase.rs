//! Starting a purchase: a PaymentIntent for the apps' Stripe SDK, or a Checkout Session link
//! for web users. Pro itself is granted by the webhook when Stripe says the payment succeeded.

use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::Billing;
use crate::error::{Error, Result};
use crate::fleet::model::User;
use crate::fleet::users::save_user;
use crate::store::TreeId;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseMode {
    #[default]
    PaymentIntent,
    Checkout,
}

/// The client's idempotency key (a retried purchase reuses the same Stripe object), or a
/// fresh one.
fn request_key(given: Option<&str>) -> Result<String> {
    match given {
        Some(key)
            if (1..=64).contains(&key.len())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(key.to_string())
        }
        Some(_) => Err(Error::invalid(
            "invalid_idempotency_key",
            "idempotency_key must be 1 to 64 of A-Z, a-z, 0-9, - and _",
        )),
        None => {
            let mut bytes = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut bytes);
            Ok(hex::encode(bytes))
        }
    }
}

impl Billing {
    /// The user's Stripe Customer, created and remembered on the first purchase.
    async fn customer_of(&self, user: &User, now_ms: u64) -> Result<String> {
        if let Some(id) = &user.stripe_customer {
            return Ok(id.clone());
        }
        let api = self.stripe_api()?;
        let created = api.create_customer(user.id.0, user.email.as_str()).await?;
        let kept = self.store.transaction(|tx| {
            let Some(mut current) = tx.get::<User>(TreeId::Users, user.id.key())? else {
                return Ok(created.clone());
            };
            // A concurrent first purchase may have stored one already (the same, thanks to
            // the idempotency key): keep what is there.
            if let Some(existing) = &current.stripe_customer {
                return Ok(existing.clone());
            }
            current.stripe_customer = Some(created.clone());
            save_user(tx, &current, now_ms)?;
            Ok(created.clone())
        })?;
        self.store.durable().await?;
        Ok(kept)
    }

    fn stripe_api(&self) -> Result<&super::stripe_api::StripeApi> {
        self.stripe.as_ref().ok_or_else(|| {
            Error::Unavailable("billing is off: stripe_secret_key is not configured".into())
        })
    }

    pub async fn purchase(
        &self,
        user: &User,
        plan_id: &str,
        mode: PurchaseMode,
        idempotency_key: Option<&str>,
        now_ms: u64,
    ) -> Result<Value> {
        let api = self.stripe_api()?;
        let plan = self
            .settings
            .plans
            .iter()
            .find(|p| p.id == plan_id)
            .ok_or_else(|| {
                Error::invalid(
                    "unknown_plan",
                    format!("no plan {plan_id:?}; see GET /api/v1/pro/plans"),
                )
            })?;
        let key = request_key(idempotency_key)?;
        let customer = self.customer_of(user, now_ms).await?;
        match mode {
            PurchaseMode::PaymentIntent => {
                let intent = api
                    .create_payment_intent(&customer, user.id.0, plan, &key)
                    .await?;
                Ok(json!({
                    "mode": "payment_intent", "plan": plan.id, "amount": plan.price,
                    "currency": plan.currency, "customer": customer,
                    "payment_intent": intent.id, "client_secret": intent.client_secret,
                }))
            }
            PurchaseMode::Checkout => {
                let (Some(success), Some(cancel)) = (
                    &self.settings.checkout_success_url,
                    &self.settings.checkout_cancel_url,
                ) else {
                    return Err(Error::Unavailable(
                        "checkout is off: checkout_success_url and checkout_cancel_url are not configured".into(),
                    ));
                };
                let session = api
                    .create_checkout_session(&customer, user.id.0, plan, success, cancel, &key)
                    .await?;
                Ok(json!({
                    "mode": "checkout", "plan": plan.id, "amount": plan.price,
                    "currency": plan.currency, "customer": customer,
                    "checkout_session": session.id, "url": session.url,
                }))
            }
        }
    }
}
