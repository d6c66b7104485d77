//! Registry operations: register (combined with concurrent heartbeats), unregister, sweep,
//! and the reads. What each change writes is in `writes.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::credentials::{self, Presented};
use super::model::{Proxy, ProxyEvent, ProxyName, Registration, RemovalReason};
use super::writes::{Registered, Submission, Writer};
use crate::error::{Error, Result};
use crate::queue::Queue;
use crate::store::codec::u64_key;
use crate::store::combiner::Combiner;
use crate::store::{abort, Store, TreeId};

/// Heartbeats sharing one transaction at most (see `store::combiner`).
const HEARTBEATS_PER_TRANSACTION: usize = 256;

#[derive(Clone)]
pub struct Registry {
    store: Store,
    queue: Queue,
    pub(crate) writer: Writer,
    /// Who may speak for each proxy name, and the enrolment tokens.
    pub credentials: credentials::Credentials,
    heartbeats: Combiner<Submission, Result<Registered>>,
    /// Bumped (after the commit) whenever a proxy came, left or moved: readers that cache the
    /// fleet compare it instead of asking the store on every request.
    generation: Arc<AtomicU64>,
}

impl Registry {
    /// Must run inside a tokio runtime (it starts the heartbeat combiner).
    pub fn new(store: Store, queue: Queue, writer: Writer) -> Registry {
        let (combined, refreshing, reads) = (writer.clone(), writer.clone(), store.clone());
        let heartbeats = Combiner::start_deferring(
            store.clone(),
            HEARTBEATS_PER_TRANSACTION,
            move |batch: &[Submission]| refreshing.refresh_all(&reads, batch),
            move |tx, batch: &[Submission]| combined.register_all(tx, batch),
        );
        Registry {
            credentials: credentials::Credentials::new(store.clone()),
            store,
            queue,
            writer,
            heartbeats,
            generation: Arc::default(),
        }
    }

    /// Changes whenever the set of live proxies changes (not on heartbeats).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Changes whenever any proxy record is written (heartbeats, load, roles included).
    pub fn revision(&self) -> u64 {
        self.store.writes(TreeId::Proxies)
    }

    fn set_changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.queue.wake();
    }

    /// Registers a proxy or refreshes it (the heartbeat), if `presented` may speak for its
    /// name (`credentials::admit`), in a transaction shared with the heartbeats arriving at
    /// the same time. Durable when it returns.
    pub async fn register(
        &self,
        reg: Registration,
        presented: Presented,
        now_ms: u64,
    ) -> Result<Registered> {
        let new_secret = match presented {
            Presented::Secret { .. } => None,
            Presented::Fleet | Presented::Enrolment(_) => Some(credentials::new_secret()),
        };
        let submission = Submission {
            reg,
            presented,
            new_secret,
            now_ms,
        };
        let registered = self.heartbeats.submit(submission).await??;
        if registered.edge_changed {
            self.set_changed();
        } else if registered.tasks_queued {
            self.queue.wake();
        }
        Ok(registered)
    }

    /// Unregisters proxy `name`: only its own secret may (a legacy proxy that never claimed
    /// one cannot be unregistered by the fleet token either: it expires).
    pub async fn unregister(
        &self,
        name: &ProxyName,
        presented: &Presented,
        now_ms: u64,
    ) -> Result<Proxy> {
        let proxy = self.store.transaction(|tx| {
            if let Err(refused) = credentials::may_unregister(tx, name, presented)? {
                return abort(refused);
            }
            let Some(proxy) = tx.get::<Proxy>(TreeId::Proxies, name.as_str())? else {
                return abort(Error::NotFound(format!("proxy {name}")));
            };
            self.writer
                .remove_in(tx, &proxy, RemovalReason::Unregistered, now_ms)?;
            Ok(proxy)
        })?;
        self.store.durable().await?;
        self.set_changed();
        Ok(proxy)
    }

    /// Revokes proxy `name`'s secret and takes it out of service at once (its users' configs
    /// and the edge follow). Its heartbeats are refused until an admin rotates the secret.
    pub async fn revoke(&self, name: &ProxyName, now_ms: u64) -> Result<Option<Proxy>> {
        let removed = self.store.transaction(|tx| {
            if !credentials::revoke_in(tx, name)? {
                return abort(Error::NotFound(format!("proxy {name}")));
            }
            let proxy = tx.get::<Proxy>(TreeId::Proxies, name.as_str())?;
            if let Some(proxy) = &proxy {
                self.writer
                    .remove_in(tx, proxy, RemovalReason::Revoked, now_ms)?;
            }
            Ok(proxy)
        })?;
        self.store.durable().await?;
        if removed.is_some() {
            self.set_changed();
        }
        Ok(removed)
    }

    /// Removes every proxy whose heartbeat is overdue. Returns the names removed.
    pub async fn sweep(&self, now_ms: u64) -> Result<Vec<ProxyName>> {
        // A scan rather than an expiry index: fleets are thousands of proxies, a scan of them
        // takes milliseconds, and an index would cost every heartbeat two more writes.
        let mut overdue = Vec::new();
        for proxy in self.store.values::<Proxy>(TreeId::Proxies) {
            let proxy = proxy?;
            if proxy.expires_ms <= now_ms {
                overdue.push(proxy.name.to_string());
            }
        }
        let mut removed = Vec::new();
        for name in overdue {
            let gone = self.store.transaction(|tx| {
                match tx.get::<Proxy>(TreeId::Proxies, &name)? {
                    // A heartbeat may have landed since the scan: only remove what is still overdue.
                    Some(proxy) if proxy.expires_ms <= now_ms => {
                        self.writer
                            .remove_in(tx, &proxy, RemovalReason::Expired, now_ms)?;
                        Ok(Some(proxy.name))
                    }
                    _ => Ok(None),
                }
            })?;
            removed.extend(gone);
        }
        if !removed.is_empty() {
            self.store.durable().await?;
            self.set_changed();
        }
        Ok(removed)
    }

    /// Live proxies (an overdue one is hidden even before the sweeper removes it).
    pub fn list(&self, now_ms: u64) -> Result<Vec<Proxy>> {
        self.store
            .values::<Proxy>(TreeId::Proxies)
            .filter(|p| p.as_ref().map_or(true, |p| p.expires_ms > now_ms))
            .collect()
    }

    /// One page of live proxies in name order after `after`, and how many match in all.
    pub fn page(
        &self,
        after: Option<&str>,
        limit: usize,
        filter: &ListFilter,
        now_ms: u64,
    ) -> Result<ProxyPage> {
        let mut proxies = Vec::with_capacity(limit);
        let mut matched_total = 0usize;
        for item in self.store.values::<Proxy>(TreeId::Proxies) {
            let proxy = item?;
            if proxy.expires_ms <= now_ms || !filter.keeps(&proxy) {
                continue;
            }
            matched_total += 1;
            let past_cursor = after.is_none_or(|after| proxy.name.as_str() > after);
            if past_cursor && proxies.len() < limit {
                proxies.push(proxy);
            }
        }
        let next_after = (proxies.len() == limit)
            .then(|| proxies.last().map(|p| p.name.to_string()))
            .flatten();
        Ok(ProxyPage {
            proxies,
            next_after,
            matched_total,
        })
    }

    pub fn get(&self, name: &ProxyName, now_ms: u64) -> Result<Option<Proxy>> {
        let proxy: Option<Proxy> = self.store.get(TreeId::Proxies, name.as_str())?;
        Ok(proxy.filter(|p| p.expires_ms > now_ms))
    }

    /// The proxy's load samples, oldest first.
    pub fn load_history(&self, name: &ProxyName) -> Result<Vec<super::model::LoadSample>> {
        Ok(self
            .store
            .get(TreeId::ProxyLoad, name.as_str())?
            .unwrap_or_default())
    }

    /// History, newest first: up to `limit` events older than `before` (a seq), optionally of one proxy.
    pub fn events(
        &self,
        limit: usize,
        before: Option<u64>,
        name: Option<&ProxyName>,
    ) -> Result<Vec<ProxyEvent>> {
        let before_key = before.map(u64_key);
        self.store
            .scan_rev::<ProxyEvent>(TreeId::ProxyEvents, before_key.as_ref().map(|k| &k[..]))
            .map(|item| item.map(|(_, event)| event))
            .filter(|e| match (e, name) {
                (Ok(e), Some(name)) => &e.name == name,
                _ => true,
            })
            .take(limit)
            .collect()
    }

    /// Drops the oldest history entries beyond `keep`.
    pub fn compact_events(&self, keep: usize) -> Result<usize> {
        let excess = self.store.len(TreeId::ProxyEvents).saturating_sub(keep);
        let old: Vec<Vec<u8>> = self
            .store
            .keys_from(TreeId::ProxyEvents, u64_key(0))
            .take(excess)
            .map(|k| k.map(|k| k.to_vec()))
            .collect::<Result<_>>()?;
        for key in &old {
            self.store
                .transaction(|tx| tx.remove(TreeId::ProxyEvents, key))?;
        }
        Ok(old.len())
    }
}

/// What the admin list keeps: one role, and a lower-case substring of name, ip, country or city.
pub struct ListFilter<'a> {
    pub role: Option<super::Role>,
    pub needle: &'a str,
}

impl ListFilter<'_> {
    pub fn keeps(&self, proxy: &Proxy) -> bool {
        if self.role.is_some_and(|role| role != proxy.role) {
            return false;
        }
        if self.needle.is_empty() {
            return true;
        }
        let location = &proxy.location;
        proxy.name.as_str().to_lowercase().contains(self.needle)
            || proxy.ip.to_string().contains(self.needle)
            || [&location.country, &location.city]
                .into_iter()
                .flatten()
                .any(|v| v.to_lowercase().contains(self.needle))
    }
}

pub struct ProxyPage {
    pub proxies: Vec<Proxy>,
    pub next_after: Option<String>,
    /// Live proxies matching the filter, on every page.
    pub matched_total: usize,
}
