//! The Pro tier: plans, Stripe payments (webhooks verified as Stripe documents them), pro
//! time with its pro proxies, and the sweeper that ends Pro when it runs out.

pub mod codes;
pub mod devices;
pub mod event;
mod mails;
pub mod payments;
pub mod plans;
pub mod pro;
pub mod purchase;
pub mod referrals;
pub mod signature;
pub mod stripe_api;

use std::sync::Arc;

use crate::config::{Config, Secret};
use crate::distribution::notify::ConfigNotifier;
use crate::error::{Error, Result};
use crate::fleet::model::{User, UserId};
use crate::fleet::policy::Candidate;
use crate::queue::Queue;
use crate::registry::{Registry, Role};
use crate::store::codec::{key_u64, u64_key};
use crate::store::combiner::Combiner;
use crate::store::{abort, Store, TreeId};
use payments::{Outcome, Payment, ProContext};
use plans::Plan;

fn expiring_event(user: u64, until_ms: u64) -> String {
    format!("pro_expiring:{user}:{until_ms}")
}

/// One webhook event to apply: the event, the pro proxies it may assign, the time.
type WebhookJob = (event::Event, Arc<Vec<Candidate>>, u64);

/// Most webhook events applied in one transaction.
const WEBHOOKS_PER_TRANSACTION: usize = 256;

fn webhook_combiner(
    store: Store,
    queue: Queue,
    settings: Arc<BillingSettings>,
) -> Combiner<WebhookJob, (Outcome, Option<User>)> {
    Combiner::start(
        store,
        WEBHOOKS_PER_TRANSACTION,
        move |tx, jobs: &[WebhookJob]| {
            // The pro proxies given by earlier events of the batch count in the loads the
            // later ones see (otherwise a batch of new Pro users lands on one proxy).
            let mut candidates: Option<Vec<Candidate>> = None;
            jobs.iter()
                .map(|(event, snapshot, now_ms)| {
                    let candidates = match &mut candidates {
                        Some(candidates) => candidates,
                        None => candidates.insert(pro::with_links_in(tx, snapshot)?),
                    };
                    let mut context = ProContext {
                        plans: &settings.plans,
                        candidates,
                        proxies_per_user: settings.pro_proxies_per_user,
                    };
                    // Events of one batch are applied in order, each seeing the ones before it:
                    // a duplicate within the batch is still "already processed".
                    let (outcome, user) = payments::apply(tx, event, &mut context, *now_ms)?;
                    if let (Outcome::Granted { .. }, Some(user), event::Effect::Paid(paid)) =
                        (&outcome, &user, &event.effect)
                    {
                        mails::receipt(tx, &queue, &settings.plans, user, paid, *now_ms)?;
                    }
                    Ok((outcome, user))
                })
                .collect()
        },
    )
}

/// Users are warned this long before their Pro ends.
const PRO_WARNING_MS: u64 = 3 * 86_400_000;

/// Users changed per transaction by the sweeper and by a pro proxy's departure.
const EXPIRED_PER_TRANSACTION: usize = 200;

#[derive(Debug, Clone)]
pub struct BillingSettings {
    pub plans: Vec<Plan>,
    pub pro_proxies_per_user: usize,
    /// Users a pro proxy carries before it counts as full (pro proxies carry fewer).
    pub pro_max_clients: u32,
    pub webhook_secret: Option<Secret>,
    pub devices_per_pro_user: usize,
    pub devices_per_free_user: usize,
    /// Pro days the redeemer and the owner of a referral code each get.
    pub referral_bonus_days: u64,
    pub checkout_success_url: Option<String>,
    pub checkout_cancel_url: Option<String>,
}

impl BillingSettings {
    pub fn from_config(config: &Config) -> Result<BillingSettings> {
        Ok(BillingSettings {
            plans: plans::effective(&config.plans)?,
            pro_proxies_per_user: config.pro_proxies_per_user,
            pro_max_clients: config.pro_max_clients,
            webhook_secret: config.stripe_webhook_secret.clone(),
            devices_per_pro_user: config.devices_per_pro_user,
            devices_per_free_user: config.devices_per_free_user,
            referral_bonus_days: config.referral_bonus_days,
            checkout_success_url: config.checkout_success_url.clone(),
            checkout_cancel_url: config.checkout_cancel_url.clone(),
        })
    }
}

/// What choosing pro proxies needs of a registered pro proxy.
struct ProProxy {
    name: crate::registry::model::ProxyName,
    limit: u32,
    clients: u32,
    expires_ms: u64,
}

/// The pro proxies and the registry revision they were read at.
type ProProxies = (u64, Arc<Vec<ProProxy>>);

#[derive(Clone)]
pub struct Billing {
    store: Store,
    queue: Queue,
    registry: Registry,
    notifier: ConfigNotifier,
    /// Pro proxies as last read, with the registry revision they were read at.
    pro_proxies: Arc<std::sync::Mutex<Option<ProProxies>>>,
    /// Webhook events applied in shared transactions.
    webhooks: Combiner<WebhookJob, (Outcome, Option<User>)>,
    /// Stripe's API, when `stripe_secret_key` is set.
    stripe: Option<stripe_api::StripeApi>,
    pub settings: Arc<BillingSettings>,
}

impl Billing {
    pub fn new(
        store: Store,
        queue: Queue,
        registry: Registry,
        notifier: ConfigNotifier,
        stripe: Option<stripe_api::StripeApi>,
        settings: BillingSettings,
    ) -> Billing {
        let settings = Arc::new(settings);
        let webhooks = webhook_combiner(store.clone(), queue.clone(), settings.clone());
        Billing {
            pro_proxies: Arc::default(),
            webhooks,
            stripe,
            store,
            queue,
            registry,
            notifier,
            settings,
        }
    }

    /// The live pro proxies, from the registry only when a proxy record was written since the
    /// last read (a fleet of thousands is not decoded again for every payment).
    fn pro_proxies(&self, now_ms: u64) -> Result<Arc<Vec<ProProxy>>> {
        let revision = self.registry.revision();
        let mut cached = self.pro_proxies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, list)) = cached.as_ref() {
            if *seen == revision {
                return Ok(list.clone());
            }
        }
        let list: Vec<ProProxy> = self
            .registry
            .list(now_ms)?
            .into_iter()
            .filter(|p| p.role == Role::Pro)
            .map(|p| ProProxy {
                name: p.name.clone(),
                limit: p.capacity.unwrap_or(self.settings.pro_max_clients),
                clients: p.load.clients.unwrap_or(0),
                expires_ms: p.expires_ms,
            })
            .collect();
        let list = Arc::new(list);
        *cached = Some((revision, list.clone()));
        Ok(list)
    }

    /// Live pro proxies with their load: max(reported clients, linked pro users).
    pub fn candidates(&self, now_ms: u64) -> Result<Vec<Candidate>> {
        let mut candidates = Vec::new();
        for proxy in self.pro_proxies(now_ms)?.iter() {
            if proxy.expires_ms <= now_ms {
                continue;
            }
            let linked: u64 = self.store.get(TreeId::ProCounts, &proxy.name)?.unwrap_or(0);
            candidates.push(Candidate {
                limit: proxy.limit,
                load: u64::from(proxy.clients).max(linked),
                floor: None, // Pro proxies go to paying users, whatever their level
                name: proxy.name.clone(),
            });
        }
        Ok(candidates)
    }

    /// Verifies and applies one Stripe webhook delivery. Durable before it returns.
    pub async fn webhook(
        &self,
        signature_header: Option<&str>,
        body: &[u8],
        now_ms: u64,
    ) -> Result<Outcome> {
        let secret = self.settings.webhook_secret.as_ref().ok_or_else(|| {
            Error::Unavailable("billing is off: stripe_webhook_secret is not configured".into())
        })?;
        let header = signature_header.ok_or_else(|| {
            Error::bad_request(
                "invalid_signature",
                "the Stripe-Signature header is missing",
            )
        })?;
        let now_secs = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        signature::verify(secret.expose(), header, body, now_secs)
            .map_err(|e| Error::bad_request("invalid_signature", e.message()))?;
        let event = event::parse(body)?;
        let candidates = Arc::new(self.candidates(now_ms)?);
        let (id, kind) = (event.id.clone(), event.kind.clone());
        // Concurrent deliveries share one transaction and one fsync (they all touch the same
        // counters, so separate transactions would mostly retry each other).
        let (outcome, user) = self.webhooks.submit((event, candidates, now_ms)).await?;
        if let Some(user) = user {
            self.notifier.notify(&[user.id]);
            self.queue.wake();
        }
        tracing::info!(event = %id, kind = %kind, outcome = %outcome.describe(), "stripe event");
        Ok(outcome)
    }

    /// Gives a user `days` of Pro (an operator's gift), with pro proxies if they had none.
    pub async fn gift(&self, id: UserId, days: u64, now_ms: u64) -> Result<User> {
        if !(1..=3650).contains(&days) {
            return Err(Error::invalid(
                "invalid_days",
                "days must be from 1 to 3650",
            ));
        }
        let candidates = self.candidates(now_ms)?;
        let per_user = self.settings.pro_proxies_per_user;
        let user = self.store.transaction(|tx| {
            let mut candidates = candidates.clone();
            let Some(mut user) = tx.get::<User>(TreeId::Users, id.key())? else {
                return abort(Error::NotFound(format!("user {id}")));
            };
            if let Err(disabled) = user.check_enabled() {
                return abort(disabled);
            }
            pro::extend(tx, &mut user, days, &mut candidates, per_user, now_ms)?;
            Ok(user)
        })?;
        self.store.durable().await?;
        self.notifier.notify(&[id]);
        Ok(user)
    }

    /// Ends Pro for every user whose time ran out by `now_ms`. Returns how many.
    pub async fn expire_due(&self, now_ms: u64) -> Result<usize> {
        let mut due: Vec<UserId> = Vec::new();
        for key in self.store.keys_from(TreeId::ProExpiry, [0u8; 16]) {
            let key = key?;
            let (until, user) = (key_u64(&key[..]), key.get(8..).and_then(key_u64));
            match (until, user) {
                (Some(until), Some(user)) if until <= now_ms => due.push(UserId(user)),
                _ => break,
            }
        }
        let mut expired = Vec::new();
        for chunk in due.chunks(EXPIRED_PER_TRANSACTION) {
            let changed = self.store.transaction(|tx| {
                let mut changed = Vec::new();
                for id in chunk {
                    if let Some(mut user) = tx.get::<User>(TreeId::Users, id.key())? {
                        let until = user.pro_until_ms.unwrap_or(0);
                        if pro::expire(tx, &mut user, now_ms)? {
                            self.mail_in(
                                tx,
                                &user,
                                "pro_expired",
                                &format!("pro_expired:{id}:{until}"),
                                serde_json::json!({}),
                                now_ms,
                            )?;
                            changed.push(*id);
                        }
                    }
                }
                Ok(changed)
            })?;
            expired.extend(changed);
        }
        if !expired.is_empty() {
            self.store.durable().await?;
            self.notifier.notify(&expired);
            self.queue.wake();
        }
        Ok(expired.len())
    }

    /// Queues `template` to the user in the caller's transaction, once per `event`.
    fn mail_in(
        &self,
        tx: &crate::store::Tx,
        user: &User,
        template: &str,
        event: &str,
        data: serde_json::Value,
        now_ms: u64,
    ) -> crate::store::TxResult<()> {
        mails::to_user(tx, &self.queue, user, template, event, data, now_ms)
    }

    /// Warns users whose Pro ends within `PRO_WARNING_MS`, once per end date. Every sweep
    /// reads the whole window of the expiry index (a Pro granted or shortened into it is seen
    /// too); the mail's event key (`pro_expiring:<user>:<end>`) makes the notice once, and is
    /// checked before the transaction so the sweep only writes for new ones.
    pub async fn warn_expiring(&self, now_ms: u64) -> Result<usize> {
        let horizon = now_ms + PRO_WARNING_MS;
        let mut due: Vec<(u64, u64)> = Vec::new();
        for key in self.store.keys_from(
            TreeId::ProExpiry,
            crate::store::codec::pair_key(now_ms + 1, 0),
        ) {
            let key = key?;
            match (key_u64(&key[..]), key.get(8..).and_then(key_u64)) {
                (Some(until), Some(user)) if until <= horizon => {
                    let task_key =
                        format!("{}:{}", crate::mail::MAIL_SEND, expiring_event(user, until));
                    if !self.store.contains(TreeId::TaskKeys, task_key)? {
                        due.push((until, user));
                    }
                }
                _ => break,
            }
        }
        if due.is_empty() {
            return Ok(0);
        }
        let warned = self.store.transaction(|tx| {
            let mut warned = 0;
            for (until, id) in &due {
                if let Some(user) = tx.get::<User>(TreeId::Users, u64_key(*id))? {
                    // Only if this is still the user's end of Pro (not extended meanwhile).
                    if user.pro_until_ms == Some(*until) {
                        let event = expiring_event(*id, *until);
                        let left = mails::time_left(*until, now_ms);
                        self.mail_in(
                            tx,
                            &user,
                            "pro_expiring",
                            &event,
                            serde_json::json!({ "time_left": left }),
                            now_ms,
                        )?;
                        warned += 1;
                    }
                }
            }
            Ok(warned)
        })?;
        self.store.durable().await?;
        self.queue.wake();
        Ok(warned)
    }

    /// The `fleet.proxy_changed` task, Pro side: if the proxy left or is no longer a pro
    /// proxy (drained, retired, given another role), its Pro users get another in its place.
    pub async fn proxy_changed(&self, name: &str, now_ms: u64) -> Result<()> {
        let still_pro = self
            .store
            .get::<crate::registry::Proxy>(TreeId::Proxies, name)?
            .is_some_and(|p| p.role == Role::Pro);
        if still_pro {
            return Ok(());
        }
        let users = crate::fleet::links::linked_users(&self.store, TreeId::ProLinks, name)?;
        if users.is_empty() {
            return Ok(());
        }
        let mut candidates = self.candidates(now_ms)?;
        let per_user = self.settings.pro_proxies_per_user;
        for chunk in users.chunks(EXPIRED_PER_TRANSACTION) {
            // Each replacement counts in the loads the next one sees.
            candidates = self.store.transaction(|tx| {
                let mut candidates = candidates.clone();
                for id in chunk {
                    if let Some(mut user) = tx.get::<User>(TreeId::Users, id.key())? {
                        pro::replace_departed(
                            tx,
                            &mut user,
                            name,
                            &mut candidates,
                            per_user,
                            now_ms,
                        )?;
                    }
                }
                Ok(candidates)
            })?;
            self.store.durable().await?;
            self.notifier.notify(chunk);
        }
        Ok(())
    }

    /// A user's payments, newest first.
    pub fn payments_of(&self, user_id: UserId) -> Result<Vec<Payment>> {
        let mut found = Vec::new();
        for key in self
            .store
            .keys_with_prefix(TreeId::UserPayments, user_id.key())
        {
            let key = key?;
            let id = String::from_utf8_lossy(&key[8..]).into_owned();
            if let Some(payment) = self.store.get::<Payment>(TreeId::Payments, &id)? {
                found.push(payment);
            }
        }
        found.sort_by_key(|p| std::cmp::Reverse(p.created_ms));
        Ok(found)
    }

    /// All payments in id order, `limit` after `after` (a page of the admin list).
    pub fn payments(&self, after: Option<&str>, limit: usize) -> Result<Vec<Payment>> {
        let start = after.map(|a| format!("{a}\0")).unwrap_or_default();
        self.store
            .scan_from::<Payment>(TreeId::Payments, start.as_bytes())
            .take(limit)
            .map(|item| item.map(|(_, payment)| payment))
            .collect()
    }

    pub fn totals(&self) -> Result<std::collections::BTreeMap<String, payments::Totals>> {
        payments::totals(&self.store)
    }
}
