//! The dashboard's figures, each read the cheap way so the page stays fast at 1,000,000
//! users: proxies from the registry (thousands), users from the id counter, Pro users from the
//! expiry index, sign-ups per day by binary search on the id-ordered user tree (ids grow with
//! time), fleet load from the proxies' bounded load histories.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Config;
use crate::error::Result;
use crate::fleet::model::User;
use crate::fleet::users::NEXT_USER_ID;
use crate::mirror::Mirror;
use crate::queue::Queue;
use crate::registry::Proxy;
use crate::registry::Registry;
use crate::store::codec::u64_key;
use crate::store::Store;
use crate::store::TreeId;

const DAY_MS: u64 = 86_400_000;

/// What the figures are read from.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    pub registry: &'a Registry,
    pub queue: &'a Queue,
    pub mirror: &'a Mirror,
    pub blocked: &'a crate::distribution::blocked::BlockedSet,
    pub mail: &'a crate::mail::Mailer,
}

#[derive(Serialize, Default)]
pub struct RoleCount {
    pub proxies: u64,
    pub clients: u64,
    pub capacity: u64,
}

#[derive(Serialize)]
pub struct Summary {
    pub proxies: BTreeMap<String, RoleCount>,
    pub proxies_total: u64,
    /// Proxies that left in the last 24 h and are not back.
    pub proxies_down: super::down::Down,
    pub clients: u64,
    pub capacity: u64,
    pub users_total: u64,
    pub users_pro: u64,
    /// Users waiting for a fallback proxy: none had room (they are placed when room appears).
    pub users_unplaced: u64,
    /// Currency -> amount (minor units) paid this calendar month (UTC), less refunds.
    pub revenue_this_month: BTreeMap<String, i64>,
    pub payments_this_month: u64,
    pub queue: crate::queue::QueueCounts,
    pub mirror: crate::mirror::Report,
    /// Free space on the data disk, and whether writes are refused for lack of it.
    pub storage: crate::store::disk_guard::DiskStatus,
    /// The store's size on disk and its compactions.
    pub compaction: crate::store::CompactionStatus,
    /// What the operator should fix, most urgent first, each with the panel page to act on.
    pub attention: Vec<Attention>,
    /// The same, as sentences only (what the first dashboards showed).
    pub warnings: Vec<String>,
    /// Sending mail since the process started.
    pub mail: crate::mail::MailHealth,
}

/// One thing that needs the operator.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Attention {
    /// What it is about: `storage`, `proxy_down`, `over_capacity`, `blocked`, `dead_letters`,
    /// `unplaced_users`, `mirror`, `mail`, `backups`.
    pub kind: &'static str,
    pub text: String,
    /// The panel's page to act on it (`#/proxies/ams1`, `#/queues`), when there is one.
    pub link: Option<String>,
}

/// The most proxies named one by one for each kind of trouble; the rest are counted.
const NAMED_PER_KIND: usize = 5;
/// A mirror further behind than this is worth the operator's look.
const MIRROR_LAG_CHANGES: u64 = 1_000;
const MIRROR_LAG_SECS: f64 = 60.0;

/// A proxy carrying more clients than its capacity.
struct OverCapacity {
    name: String,
    clients: u32,
    capacity: u32,
}

fn role_name(proxy: &Proxy) -> String {
    serde_json::to_value(proxy.role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The first millisecond of the UTC month holding `now_ms`.
pub fn month_start_ms(now_ms: u64) -> u64 {
    use chrono::Datelike;
    chrono::DateTime::from_timestamp_millis(now_ms as i64)
        .and_then(|at| at.date_naive().with_day(1))
        .and_then(|first| first.and_hms_opt(0, 0, 0))
        .map_or(0, |first| first.and_utc().timestamp_millis() as u64)
}

pub fn summary(sources: &Sources<'_>, now_ms: u64) -> Result<Summary> {
    let mut proxies: BTreeMap<String, RoleCount> = BTreeMap::new();
    let (mut total, mut clients, mut capacity) = (0u64, 0u64, 0u64);
    let mut live = std::collections::HashSet::new();
    let mut over = Vec::new();
    for proxy in sources.registry.list(now_ms)? {
        live.insert(proxy.name.as_str().to_string());
        let entry = proxies.entry(role_name(&proxy)).or_default();
        let carried = u64::from(proxy.load.clients.unwrap_or(0));
        let room = u64::from(proxy.capacity.unwrap_or(sources.config.max_clients));
        if carried > room {
            over.push(OverCapacity {
                name: proxy.name.to_string(),
                clients: proxy.load.clients.unwrap_or(0),
                capacity: room as u32,
            });
        }
        entry.proxies += 1;
        entry.clients += carried;
        entry.capacity += room;
        total += 1;
        clients += carried;
        capacity += room;
    }
    // The history newest first, read only as far back as the window.
    let history = sources
        .store
        .scan_rev::<crate::registry::ProxyEvent>(TreeId::ProxyEvents, None)
        .take(super::down::MAX_EVENTS)
        .map_while(|item| item.ok().map(|(_, event)| event));
    let proxies_down = super::down::count(
        history,
        |name| live.contains(name),
        now_ms.saturating_sub(super::down::WINDOW_MS),
    );
    let users_total: u64 = sources.store.get(TreeId::Meta, NEXT_USER_ID)?.unwrap_or(0);
    // Pro users: expiry index entries (until_ms BE, user BE) from now on.
    let users_pro = sources
        .store
        .keys_from(TreeId::ProExpiry, u64_key(now_ms))
        .count() as u64;
    let month = month_start_ms(now_ms);
    let mut revenue: BTreeMap<String, i64> = BTreeMap::new();
    let mut payments_this_month = 0;
    for payment in sources
        .store
        .values::<crate::billing::payments::Payment>(TreeId::Payments)
    {
        let payment = payment?;
        if payment.created_ms >= month {
            payments_this_month += 1;
            *revenue.entry(payment.currency.clone()).or_default() +=
                payment.amount as i64 - payment.refunded as i64;
        }
    }
    let mut summary = Summary {
        proxies,
        proxies_total: total,
        proxies_down,
        clients,
        capacity,
        users_total,
        users_pro,
        users_unplaced: sources.store.len(TreeId::NeedsFallback) as u64,
        revenue_this_month: revenue,
        payments_this_month,
        // The workers' clock decides what is due.
        queue: sources.queue.counts(crate::clock::now_ms())?,
        mirror: sources.mirror.report(sources.store, now_ms)?,
        storage: sources.store.disk_status(),
        compaction: sources
            .store
            .compaction_status(crate::store::CompactPolicy::from_config(sources.config))?,
        attention: Vec::new(),
        warnings: Vec::new(),
        mail: sources.mail.health(),
    };
    // The furthest over first.
    over.sort_by_key(|o| std::cmp::Reverse(o.clients.saturating_sub(o.capacity)));
    summary.attention = attention(&summary, &over, sources, now_ms);
    summary.warnings = summary.attention.iter().map(|a| a.text.clone()).collect();
    Ok(summary)
}

fn item(kind: &'static str, text: String, link: Option<String>) -> Attention {
    Attention { kind, text, link }
}

/// The first `NAMED_PER_KIND` of `named` (text, link) as items of `kind`, then one line for the
/// rest of `total`, worded by `rest` from how many they are.
fn name_some(
    needs: &mut Vec<Attention>,
    kind: &'static str,
    named: impl Iterator<Item = (String, Option<String>)>,
    total: usize,
    rest: impl FnOnce(usize) -> (String, Option<String>),
) {
    for (text, link) in named.take(NAMED_PER_KIND) {
        needs.push(item(kind, text, link));
    }
    if total > NAMED_PER_KIND {
        let (text, link) = rest(total - NAMED_PER_KIND);
        needs.push(item(kind, text, link));
    }
}

fn proxy_page(name: &str) -> Option<String> {
    Some(format!("#/proxies/{name}"))
}

/// What needs the operator now, read from the summary, most urgent first: the store, proxies
/// down, over capacity and blocked (each named, up to `NAMED_PER_KIND`), dead letters, users
/// without a proxy, the mirror, mail, and settings that leave the fleet exposed.
fn attention(
    summary: &Summary,
    over: &[OverCapacity],
    sources: &Sources<'_>,
    now_ms: u64,
) -> Vec<Attention> {
    let mut needs = Vec::new();
    let disk = &summary.storage;
    if disk.storage_failed {
        needs.push(item(
            "storage",
            "The storage engine met a full disk: free space on the data disk, then restart \
             proxyfleet."
                .to_string(),
            None,
        ));
    } else if disk.writes_refused {
        needs.push(item(
            "storage",
            format!(
                "Storage full: the data disk has {} MB free, under min_free_disk_mb ({} MB); \
                 every write is refused until space is freed.",
                disk.free_bytes / 1_048_576,
                disk.min_free_bytes / 1_048_576
            ),
            None,
        ));
    }
    let down = &summary.proxies_down;
    let gone = down.proxies.iter().map(|proxy| {
        let how = match proxy.how {
            "expired" => "went silent",
            "revoked" => "was revoked",
            _ => "unregistered itself",
        };
        let minutes = now_ms.saturating_sub(proxy.at * 1000) / 60_000;
        let text = format!(
            "Proxy {} is down: it {how} {minutes} min ago ({}:{}).",
            proxy.name, proxy.ip, proxy.port
        );
        (text, proxy_page(&proxy.name))
    });
    let total_down = (down.expired + down.unregistered) as usize;
    name_some(&mut needs, "proxy_down", gone, total_down, |more| {
        let text = format!("{more} more proxies went down in the last 24 h: see Proxies down.");
        (text, Some("#/dashboard".into()))
    });
    let hot = over.iter().map(|proxy| {
        let text = format!(
            "Proxy {} carries {} clients, over its capacity of {}: rebalance, or add proxies.",
            proxy.name, proxy.clients, proxy.capacity
        );
        (text, proxy_page(&proxy.name))
    });
    name_some(&mut needs, "over_capacity", hot, over.len(), |more| {
        let text = format!("{more} more proxies carry more clients than their capacity.");
        (text, Some("#/rebalance".into()))
    });
    let blocked = sources.blocked.pairs();
    let named = blocked.iter().map(|(name, country)| {
        let text = format!(
            "Proxy {name} is blocked in {country}: its users there were moved; see who was \
             given it."
        );
        (text, proxy_page(name))
    });
    name_some(&mut needs, "blocked", named, blocked.len(), |more| {
        let text = format!("{more} more blockings (proxy, country): see Blocked.");
        (text, Some("#/dashboard".into()))
    });
    if summary.queue.dead > 0 {
        needs.push(item(
            "dead_letters",
            format!(
                "{} background task(s) failed for good (dead letters): retry them from Queues.",
                summary.queue.dead
            ),
            Some("#/queues".into()),
        ));
    }
    if summary.users_unplaced > 0 {
        needs.push(item(
            "unplaced_users",
            format!(
                "{} user(s) wait for a fallback proxy: no proxy had room (add proxies, or raise \
                 their capacity).",
                summary.users_unplaced
            ),
            Some("#/rebalance".into()),
        ));
    }
    let mirror = &summary.mirror;
    if mirror.enabled
        && (mirror.changes_behind > MIRROR_LAG_CHANGES || mirror.seconds_behind > MIRROR_LAG_SECS)
    {
        needs.push(item(
            "mirror",
            format!(
                "The Redis mirror is {} changes ({:.0} s) behind{}.",
                mirror.changes_behind,
                mirror.seconds_behind,
                mirror
                    .status
                    .last_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            None,
        ));
    }
    let mail = &summary.mail;
    if mail.failing_in_a_row > 0 {
        let minutes = mail
            .failing_since_ms
            .map_or(0, |since| now_ms.saturating_sub(since) / 60_000);
        needs.push(item(
            "mail",
            format!(
                "Mail is failing: {} tries in a row for {minutes} min; the last error: {}.",
                mail.failing_in_a_row,
                mail.last_error.as_deref().unwrap_or("unknown")
            ),
            Some("#/queues".into()),
        ));
    }
    if sources.config.backup_recipient.is_none() {
        needs.push(item(
            "backups",
            "Backups are written unencrypted, with every secret of the fleet in them: set \
             backup_recipient to an age recipient (age1...)."
                .to_string(),
            Some("#/settings".into()),
        ));
    }
    needs
}

/// The first user created at or after `at_ms` (ids grow with creation time).
fn first_id_since(sources: &Sources<'_>, at_ms: u64, last_id: u64) -> Result<u64> {
    let (mut low, mut high) = (1u64, last_id + 1);
    while low < high {
        let mid = low + (high - low) / 2;
        let created = sources
            .store
            .scan_from::<User>(TreeId::Users, u64_key(mid))
            .next()
            .transpose()?
            .map(|(_, user)| (user.id, user.created_ms));
        match created {
            Some((_, created_ms)) if created_ms < at_ms => low = mid + 1,
            _ => high = mid,
        }
    }
    Ok(low)
}

#[derive(Serialize)]
pub struct Series {
    /// Oldest first: (day start in unix seconds, users created that day).
    pub signups_per_day: Vec<(u64, u64)>,
    /// Oldest first: (unix seconds, clients reported by all proxies in that 30 s slot).
    pub fleet_clients: Vec<(u64, u64)>,
}

pub fn series(sources: &Sources<'_>, now_ms: u64, days: u64) -> Result<Series> {
    let last_id: u64 = sources.store.get(TreeId::Meta, NEXT_USER_ID)?.unwrap_or(0);
    let today = now_ms / DAY_MS * DAY_MS;
    let mut bounds = Vec::new();
    for back in (0..days).rev() {
        let start = today - back * DAY_MS;
        bounds.push((start, first_id_since(sources, start, last_id)?));
    }
    let signups_per_day = bounds
        .iter()
        .enumerate()
        .map(|(i, (start, first))| {
            let next = bounds.get(i + 1).map_or(last_id + 1, |(_, id)| *id);
            (start / 1000, next.saturating_sub(*first))
        })
        .collect();
    let mut slots: BTreeMap<u64, u64> = BTreeMap::new();
    for proxy in sources.registry.list(now_ms)? {
        for sample in sources.registry.load_history(&proxy.name)? {
            *slots.entry(sample.at_ms / 30_000 * 30).or_default() +=
                u64::from(sample.clients.unwrap_or(0));
        }
    }
    Ok(Series {
        signups_per_day,
        fleet_clients: slots.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_starts_on_the_first() {
        // 2026-11-25T00:21:00Z -> 2026-11-01T00:00:00Z
        assert_eq!(month_start_ms(1_795_566_060_000), 1_793_491_200_000);
        // 2024-02-29T12:00:00Z -> 2024-02-01
        assert_eq!(month_start_ms(1_709_208_000_000), 1_706_745_600_000);
        // The first itself.
        assert_eq!(month_start_ms(1_706_745_600_000), 1_706_745_600_000);
    }
}
