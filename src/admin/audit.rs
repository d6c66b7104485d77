//! The audit trail: who (admin account or "admin-token"), what (method, path, parameters,
//! outcome), from where and when. Every mutating admin request is recorded once it has been
//! answered; logins and logouts too.
//!
//! Failed and throttled logins are what an attacker controls, so they never write one record
//! per attempt: `LoginFailures` keeps one entry per (client address, minute) with a count, and
//! rewrites it at most once a second. A flood of guesses costs a few records a minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// The actor name of requests made with the admin bearer token.
pub const TOKEN_ACTOR: &str = "admin-token";
/// The actor name of requests made with the control cookie (`proxyfleet admin ...`).
pub const CLI_ACTOR: &str = "admin-cli";

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::codec::u64_key;
use crate::store::combiner::Combiner;
use crate::store::{Store, TreeId, Tx, TxResult};

const NEXT_AUDIT_ID: &str = "audit.next_id";
/// Parameters longer than this are cut (the trail is for people to read, not a body archive).
const MAX_PARAMS: usize = 2048;
/// Distinct addresses that get their own failed-login entry in one minute; beyond, they share
/// one entry (no address), so spreading a flood over many addresses does not multiply records.
const MAX_FAILURE_KEYS_PER_MINUTE: usize = 1_000;
/// Distinct usernames named in one failed-login entry.
const MAX_NAMES_PER_ENTRY: usize = 3;
/// An open failed-login entry is rewritten with its new count at most this often.
const REWRITE_EVERY_MS: u64 = 1_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: u64,
    pub at_ms: u64,
    pub actor: String,
    /// What was done, e.g. `POST /api/v1/admin/users/7/pro`, `login`, `login_failed`.
    pub action: String,
    /// HTTP status of the answer (0 for events that are not requests).
    pub status: u16,
    pub client_ip: Option<String>,
    /// How many events this entry stands for (more than 1 only for failed logins).
    pub count: u64,
    /// The request's parameters: its query and JSON body, secrets masked.
    pub params: Option<String>,
}

/// What to record about one event.
pub struct Event<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub status: u16,
    pub client_ip: Option<IpAddr>,
    pub params: Option<String>,
}

/// Appends an entry; the caller makes it durable with the store's group commit.
pub fn record(store: &Store, event: Event<'_>, now_ms: u64) -> Result<AuditEntry> {
    let draft = Draft::of(event, now_ms);
    store.transaction(|tx| draft.append_in(tx))
}

/// An entry before it has its number.
struct Draft(AuditEntry);

impl Draft {
    fn of(event: Event<'_>, now_ms: u64) -> Draft {
        Draft(AuditEntry {
            id: 0,
            at_ms: now_ms,
            actor: event.actor.to_string(),
            action: event.action.to_string(),
            status: event.status,
            client_ip: event.client_ip.map(|ip| ip.to_string()),
            count: 1,
            params: event.params.map(cut_params),
        })
    }

    fn append_in(&self, tx: &Tx) -> TxResult<AuditEntry> {
        let id = tx.next(NEXT_AUDIT_ID)?;
        let entry = AuditEntry {
            id,
            ..self.0.clone()
        };
        tx.put(TreeId::Audit, u64_key(id), &entry)?;
        Ok(entry)
    }
}

/// Most entries appended in one transaction.
const ENTRIES_PER_TRANSACTION: usize = 256;

/// The trail of answered admin requests. Concurrent requests share one transaction and one
/// flush: each admin write (a sign-up through `POST /api/v1/admin/users`, say) would otherwise
/// pay for a second transaction of its own after its answer.
#[derive(Clone)]
pub struct Trail {
    appends: Combiner<Draft, AuditEntry>,
}

impl Trail {
    /// Starts the trail's writer (inside a tokio runtime).
    pub fn start(store: Store) -> Trail {
        Trail {
            appends: Combiner::start(store, ENTRIES_PER_TRANSACTION, |tx, drafts: &[Draft]| {
                drafts.iter().map(|draft| draft.append_in(tx)).collect()
            }),
        }
    }

    /// Appends an entry; resolves once it is on disk.
    pub async fn record(&self, event: Event<'_>, now_ms: u64) -> Result<AuditEntry> {
        self.appends.submit(Draft::of(event, now_ms)).await
    }
}

fn cut_params(mut params: String) -> String {
    if params.len() > MAX_PARAMS {
        let mut end = MAX_PARAMS;
        while !params.is_char_boundary(end) {
            end -= 1;
        }
        params.truncate(end);
        params.push('…');
    }
    params
}

/// Why a login did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Wrong username, password or code.
    Refused,
    /// Too many failures: refused before checking.
    Throttled,
}

/// One (address, minute) entry being counted.
struct OpenEntry {
    entry: AuditEntry,
    refused: u64,
    throttled: u64,
    written_ms: u64,
    dirty: bool,
}

/// The failed-login entries of the current minute, in memory; each is in the store too.
#[derive(Default)]
pub struct LoginFailures {
    open: Mutex<HashMap<Option<IpAddr>, OpenEntry>>,
}

impl LoginFailures {
    /// Counts a failed login of `username` (already cut to a printable name) from `ip`.
    pub fn count(
        &self,
        store: &Store,
        username: &str,
        ip: Option<IpAddr>,
        why: LoginFailure,
        now_ms: u64,
    ) -> Result<()> {
        let minute = now_ms / 60_000;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut stale = Vec::new();
        open.retain(|_, e| {
            let keep = e.entry.at_ms / 60_000 == minute;
            if !keep && e.dirty {
                stale.push(e.entry.clone());
            }
            keep
        });
        for entry in stale {
            store.put(TreeId::Audit, u64_key(entry.id), &entry)?;
        }
        let key = if open.contains_key(&ip) || open.len() < MAX_FAILURE_KEYS_PER_MINUTE {
            ip
        } else {
            None
        };
        let status = match why {
            LoginFailure::Refused => 401,
            LoginFailure::Throttled => 429,
        };
        if let Some(e) = open.get_mut(&key) {
            match why {
                LoginFailure::Refused => e.refused += 1,
                LoginFailure::Throttled => e.throttled += 1,
            }
            e.entry.count += 1;
            e.entry.status = status;
            e.entry.params = Some(format!("refused={} throttled={}", e.refused, e.throttled));
            let names = e.entry.actor.split(',').count();
            if names < MAX_NAMES_PER_ENTRY && !e.entry.actor.split(',').any(|n| n == username) {
                e.entry.actor = format!("{},{username}", e.entry.actor);
            }
            e.dirty = true;
            if now_ms.saturating_sub(e.written_ms) >= REWRITE_EVERY_MS {
                store.put(TreeId::Audit, u64_key(e.entry.id), &e.entry)?;
                e.written_ms = now_ms;
                e.dirty = false;
            }
            return Ok(());
        }
        let (refused, throttled) = match why {
            LoginFailure::Refused => (1, 0),
            LoginFailure::Throttled => (0, 1),
        };
        let entry = record(
            store,
            Event {
                actor: username,
                action: "login_failed",
                status,
                client_ip: key,
                params: Some(format!("refused={refused} throttled={throttled}")),
            },
            now_ms,
        )?;
        open.insert(
            key,
            OpenEntry {
                entry,
                refused,
                throttled,
                written_ms: now_ms,
                dirty: false,
            },
        );
        Ok(())
    }

    /// Writes the counts not yet written and forgets entries of past minutes (periodic upkeep).
    pub fn flush(&self, store: &Store, now_ms: u64) -> Result<()> {
        let minute = now_ms / 60_000;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for e in open.values_mut().filter(|e| e.dirty) {
            store.put(TreeId::Audit, u64_key(e.entry.id), &e.entry)?;
            e.written_ms = now_ms;
            e.dirty = false;
        }
        open.retain(|_, e| e.entry.at_ms / 60_000 == minute);
        Ok(())
    }
}

/// Removes entries older than `keep_ms`, oldest first, at most `batch` per call (periodic
/// upkeep). Ids grow with time, so the oldest entries are the first keys.
pub fn prune(store: &Store, keep_ms: u64, now_ms: u64, batch: usize) -> Result<usize> {
    let cutoff = now_ms.saturating_sub(keep_ms);
    let mut old = Vec::new();
    for item in store.scan_from::<AuditEntry>(TreeId::Audit, []) {
        let (key, entry) = item?;
        if entry.at_ms >= cutoff || old.len() == batch {
            break;
        }
        old.push(key);
    }
    store.transaction(|tx| {
        for key in &old {
            tx.remove(TreeId::Audit, key)?;
        }
        Ok(old.len())
    })
}

/// What an entry acted on, named from its path: `user 7` for
/// `POST /api/v1/admin/users/7/pro`, `proxy ams1`, `account ops`, `plan 3`, `probe IR-1`.
pub fn target_of(action: &str) -> Option<String> {
    const KINDS: [(&str, &str); 6] = [
        ("users", "user"),
        ("proxies", "proxy"),
        ("accounts", "account"),
        ("plans", "plan"),
        ("probes", "probe"),
        ("tasks", "task"),
    ];
    let path = action.split_whitespace().nth(1)?;
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segments.windows(2).rev().find_map(|pair| {
        let (_, kind) = KINDS.iter().find(|(plural, _)| *plural == pair[0])?;
        Some(format!("{kind} {}", pair[1]))
    })
}

/// An entry as the API shows it: with its target.
#[derive(Debug, Serialize)]
pub struct AuditView {
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub target: Option<String>,
}

/// Newest first, `limit` entries before id `before`, optionally only those whose actor,
/// action, target or parameters contain `q`. Returns the entries and the cursor of the next
/// page: a filtered page reads at most 100,000 entries, and when it stops there, the cursor
/// is the last entry it read, so the search goes on from there.
pub fn page(
    store: &Store,
    before: Option<u64>,
    limit: usize,
    q: Option<&str>,
) -> Result<(Vec<AuditView>, Option<u64>)> {
    let from = before.map(u64_key);
    let mut entries = Vec::with_capacity(limit);
    let mut budget = 100_000usize;
    let mut last_read = None;
    for item in store.scan_rev::<AuditEntry>(TreeId::Audit, from.as_ref().map(|k| &k[..])) {
        if entries.len() == limit || budget == 0 {
            return Ok((entries, last_read));
        }
        let (_, entry) = item?;
        budget -= 1;
        last_read = Some(entry.id);
        let target = target_of(&entry.action);
        let keep = q.is_none_or(|q| {
            entry.actor.contains(q)
                || entry.action.contains(q)
                || target.as_deref().is_some_and(|t| t.contains(q))
                || entry.params.as_deref().is_some_and(|p| p.contains(q))
        });
        if keep {
            entries.push(AuditView { entry, target });
        }
    }
    Ok((entries, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_names_what_it_acted_on() {
        for (action, target) in [
            ("POST /api/v1/admin/users/7/pro", Some("user 7")),
            ("POST /api/v1/admin/proxies/ams1/action", Some("proxy ams1")),
            ("POST /admin/api/accounts/ops/disable", Some("account ops")),
            ("POST /api/v1/admin/rebalance/plans/3/apply", Some("plan 3")),
            ("DELETE /api/v1/admin/probes/IR-1", Some("probe IR-1")),
            ("POST /api/v1/admin/users", None),
            ("POST /api/v1/admin/rebalance?dry_run=false", None),
            ("login", None),
        ] {
            assert_eq!(target_of(action).as_deref(), target, "{action}");
        }
    }

    fn entries(store: &Store) -> Vec<AuditEntry> {
        store
            .values::<AuditEntry>(TreeId::Audit)
            .collect::<Result<_>>()
            .unwrap()
    }

    #[tokio::test]
    async fn failed_logins_share_one_entry_per_address_and_minute() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let failures = LoginFailures::default();
        let a = Some("192.0.2.1".parse().unwrap());
        let b = Some("192.0.2.2".parse().unwrap());
        for i in 0..500u64 {
            let why = if i % 2 == 0 {
                LoginFailure::Refused
            } else {
                LoginFailure::Throttled
            };
            failures
                .count(&store, &format!("u{}", i % 5), a, why, 60_000 + i * 10)
                .unwrap();
        }
        failures
            .count(&store, "ops", b, LoginFailure::Refused, 61_000)
            .unwrap();
        failures.flush(&store, 65_000).unwrap();
        let found = entries(&store);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].count, 500);
        assert_eq!(found[0].actor, "u0,u1,u2");
        assert_eq!(
            found[0].params.as_deref(),
            Some("refused=250 throttled=250")
        );
        assert_eq!(found[1].count, 1);

        // The next minute opens a new entry.
        failures
            .count(&store, "u0", a, LoginFailure::Refused, 120_000)
            .unwrap();
        assert_eq!(entries(&store).len(), 3);
    }

    #[tokio::test]
    async fn many_addresses_in_one_minute_share_an_overflow_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let failures = LoginFailures::default();
        for i in 0..(MAX_FAILURE_KEYS_PER_MINUTE as u32 + 50) {
            let ip = IpAddr::from(std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | i as u128));
            failures
                .count(&store, "ops", Some(ip), LoginFailure::Refused, 1_000)
                .unwrap();
        }
        assert_eq!(entries(&store).len(), MAX_FAILURE_KEYS_PER_MINUTE + 1);
    }

    #[tokio::test]
    async fn prune_drops_only_old_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for at in [1_000, 2_000, 50_000] {
            let event = Event {
                actor: "ops",
                action: "login",
                status: 200,
                client_ip: None,
                params: None,
            };
            record(&store, event, at).unwrap();
        }
        assert_eq!(prune(&store, 10_000, 55_000, 1).unwrap(), 1);
        assert_eq!(prune(&store, 10_000, 55_000, 100).unwrap(), 1);
        assert_eq!(prune(&store, 10_000, 55_000, 100).unwrap(), 0);
        assert_eq!(entries(&store).len(), 1);
    }
}
