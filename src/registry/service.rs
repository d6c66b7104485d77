//! Registry operations: each is one transaction that updates the proxy, its expiry index, the
//! history, the change log and, when the routable set changed, queues an edge sync.

use serde_json::json;

use super::edge::EDGE_SYNC;
use super::model::{Proxy, ProxyEvent, ProxyEventKind, ProxyName, Registration, RemovalReason};
use crate::error::{Error, Result};
use crate::queue::{NewTask, Queue};
use crate::store::codec::{key_u64, time_name_key, u64_key};
use crate::store::{abort, ChangeKind, Store, TreeId, Tx, TxResult};

/// Meta counter bumped whenever the set of (name, ip, port) changes.
pub const EDGE_VERSION: &str = "edge.version";

#[derive(Clone)]
pub struct Registry {
    store: Store,
    queue: Queue,
    ttl_ms: u64,
    edge_debounce_ms: u64,
}

impl Registry {
    pub fn new(store: Store, queue: Queue, ttl_ms: u64, edge_debounce_ms: u64) -> Registry {
        Registry {
            store,
            queue,
            ttl_ms,
            edge_debounce_ms,
        }
    }

    /// Registers a proxy or refreshes it (the heartbeat). Durable when it returns.
    pub async fn register(&self, reg: Registration, now_ms: u64) -> Result<Proxy> {
        let (proxy, edge_changed) = self
            .store
            .transaction(|tx| self.register_in(tx, &reg, now_ms))?;
        self.store.durable().await?;
        if edge_changed {
            self.queue.wake();
        }
        Ok(proxy)
    }

    fn register_in(&self, tx: &Tx, reg: &Registration, now_ms: u64) -> TxResult<(Proxy, bool)> {
        let name = reg.name.as_str();
        let previous: Option<Proxy> = tx.get(TreeId::Proxies, name)?;
        let proxy = Proxy {
            name: reg.name.clone(),
            ip: reg.ip,
            port: reg.port,
            role: reg.role,
            location: reg.location.clone(),
            capacity: reg.capacity,
            load: reg.load.clone(),
            registered_ms: previous.as_ref().map_or(now_ms, |p| p.registered_ms),
            last_seen_ms: now_ms,
            expires_ms: now_ms + self.ttl_ms,
        };
        if let Some(previous) = &previous {
            tx.remove(
                TreeId::ProxyExpiry,
                time_name_key(previous.expires_ms, name),
            )?;
        }
        tx.put_marker(TreeId::ProxyExpiry, time_name_key(proxy.expires_ms, name))?;
        tx.put(TreeId::Proxies, name, &proxy)?;
        let seq = tx.log(now_ms, ChangeKind::ProxyUpserted(proxy.clone()))?;
        let event = match &previous {
            None => Some(ProxyEventKind::Registered),
            Some(p) if p.endpoint() != proxy.endpoint() => Some(ProxyEventKind::Moved),
            Some(_) => None,
        };
        if let Some(kind) = event {
            record_event(tx, seq, now_ms, &proxy, kind)?;
            self.edge_changed(tx, now_ms)?;
        }
        Ok((proxy, event.is_some()))
    }

    pub async fn unregister(&self, name: &ProxyName, now_ms: u64) -> Result<Proxy> {
        let proxy = self.store.transaction(|tx| {
            let Some(proxy) = tx.get::<Proxy>(TreeId::Proxies, name.as_str())? else {
                return abort(Error::NotFound(format!("proxy {name}")));
            };
            self.remove_in(tx, &proxy, RemovalReason::Unregistered, now_ms)?;
            Ok(proxy)
        })?;
        self.store.durable().await?;
        self.queue.wake();
        Ok(proxy)
    }

    /// Removes every proxy whose heartbeat is overdue. Returns the names removed.
    pub async fn sweep(&self, now_ms: u64) -> Result<Vec<ProxyName>> {
        let mut overdue = Vec::new();
        for key in self.store.keys_from(TreeId::ProxyExpiry, u64_key(0)) {
            let key = key?;
            match key_u64(&key) {
                Some(expires) if expires <= now_ms => {
                    overdue.push(String::from_utf8_lossy(&key[8..]).into_owned())
                }
                _ => break,
            }
        }
        let mut removed = Vec::new();
        for name in overdue {
            let gone = self.store.transaction(|tx| {
                match tx.get::<Proxy>(TreeId::Proxies, &name)? {
                    // A heartbeat may have landed since the scan: only remove what is still overdue.
                    Some(proxy) if proxy.expires_ms <= now_ms => {
                        self.remove_in(tx, &proxy, RemovalReason::Expired, now_ms)?;
                        Ok(Some(proxy.name))
                    }
                    _ => Ok(None),
                }
            })?;
            removed.extend(gone);
        }
        if !removed.is_empty() {
            self.store.durable().await?;
            self.queue.wake();
        }
        Ok(removed)
    }

    fn remove_in(
        &self,
        tx: &Tx,
        proxy: &Proxy,
        reason: RemovalReason,
        now_ms: u64,
    ) -> TxResult<()> {
        let name = proxy.name.as_str();
        tx.remove(TreeId::Proxies, name)?;
        tx.remove(TreeId::ProxyExpiry, time_name_key(proxy.expires_ms, name))?;
        let seq = tx.log(
            now_ms,
            ChangeKind::ProxyRemoved {
                name: name.to_string(),
                reason,
            },
        )?;
        record_event(tx, seq, now_ms, proxy, reason.into())?;
        self.edge_changed(tx, now_ms)
    }

    /// The routable set changed: bump its version and queue a (debounced) edge sync.
    fn edge_changed(&self, tx: &Tx, now_ms: u64) -> TxResult<()> {
        let version = tx.next(EDGE_VERSION)?;
        let task = NewTask {
            kind: EDGE_SYNC,
            key: format!("{EDGE_SYNC}:{version}"),
            payload: json!({ "version": version }),
            due_ms: now_ms + self.edge_debounce_ms,
        };
        self.queue.enqueue_in(tx, &task, now_ms)?;
        Ok(())
    }

    /// Live proxies (an overdue one is hidden even before the sweeper removes it).
    pub fn list(&self, now_ms: u64) -> Result<Vec<Proxy>> {
        self.store
            .values::<Proxy>(TreeId::Proxies)
            .filter(|p| p.as_ref().map_or(true, |p| p.expires_ms > now_ms))
            .collect()
    }

    pub fn get(&self, name: &ProxyName, now_ms: u64) -> Result<Option<Proxy>> {
        let proxy: Option<Proxy> = self.store.get(TreeId::Proxies, name.as_str())?;
        Ok(proxy.filter(|p| p.expires_ms > now_ms))
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

fn record_event(
    tx: &Tx,
    seq: u64,
    at_ms: u64,
    proxy: &Proxy,
    kind: ProxyEventKind,
) -> TxResult<()> {
    let event = ProxyEvent {
        seq,
        at_ms,
        name: proxy.name.clone(),
        kind,
        ip: proxy.ip,
        port: proxy.port,
    };
    tx.put(TreeId::ProxyEvents, u64_key(seq), &event)
}
