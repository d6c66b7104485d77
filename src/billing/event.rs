//! Reading a Stripe event (pure): what it asks of us. Only the fields we rely on are read,
//! so Stripe adding fields never breaks us; a handled type missing one is a 400.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::fleet::model::UserId;

/// A payment that grants Pro.
#[derive(Debug, Clone, PartialEq)]
pub struct Paid {
    /// The PaymentIntent id when there is one (a Checkout Session carries it too, so the two
    /// events of one payment name the same payment), else the session id.
    pub payment_id: String,
    pub user_id: UserId,
    pub plan: String,
    pub amount: u64,
    pub currency: String,
    pub customer: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Paid(Paid),
    /// A refund of `refunded` out of `amount` for the payment.
    Refunded {
        payment_id: String,
        refunded: u64,
        amount: u64,
    },
    /// Not for us (another type, or a payment without our metadata): acknowledged, no change.
    Ignored(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub effect: Effect,
}

fn bad(message: impl Into<String>) -> Error {
    Error::bad_request("invalid_event", message.into())
}

fn text(object: &Value, field: &str) -> Option<String> {
    object
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn amount(object: &Value, field: &str) -> Result<u64> {
    object.get(field).and_then(Value::as_u64).ok_or_else(|| {
        bad(format!(
            "data.object.{field} must be a non-negative integer"
        ))
    })
}

/// `metadata.user_id` and `metadata.plan`, set by our purchase call; None when absent.
fn ours(object: &Value) -> Result<Option<(UserId, String)>> {
    let metadata = object.get("metadata");
    let user = metadata
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str);
    let plan = metadata.and_then(|m| m.get("plan")).and_then(Value::as_str);
    match (user, plan) {
        (Some(user), Some(plan)) => {
            let user = user
                .parse::<UserId>()
                .map_err(|_| bad("metadata.user_id must be a user id"))?;
            Ok(Some((user, plan.to_string())))
        }
        _ => Ok(None),
    }
}

pub fn parse(body: &[u8]) -> Result<Event> {
    let event: Value = serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let id = text(&event, "id")
        .filter(|id| !id.is_empty() && id.len() <= 255)
        .ok_or_else(|| bad("id is missing"))?;
    let kind = text(&event, "type").ok_or_else(|| bad("type is missing"))?;
    let object = event
        .get("data")
        .and_then(|d| d.get("object"))
        .ok_or_else(|| bad("data.object is missing"))?;
    let effect = match kind.as_str() {
        "payment_intent.succeeded" => match ours(object)? {
            None => Effect::Ignored("payment without proxyfleet metadata"),
            Some((user_id, plan)) => Effect::Paid(Paid {
                payment_id: text(object, "id").ok_or_else(|| bad("data.object.id is missing"))?,
                user_id,
                plan,
                amount: amount(object, "amount_received").or_else(|_| amount(object, "amount"))?,
                currency: text(object, "currency").unwrap_or_default(),
                customer: text(object, "customer"),
            }),
        },
        "checkout.session.completed" => match ours(object)? {
            None => Effect::Ignored("session without proxyfleet metadata"),
            Some(_) if text(object, "payment_status").as_deref() != Some("paid") => {
                Effect::Ignored("session not paid yet")
            }
            Some((user_id, plan)) => Effect::Paid(Paid {
                payment_id: text(object, "payment_intent")
                    .or_else(|| text(object, "id"))
                    .ok_or_else(|| bad("data.object.id is missing"))?,
                user_id,
                plan,
                amount: amount(object, "amount_total")?,
                currency: text(object, "currency").unwrap_or_default(),
                customer: text(object, "customer"),
            }),
        },
        "charge.refunded" => Effect::Refunded {
            payment_id: text(object, "payment_intent")
                .ok_or_else(|| bad("data.object.payment_intent is missing"))?,
            refunded: amount(object, "amount_refunded")?,
            amount: amount(object, "amount")?,
        },
        _ => Effect::Ignored("event type not handled"),
    };
    Ok(Event { id, kind, effect })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, object: Value) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"id": "evt_1", "object": "event", "type": kind, "data": {"object": object}}),
        )
        .unwrap()
    }

    #[test]
    fn payment_intents_and_sessions_name_the_same_payment() {
        let meta = json!({"user_id": "7", "plan": "pro-1m"});
        let pi = parse(&event(
            "payment_intent.succeeded",
            json!({"id": "pi_1", "amount": 499, "amount_received": 499, "currency": "usd", "metadata": meta}),
        ))
        .unwrap();
        let session = parse(&event(
            "checkout.session.completed",
            json!({"id": "cs_1", "payment_intent": "pi_1", "payment_status": "paid", "amount_total": 499, "currency": "usd", "metadata": meta}),
        ))
        .unwrap();
        let (Effect::Paid(a), Effect::Paid(b)) = (pi.effect, session.effect) else {
            panic!("both pay");
        };
        assert_eq!(
            (a.payment_id.as_str(), a.user_id, a.amount),
            ("pi_1", UserId(7), 499)
        );
        assert_eq!(b.payment_id, "pi_1");
    }

    #[test]
    fn foreign_and_unknown_events_are_ignored_and_broken_ones_refused() {
        let foreign = parse(&event(
            "payment_intent.succeeded",
            json!({"id": "pi_2", "amount": 5, "metadata": {}}),
        ))
        .unwrap();
        assert!(matches!(foreign.effect, Effect::Ignored(_)));
        let other = parse(&event("customer.created", json!({"id": "cus_1"}))).unwrap();
        assert!(matches!(other.effect, Effect::Ignored(_)));
        assert!(parse(b"[]").is_err());
        assert!(parse(&event("charge.refunded", json!({"id": "ch_1"}))).is_err());
        assert!(parse(&event(
            "payment_intent.succeeded",
            json!({"id": "pi_3", "amount": 5, "metadata": {"user_id": "x", "plan": "pro-1m"}})
        ))
        .is_err());
    }
}
