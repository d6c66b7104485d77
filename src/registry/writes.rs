//! What registry changes write, inside a transaction: the proxies, the history, the change
//! log and, when the routable set changed, an edge sync task.

use std::collections::HashMap;

use serde_json::json;

use super::credentials::{self, Ceilings, Presented};
use super::edge::EDGE_SYNC;
use super::model::{
    LoadSample, Proxy, ProxyEvent, ProxyEventKind, ProxyName, Registration, RemovalReason, Role,
};
use crate::changes::ChangeKind;
use crate::error::Error;
use crate::queue::TaskKind;
use crate::queue::{NewTask, Queue};
use crate::store::codec::{encode, u64_key};
use crate::store::{Deferral, Store, TreeId, Tx, TxResult};

/// Meta counter bumped whenever the set of (name, ip, port) changes.
pub const EDGE_VERSION: &str = "edge.version";
/// One load sample per proxy per 30 s, 120 kept: an hour for charts.
const SAMPLE_EVERY_MS: u64 = 30_000;
pub const SAMPLES_KEPT: usize = 120;

/// Meta counter numbering the registry history.
const EVENT_SEQ: &str = "registry.event_seq";

#[derive(Clone)]
pub struct Writer {
    pub queue: Queue,
    pub ttl_ms: u64,
    pub edge_debounce_ms: u64,
    /// A proxy's limit when it registered no capacity.
    pub max_clients: u32,
    /// Below this percentage of its limit a proxy counts as idle.
    pub low_water_percent: u32,
    pub ceilings: Ceilings,
}

/// A batch of heartbeats answered by `Writer::refresh_all`, and what they write.
pub type Refreshed = (Vec<Result<Registered, Error>>, Deferral);

/// One `/register` as the combiner takes it.
#[derive(Debug, Clone)]
pub struct Submission {
    pub reg: Registration,
    pub presented: Presented,
    /// The secret to issue if this registration enrols (or claims) the name.
    pub new_secret: Option<String>,
    pub now_ms: u64,
}

/// A registration as stored, whether the routable set changed, and the secret it issued.
#[derive(Debug, Clone)]
pub struct Registered {
    pub proxy: Proxy,
    pub edge_changed: bool,
    /// A task was queued for the fleet (room appeared): the queue must be woken.
    pub tasks_queued: bool,
    pub secret: Option<String>,
}

impl Writer {
    /// Registers or refreshes a batch of proxies (in arrival order) as one change-log entry.
    /// Each gets its own answer: refused by its credential (nothing of it written), or the
    /// proxy as stored, whether the routable set changed and the secret it was issued.
    pub fn register_all(
        &self,
        tx: &Tx,
        batch: &[Submission],
    ) -> TxResult<Vec<Result<Registered, Error>>> {
        let mut answers = Vec::with_capacity(batch.len());
        let mut upserted = Vec::with_capacity(batch.len());
        let mut set_changed = false;
        let mut last_at = None;
        for sub in batch {
            let (reg, now_ms) = (&sub.reg, sub.now_ms);
            let previous: Option<Proxy> = tx.get(TreeId::Proxies, reg.name.as_str())?;
            let admitted = match (&sub.presented, &previous) {
                // The common heartbeat: the live record holds the secret presented (rotation
                // and revocation change it in their own transactions), so no other read.
                (Presented::Secret { hash, .. }, Some(live)) if live.secret_hash == Some(*hash) => {
                    credentials::Admitted {
                        role: live.role,
                        max_capacity: sub.presented.ceiling(self.ceilings),
                        secret_hash: *hash,
                        secret: None,
                    }
                }
                _ => {
                    let new_secret = sub.new_secret.as_deref().unwrap_or_default();
                    match credentials::admit(
                        tx,
                        reg,
                        &sub.presented,
                        new_secret,
                        self.ceilings,
                        now_ms,
                    )? {
                        Ok(admitted) => admitted,
                        Err(refused) => {
                            answers.push(Err(refused));
                            continue;
                        }
                    }
                }
            };
            let mut proxy = self.next_record(sub, previous.as_ref(), &admitted);
            if now_ms.saturating_sub(proxy.load_sampled_ms) >= SAMPLE_EVERY_MS {
                sample_load(tx, &proxy, now_ms)?;
                proxy.load_sampled_ms = now_ms;
            }
            tx.put(TreeId::Proxies, reg.name.as_str(), &proxy)?;
            let event = match &previous {
                None => Some(ProxyEventKind::Registered),
                Some(p) if p.endpoint() != proxy.endpoint() => Some(ProxyEventKind::Moved),
                Some(_) => None,
            };
            if let Some(kind) = event.clone() {
                let event_seq = record_event(tx, now_ms, &proxy, kind.clone())?;
                set_changed = true;
                if kind == ProxyEventKind::Moved {
                    self.proxy_changed(tx, &proxy.name, event_seq, now_ms)?;
                }
            }
            let tasks_queued = self.room_appears(&proxy, previous.as_ref());
            if tasks_queued {
                self.room_appeared(tx, now_ms)?;
            }
            last_at = Some(now_ms);
            upserted.push(logged(&proxy));
            answers.push(Ok(Registered {
                proxy,
                edge_changed: event.is_some(),
                tasks_queued,
                secret: admitted.secret,
            }));
        }
        let Some(last_at) = last_at else {
            return Ok(answers);
        };
        tx.log(last_at, ChangeKind::ProxiesUpserted(upserted))?;
        if set_changed {
            self.edge_changed(tx, last_at)?;
        }
        Ok(answers)
    }

    /// The common heartbeat, without a transaction (`Store::defer`): every proxy of the batch
    /// is live, presents the secret it holds, keeps its address, gets no more room and owes
    /// no load sample, so only its own record changes. `None` when any one needs more: the
    /// batch then goes through `register_all`, in a transaction.
    pub fn refresh_all(
        &self,
        store: &Store,
        batch: &[Submission],
    ) -> Result<Option<Refreshed>, Error> {
        // A name twice in one batch: the second refresh starts from the first.
        let mut written: HashMap<&str, Proxy> = HashMap::with_capacity(batch.len());
        let mut samples_written: HashMap<&str, Vec<LoadSample>> = HashMap::new();
        let mut answers = Vec::with_capacity(batch.len());
        let mut upserted = Vec::with_capacity(batch.len());
        for sub in batch {
            let name = sub.reg.name.as_str();
            let previous = match written.remove(name) {
                Some(proxy) => proxy,
                None => match store.get::<Proxy>(TreeId::Proxies, name)? {
                    Some(proxy) => proxy,
                    None => return Ok(None),
                },
            };
            let admitted = match &sub.presented {
                Presented::Secret { hash, .. } if previous.secret_hash == Some(*hash) => {
                    credentials::Admitted {
                        role: previous.role,
                        max_capacity: sub.presented.ceiling(self.ceilings),
                        secret_hash: *hash,
                        secret: None,
                    }
                }
                _ => return Ok(None),
            };
            let mut proxy = self.next_record(sub, Some(&previous), &admitted);
            if previous.endpoint() != proxy.endpoint() || self.room_appears(&proxy, Some(&previous))
            {
                return Ok(None);
            }
            if sub.now_ms.saturating_sub(proxy.load_sampled_ms) >= SAMPLE_EVERY_MS {
                // Deferred writes only replace records: a proxy without samples yet takes
                // the transaction.
                let Some(samples) = store.get(TreeId::ProxyLoad, name)? else {
                    return Ok(None);
                };
                samples_written.insert(name, with_sample(samples, &proxy, sub.now_ms));
                proxy.load_sampled_ms = sub.now_ms;
            }
            upserted.push(logged(&proxy));
            answers.push(Ok(Registered {
                proxy: proxy.clone(),
                edge_changed: false,
                tasks_queued: false,
                secret: None,
            }));
            written.insert(name, proxy);
        }
        let Some(last) = batch.last() else {
            return Ok(None);
        };
        let mut writes = Vec::with_capacity(written.len() + samples_written.len());
        for (name, proxy) in written {
            writes.push((TreeId::Proxies, name.as_bytes().to_vec(), encode(&proxy)?));
        }
        for (name, samples) in samples_written {
            writes.push((
                TreeId::ProxyLoad,
                name.as_bytes().to_vec(),
                encode(&samples)?,
            ));
        }
        let change = encode(&ChangeKind::ProxiesUpserted(upserted))?;
        let deferral = Deferral {
            writes,
            change: Some((last.now_ms, change)),
        };
        Ok(Some((answers, deferral)))
    }

    /// The record a registration leaves: the operator's fields (role, pin, enrolment time)
    /// kept from `previous`, the proxy's own from the registration.
    fn next_record(
        &self,
        sub: &Submission,
        previous: Option<&Proxy>,
        admitted: &credentials::Admitted,
    ) -> Proxy {
        let (reg, now_ms) = (&sub.reg, sub.now_ms);
        let mut proxy = Proxy {
            name: reg.name.clone(),
            ip: reg.ip,
            port: reg.port,
            // The role is the operator's (enrolment, admin, rebalancer), never the proxy's.
            role: previous.map_or(admitted.role, |p| p.role),
            location: reg.location.clone(),
            capacity: reg.capacity.map(|c| c.min(admitted.max_capacity)),
            load: reg.load.clone(),
            registered_ms: previous.map_or(now_ms, |p| p.registered_ms),
            last_seen_ms: now_ms,
            expires_ms: now_ms + self.ttl_ms,
            role_pinned: previous.is_some_and(|p| p.role_pinned),
            over_limit_since_ms: None,
            under_low_since_ms: None,
            load_sampled_ms: previous.map_or(0, |p| p.load_sampled_ms),
            transport: reg.transport.clone(),
            secret_hash: Some(admitted.secret_hash),
        };
        self.track_load(&mut proxy, previous, now_ms);
        proxy
    }

    /// Whether users waiting for a fallback proxy may now take this one: it enrolled, came
    /// back after it expired, or raised its limit.
    fn room_appears(&self, proxy: &Proxy, previous: Option<&Proxy>) -> bool {
        let more_room = match previous {
            None => true,
            Some(p) => proxy.limit(self.max_clients) > p.limit(self.max_clients),
        };
        more_room && proxy.role == Role::Fallback
    }

    pub fn remove_in(
        &self,
        tx: &Tx,
        proxy: &Proxy,
        reason: RemovalReason,
        now_ms: u64,
    ) -> TxResult<()> {
        let name = proxy.name.as_str();
        tx.remove(TreeId::Proxies, name)?;
        tx.remove(TreeId::ProxyLoad, name)?;
        tx.log(
            now_ms,
            ChangeKind::ProxyRemoved {
                name: name.to_string(),
                reason,
            },
        )?;
        let event_seq = record_event(tx, now_ms, proxy, reason.into())?;
        credentials::mark_gone(tx, &proxy.name, now_ms)?;
        self.proxy_changed(tx, &proxy.name, event_seq, now_ms)?;
        self.edge_changed(tx, now_ms)
    }

    /// Since when the proxy is over its limit, or idle: the rebalancer's hysteresis.
    fn track_load(&self, proxy: &mut Proxy, previous: Option<&Proxy>, now_ms: u64) {
        let Some(clients) = proxy.load.clients else {
            return; // no report: neither overloaded nor idle
        };
        let limit = proxy.limit(self.max_clients);
        let low_water = u64::from(limit) * u64::from(self.low_water_percent) / 100;
        if clients > limit {
            proxy.over_limit_since_ms = Some(
                previous
                    .and_then(|p| p.over_limit_since_ms)
                    .unwrap_or(now_ms),
            );
        }
        if u64::from(clients) < low_water {
            proxy.under_low_since_ms = Some(
                previous
                    .and_then(|p| p.under_low_since_ms)
                    .unwrap_or(now_ms),
            );
        }
    }

    /// A proxy left or changed address (history entry `event_seq`): its users' configs must
    /// follow (a fleet task, one per event).
    fn proxy_changed(
        &self,
        tx: &Tx,
        name: &ProxyName,
        event_seq: u64,
        now_ms: u64,
    ) -> TxResult<()> {
        let task = NewTask {
            kind: TaskKind::ProxyChanged,
            key: format!("{}:{name}:{event_seq}", TaskKind::ProxyChanged),
            payload: json!({ "proxy": name }),
            due_ms: now_ms,
        };
        self.queue.enqueue_in(tx, &task, now_ms)?;
        Ok(())
    }

    /// A fallback proxy enrolled, came back or raised its capacity: users waiting for a
    /// fallback proxy may take it (a fleet task, at most one a second).
    fn room_appeared(&self, tx: &Tx, now_ms: u64) -> TxResult<()> {
        let task = NewTask::per_second(TaskKind::PlaceUnplaced, now_ms);
        self.queue.enqueue_in(tx, &task, now_ms)?;
        Ok(())
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
}

/// A record as the change log carries it: its readers (the Redis mirror) never need the
/// secret's hash, and leaving it out keeps every heartbeat batch's entry smaller.
fn logged(proxy: &Proxy) -> Proxy {
    Proxy {
        secret_hash: None,
        ..proxy.clone()
    }
}

fn sample_load(tx: &Tx, proxy: &Proxy, now_ms: u64) -> TxResult<()> {
    let samples: Vec<LoadSample> = tx
        .get(TreeId::ProxyLoad, proxy.name.as_str())?
        .unwrap_or_default();
    tx.put(
        TreeId::ProxyLoad,
        proxy.name.as_str(),
        &with_sample(samples, proxy, now_ms),
    )
}

/// `samples` with the proxy's load now appended, the oldest dropped beyond `SAMPLES_KEPT`.
fn with_sample(mut samples: Vec<LoadSample>, proxy: &Proxy, now_ms: u64) -> Vec<LoadSample> {
    if samples.len() >= SAMPLES_KEPT {
        samples.drain(..=samples.len() - SAMPLES_KEPT);
    }
    samples.push(LoadSample {
        at_ms: now_ms,
        clients: proxy.load.clients,
        cpu: proxy.load.cpu,
        bandwidth: proxy.load.bandwidth,
    });
    samples
}

/// Appends to the registry history; returns the entry's sequence number.
pub fn record_event(tx: &Tx, at_ms: u64, proxy: &Proxy, kind: ProxyEventKind) -> TxResult<u64> {
    let seq = tx.next(EVENT_SEQ)?;
    let event = ProxyEvent {
        seq,
        at_ms,
        name: proxy.name.clone(),
        kind,
        ip: proxy.ip,
        port: proxy.port,
    };
    tx.put(TreeId::ProxyEvents, u64_key(seq), &event)?;
    Ok(seq)
}
