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

/// The time left until `until_ms`, as a mail's subject says it ("in 3 days", "in 1 day",
/// "in 5 hours"): whole days from a day up, else hours (rounded up, at least 1).
pub fn time_left(until_ms: u64, now_ms: u64) -> String {
    const HOUR_MS: u64 = 3_600_000;
    let hours = until_ms.saturating_sub(now_ms).div_ceil(HOUR_MS).max(1);
    let (count, unit) = if hours >= 24 {
        (hours / 24, "day")
    } else {
        (hours, "hour")
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("in {count} {unit}{plural}")
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

#[cfg(test)]
mod tests {
    use super::time_left;

    #[test]
    fn the_time_left_is_the_true_one() {
        let hour = 3_600_000;
        assert_eq!(time_left(72 * hour, 0), "in 3 days");
        assert_eq!(time_left(24 * hour, 0), "in 1 day", "a one-day gift");
        assert_eq!(time_left(47 * hour, 0), "in 1 day");
        assert_eq!(time_left(5 * hour - 1, 0), "in 5 hours");
        assert_eq!(time_left(1, 0), "in 1 hour");
        assert_eq!(time_left(0, 10), "in 1 hour", "never in 0");
    }
}
