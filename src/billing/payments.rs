//! Payments and the Stripe events that made them, applied in one transaction each: the event
//! id is recorded with its effect, so a redelivered (or concurrently delivered) event changes
//! nothing the second time, and the two events of one payment (PaymentIntent and Checkout
//! Session) grant its days once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::event::{Effect, Event, Paid};
use super::plans::Plan;
use super::pro;
use crate::fleet::model::{User, UserId};
use crate::fleet::policy::Candidate;
use crate::store::{TreeId, Tx, TxResult};

const TOTALS: &str = "billing.totals";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Succeeded,
    PartiallyRefunded,
    Refunded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    pub user_id: UserId,
    pub plan: String,
    pub amount: u64,
    pub currency: String,
    pub customer: Option<String>,
    /// Days of Pro granted (0 when the plan or the user was unknown: the admin sees it).
    pub days: u64,
    pub refunded: u64,
    pub days_revoked: u64,
    pub status: PaymentStatus,
    pub created_ms: u64,
    pub event_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessedEvent {
    pub kind: String,
    pub received_ms: u64,
    pub outcome: String,
}

/// Money per currency, kept up to date in the same transactions (the admin list's totals).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub payments: u64,
    pub amount: u64,
    pub refunded: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Granted { user_id: UserId, days: u64 },
    Revoked { user_id: UserId, days: u64 },
    Duplicate,
    Ignored(String),
}

impl Outcome {
    /// A short name for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Granted { .. } => "granted",
            Outcome::Revoked { .. } => "revoked",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored(_) => "ignored",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Outcome::Granted { user_id, days } => format!("granted {days} days to user {user_id}"),
            Outcome::Revoked { user_id, days } => format!("revoked {days} days of user {user_id}"),
            Outcome::Duplicate => "already processed".into(),
            Outcome::Ignored(why) => format!("ignored: {why}"),
        }
    }
}

pub fn user_payment_key(user_id: UserId, payment_id: &str) -> Vec<u8> {
    let mut key = user_id.key().to_vec();
    key.extend_from_slice(payment_id.as_bytes());
    key
}

fn add_to_totals(tx: &Tx, currency: &str, change: impl Fn(&mut Totals)) -> TxResult<()> {
    let mut totals: BTreeMap<String, Totals> = tx.get(TreeId::Meta, TOTALS)?.unwrap_or_default();
    change(totals.entry(currency.to_string()).or_default());
    tx.put(TreeId::Meta, TOTALS, &totals)
}

/// What pro needs besides the event: the plans, and where pro proxies can be found.
pub struct ProContext<'a> {
    pub plans: &'a [Plan],
    /// Loads include the pro proxies given earlier in the same batch.
    pub candidates: &'a mut Vec<Candidate>,
    pub proxies_per_user: usize,
}

/// Applies one event, once. Returns what it did, and the user it changed if any.
pub fn apply(
    tx: &Tx,
    event: &Event,
    context: &mut ProContext,
    now_ms: u64,
) -> TxResult<(Outcome, Option<User>)> {
    if tx.contains(TreeId::StripeEvents, &event.id)? {
        return Ok((Outcome::Duplicate, None));
    }
    let (outcome, user) = match &event.effect {
        Effect::Paid(paid) => pay(tx, paid, &event.id, context, now_ms)?,
        Effect::Refunded {
            payment_id,
            refunded,
            amount,
        } => refund(tx, payment_id, *refunded, *amount, now_ms)?,
        Effect::Ignored(why) => (Outcome::Ignored((*why).to_string()), None),
    };
    let record = ProcessedEvent {
        kind: event.kind.clone(),
        received_ms: now_ms,
        outcome: outcome.describe(),
    };
    tx.put(TreeId::StripeEvents, &event.id, &record)?;
    Ok((outcome, user))
}

fn pay(
    tx: &Tx,
    paid: &Paid,
    event_id: &str,
    context: &mut ProContext,
    now_ms: u64,
) -> TxResult<(Outcome, Option<User>)> {
    if tx.contains(TreeId::Payments, &paid.payment_id)? {
        return Ok((
            Outcome::Ignored(format!("payment {} already counted", paid.payment_id)),
            None,
        ));
    }
    let plan = context.plans.iter().find(|p| p.id == paid.plan);
    let user: Option<User> = tx.get(TreeId::Users, paid.user_id.key())?;
    let (outcome, days, user) = match (plan, user) {
        (Some(plan), Some(mut user)) => {
            pro::extend(
                tx,
                &mut user,
                plan.days,
                &mut *context.candidates,
                context.proxies_per_user,
                now_ms,
            )?;
            let outcome = Outcome::Granted {
                user_id: user.id,
                days: plan.days,
            };
            (outcome, plan.days, Some(user))
        }
        (None, _) => (
            Outcome::Ignored(format!("unknown plan {:?}", paid.plan)),
            0,
            None,
        ),
        (_, None) => (
            Outcome::Ignored(format!("unknown user {}", paid.user_id)),
            0,
            None,
        ),
    };
    let payment = Payment {
        id: paid.payment_id.clone(),
        user_id: paid.user_id,
        plan: paid.plan.clone(),
        amount: paid.amount,
        currency: paid.currency.clone(),
        customer: paid.customer.clone(),
        days,
        refunded: 0,
        days_revoked: 0,
        status: PaymentStatus::Succeeded,
        created_ms: now_ms,
        event_id: event_id.to_string(),
    };
    tx.put(TreeId::Payments, &payment.id, &payment)?;
    tx.put_marker(
        TreeId::UserPayments,
        user_payment_key(payment.user_id, &payment.id),
    )?;
    add_to_totals(tx, &payment.currency, |t| {
        t.payments += 1;
        t.amount += payment.amount;
    })?;
    Ok((outcome, user))
}

fn refund(
    tx: &Tx,
    payment_id: &str,
    refunded: u64,
    amount: u64,
    now_ms: u64,
) -> TxResult<(Outcome, Option<User>)> {
    let Some(mut payment) = tx.get::<Payment>(TreeId::Payments, payment_id)? else {
        return Ok((
            Outcome::Ignored(format!("unknown payment {payment_id}")),
            None,
        ));
    };
    // Stripe reports the running total refunded: the days taken back follow the same share.
    let refunded = refunded.min(amount);
    let share_days = (payment.days * refunded)
        .checked_div(amount)
        .unwrap_or(payment.days);
    let more_days = share_days.saturating_sub(payment.days_revoked);
    let more_money = refunded.saturating_sub(payment.refunded);
    payment.refunded = payment.refunded.max(refunded);
    payment.days_revoked += more_days;
    payment.status = if payment.refunded >= amount {
        PaymentStatus::Refunded
    } else {
        PaymentStatus::PartiallyRefunded
    };
    tx.put(TreeId::Payments, &payment.id, &payment)?;
    add_to_totals(tx, &payment.currency, |t| t.refunded += more_money)?;
    let user = match tx.get::<User>(TreeId::Users, payment.user_id.key())? {
        Some(mut user) if more_days > 0 => {
            pro::shorten(tx, &mut user, more_days, now_ms)?;
            Some(user)
        }
        _ => None,
    };
    Ok((
        Outcome::Revoked {
            user_id: payment.user_id,
            days: more_days,
        },
        user,
    ))
}

pub fn totals(store: &crate::store::Store) -> crate::error::Result<BTreeMap<String, Totals>> {
    Ok(store.get(TreeId::Meta, TOTALS)?.unwrap_or_default())
}
