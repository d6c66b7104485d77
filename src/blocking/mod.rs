//! Blocking awareness (docs/BLOCKING.md): clients and the operator's probes report whether
//! they reach the proxies they were given; per proxy and country a verdict (`ok`,
//! `suspected`, `blocked`, `recovered`) follows documented thresholds. A proxy blocked in a
//! country is taken from the users there (the `blocking.proxy_blocked` task, carried out by
//! the fleet) and from the free subsets served there, and still serves everyone else.

pub mod probes;
pub mod verdict;

use serde::Serialize;

use crate::changes::ChangeKind;
use crate::config::Config;
use crate::distribution::blocked::BlockedSet;
use crate::error::{Error, Result};
use crate::fleet::model::ProxyName;
use crate::queue::{NewTask, Queue, TaskKind};
use crate::registry::model::ProxyEventKind;
use crate::registry::writes::record_event;
use crate::registry::Proxy;
use crate::store::{Store, TreeId};
use verdict::{BlockState, Report, Reporter, Rules, Source, Verdict, MAX_ERROR};

/// Task: a proxy became blocked in a country; its users there leave it.
pub const PROXY_BLOCKED: TaskKind = TaskKind::ProxyBlocked;
/// Entries one report may hold.
pub const MAX_ENTRIES: usize = 50;

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country(String);

impl Country {
    pub fn parse(raw: &str) -> Result<Country> {
        let code = raw.trim().to_ascii_uppercase();
        if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Country(code))
        } else {
            Err(Error::invalid(
                "invalid_country",
                "a country is a two-letter ISO 3166 code such as IR",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One line of a report: a proxy, and whether the reporter reached it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub proxy: ProxyName,
    pub reachable: bool,
    pub error: Option<String>,
}

/// A verdict that changed with a report.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub proxy: String,
    pub country: String,
    pub from: BlockState,
    pub to: BlockState,
}

#[derive(Clone)]
pub struct Blocking {
    store: Store,
    queue: Queue,
    pub rules: Rules,
    blocked: BlockedSet,
}

/// `BlockVerdicts` key: the proxy's name, a zero byte, the country (one proxy's are a prefix).
fn key(proxy: &str, country: &str) -> Vec<u8> {
    let mut key = proxy.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(country.as_bytes());
    key
}

impl Rules {
    pub fn from_config(config: &Config) -> Rules {
        Rules {
            window_ms: config.block_window_secs.saturating_mul(1000),
            min_weight: config.block_min_weight,
            failure_share: config.block_failure_share,
            recovery_share: config.block_recovery_share,
            declared_weight: config.block_declared_weight,
            probe_weight: config.block_probe_weight,
        }
    }
}

impl Blocking {
    /// Loads the verdicts' blocked proxies into `blocked` (shared with the fleet).
    pub fn new(store: Store, queue: Queue, rules: Rules, blocked: BlockedSet) -> Result<Blocking> {
        for verdict in store.values::<Verdict>(TreeId::BlockVerdicts) {
            let verdict = verdict?;
            if verdict.state == BlockState::Blocked {
                blocked.set(&verdict.country, &verdict.proxy, true);
            }
        }
        Ok(Blocking {
            store,
            queue,
            rules,
            blocked,
        })
    }

    /// Records one reporter's report from `country`, in one transaction; returns the
    /// verdicts it changed. A proxy that became blocked queues `blocking.proxy_blocked`.
    pub async fn record(
        &self,
        reporter: Reporter,
        source: Source,
        country: &Country,
        entries: &[Entry],
        now_ms: u64,
    ) -> Result<Vec<Change>> {
        if entries.len() > MAX_ENTRIES {
            return Err(Error::invalid(
                "too_many_entries",
                format!("a report holds at most {MAX_ENTRIES} proxies"),
            ));
        }
        if entries
            .iter()
            .any(|e| e.error.as_ref().is_some_and(|e| e.len() > MAX_ERROR))
        {
            return Err(Error::invalid(
                "invalid_error",
                format!("an entry's error is at most {MAX_ERROR} bytes"),
            ));
        }
        let country = country.as_str();
        let changes = self.store.transaction(|tx| {
            let mut changes = Vec::new();
            for entry in entries {
                let proxy = entry.proxy.as_str();
                let mut verdict = tx
                    .get::<Verdict>(TreeId::BlockVerdicts, key(proxy, country))?
                    .unwrap_or_else(|| Verdict::new(proxy, country, now_ms));
                let report = Report {
                    reporter,
                    source,
                    reachable: entry.reachable,
                    at_ms: now_ms,
                    error: entry.error.clone(),
                };
                if let Some(from) = verdict.add(report, &self.rules, now_ms) {
                    let blocked = verdict.state == BlockState::Blocked;
                    if blocked != (from == BlockState::Blocked) {
                        // Edges follow: the mirror keeps `<p>blocked:<country>`.
                        tx.log(
                            now_ms,
                            ChangeKind::BlockChanged {
                                proxy: proxy.to_string(),
                                country: country.to_string(),
                                blocked,
                            },
                        )?;
                        // The registry's history shows it beside arrivals and departures.
                        let kind = if blocked {
                            ProxyEventKind::Blocked(country.to_string())
                        } else {
                            ProxyEventKind::Unblocked(country.to_string())
                        };
                        if let Some(record) = tx.get::<Proxy>(TreeId::Proxies, proxy)? {
                            record_event(tx, now_ms, &record, kind)?;
                        }
                    }
                    if blocked {
                        let task = NewTask {
                            kind: PROXY_BLOCKED,
                            key: format!("{PROXY_BLOCKED}:{proxy}:{country}:{now_ms}"),
                            payload: serde_json::json!({
                                "proxy": proxy,
                                "country": country,
                                "at": now_ms,
                            }),
                            due_ms: now_ms,
                        };
                        self.queue.enqueue_in(tx, &task, now_ms)?;
                    }
                    changes.push(Change {
                        proxy: proxy.to_string(),
                        country: country.to_string(),
                        from,
                        to: verdict.state,
                    });
                }
                tx.put(TreeId::BlockVerdicts, key(proxy, country), &verdict)?;
            }
            Ok(changes)
        })?;
        // Before the task can run: the fleet places by this set.
        for change in &changes {
            self.blocked.set(
                &change.country,
                &change.proxy,
                change.to == BlockState::Blocked,
            );
        }
        self.store.durable().await?;
        if !changes.is_empty() {
            self.queue.wake();
        }
        Ok(changes)
    }

    /// Verdicts as they stand at `now_ms` (decided again, so a suspicion past its window
    /// shows as ok), filtered by state and country, in (proxy, country) order after `after`.
    pub fn verdicts(
        &self,
        state: Option<BlockState>,
        country: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<Verdict>> {
        let from = match after {
            Some((proxy, country)) => {
                let mut from = key(proxy, country);
                from.push(0);
                from
            }
            None => Vec::new(),
        };
        let mut found = Vec::new();
        for item in self
            .store
            .scan_from::<Verdict>(TreeId::BlockVerdicts, &from)
        {
            let (_, mut verdict) = item?;
            verdict.decide(&self.rules, now_ms);
            let wanted = state.is_none_or(|s| s == verdict.state)
                && country.is_none_or(|c| c == verdict.country);
            if wanted {
                found.push(verdict);
                if found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// One proxy's verdicts, every country.
    pub fn verdicts_of(&self, proxy: &str, now_ms: u64) -> Result<Vec<Verdict>> {
        let mut prefix = proxy.as_bytes().to_vec();
        prefix.push(0);
        let mut found = Vec::new();
        for item in self
            .store
            .scan_from::<Verdict>(TreeId::BlockVerdicts, &prefix)
        {
            let (key, mut verdict) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            verdict.decide(&self.rules, now_ms);
            found.push(verdict);
        }
        Ok(found)
    }

    /// Every (proxy, country) blocked now, as stored (what a full copy to Redis writes).
    pub fn all_blocked(store: &Store) -> Result<Vec<(String, String)>> {
        let mut blocked = Vec::new();
        for verdict in store.values::<Verdict>(TreeId::BlockVerdicts) {
            let verdict = verdict?;
            if verdict.state == BlockState::Blocked {
                blocked.push((verdict.proxy, verdict.country));
            }
        }
        Ok(blocked)
    }

    /// The shared set of blocked proxies per country.
    pub fn blocked(&self) -> &BlockedSet {
        &self.blocked
    }

    /// Retention (upkeep): forgets the verdicts that say nothing any more, `ok` with no report
    /// left in the window (a proxy that left, a suspicion nobody renewed). A blocked or
    /// recovered proxy keeps its verdict. Returns how many were forgotten.
    pub fn forget_quiet(&self, now_ms: u64) -> Result<usize> {
        let mut quiet = Vec::new();
        for item in self.store.scan_from::<Verdict>(TreeId::BlockVerdicts, []) {
            let (key, mut verdict) = item?;
            verdict.decide(&self.rules, now_ms);
            if verdict.state == BlockState::Ok && verdict.reports.is_empty() {
                quiet.push(key.to_vec());
            }
        }
        for chunk in quiet.chunks(1_000) {
            self.store.transaction(|tx| {
                for key in chunk {
                    // Decided again in the transaction: a report may have come meanwhile.
                    if let Some(mut verdict) = tx.get::<Verdict>(TreeId::BlockVerdicts, key)? {
                        verdict.decide(&self.rules, now_ms);
                        if verdict.state == BlockState::Ok && verdict.reports.is_empty() {
                            tx.remove(TreeId::BlockVerdicts, key)?;
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(quiet.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quiet_verdicts_are_forgotten_and_blocked_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let queue = Queue::new(
            store.clone(),
            crate::queue::QueuePolicy {
                max_attempts: 3,
                backoff_base_ms: 10,
                lease_ms: 1_000,
                done_retention_ms: 1_000,
            },
        );
        let rules = Rules {
            window_ms: 1_000,
            min_weight: 3.0,
            failure_share: 0.6,
            recovery_share: 0.3,
            declared_weight: 0.5,
            probe_weight: 2.0,
        };
        let blocking = Blocking::new(store.clone(), queue, rules, BlockedSet::default()).unwrap();
        let ir = Country::parse("ir").unwrap();
        let entry = |proxy: &str| Entry {
            proxy: ProxyName::parse(proxy).unwrap(),
            reachable: false,
            error: None,
        };
        // "quiet" is suspected by one account; "cut" is blocked by two probes.
        blocking
            .record(
                Reporter::User(1),
                Source::Located,
                &ir,
                &[entry("quiet")],
                0,
            )
            .await
            .unwrap();
        for probe in [1, 2] {
            blocking
                .record(
                    Reporter::Probe(probe),
                    Source::Probe,
                    &ir,
                    &[entry("cut")],
                    0,
                )
                .await
                .unwrap();
        }
        assert_eq!(
            blocking.forget_quiet(500).unwrap(),
            0,
            "still in the window"
        );
        assert_eq!(blocking.forget_quiet(2_000).unwrap(), 1);
        let left = blocking.verdicts(None, None, None, 10, 2_000).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(
            (left[0].proxy.as_str(), left[0].state),
            ("cut", BlockState::Blocked)
        );
        assert!(blocking.blocked().is_blocked(Some("IR"), "cut"));
    }
}
