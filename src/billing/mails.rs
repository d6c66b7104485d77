//! The mails the Pro tier sends, queued in the caller's transaction (see `crate::mail`).

use serde_json::Value;

use super::event::Paid;
use super::plans::Plan;
use crate::fleet::model::User;
use crate::queue::Queue;
use crate::store::{Tx, TxResult};

/// Queues `template` to the user, once per `event`, with the user's email and end of Pro added
/// to `data`.
pub fn to_user(
    tx: &Tx,
    queue: &Queue,
    user: &User,
    template: &str,
    event: &str,
    mut data: Value,
    now_ms: u64,
) -> TxResult<()> {
    if let Some(fields) = data.as_object_mut() {
        fields.insert("email".into(), user.email.as_str().into());
        let until = user.pro_until_ms.map(crate::mail::format_time);
        fields.insert("pro_until".into(), until.into());
    }
    crate::mail::queue_in(
        tx,
        queue,
        user.email.as_str(),
        template,
        &data,
        event,
        now_ms,
    )
    .map(|_| ())
}

/// The receipt of a payment, once per payment.
pub fn receipt(
    tx: &Tx,
    queue: &Queue,
    plans: &[Plan],
    user: &User,
    paid: &Paid,
    now_ms: u64,
) -> TxResult<()> {
    let plan = plans.iter().find(|p| p.id == paid.plan);
    let data = serde_json::json!({
        "payment_id": paid.payment_id,
        "plan_name": plan.map_or(paid.plan.as_str(), |p| p.name.as_str()),
        "days": plan.map_or(0, |p| p.days),
        // Minor units shown as major ones with two decimals (zero-decimal currencies such as
        // JPY would need their own rule).
        "amount": format!("{}.{:02}", paid.amount / 100, paid.amount % 100),
        "currency": paid.currency.to_uppercase(),
        "paid_at": crate::mail::format_time(now_ms),
    });
    let event = format!("receipt:{}", paid.payment_id);
    to_user(tx, queue, user, "payment_receipt", &event, data, now_ms)
}
