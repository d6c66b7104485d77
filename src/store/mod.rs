//! Storage: sled behind a small typed interface, so the rest of the crate never touches sled
//! directly and the engine could be swapped.
//!
//! - `Store::transaction` runs a multi-tree transaction (`tx.rs`);
//! - every change is appended to the change log in the same transaction (`changelog.rs`);
//! - `Store::durable` waits for the group-commit flusher before a write is acknowledged.

pub mod changelog;
pub mod codec;
pub mod combiner;
mod compaction;
mod deferred;
pub mod disk_guard;
mod flusher;
pub mod format;
mod generations;
pub mod replication;
mod tx;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::Transactional;

pub use changelog::Change;
pub use compaction::{CompactPolicy, Compacted, CompactionStatus};
pub use deferred::{Deferral, FOLD_EVERY};
pub use tx::{abort, Tx, TxResult};

use crate::error::{Error, Result};
use codec::decode;
use disk_guard::DiskGuard;
pub use disk_guard::DiskStatus;
use flusher::Flusher;
use generations::Generation;

/// Every tree of the database. The discriminant is the position in `Store::trees`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeId {
    /// Counters, secrets' hashes, settings generated at first start.
    Meta,
    /// Change log: seq (u64 BE) -> `Change`.
    Changes,
    /// Registered proxies: name -> `Proxy`.
    Proxies,
    /// Load history: proxy name -> `Vec<LoadSample>` (oldest first, bounded).
    ProxyLoad,
    /// Why proxies came and went: event seq (u64 BE) -> `ProxyEvent`.
    ProxyEvents,
    /// Durable task queue: id (u64 BE) -> `Task`.
    Tasks,
    /// Idempotency keys: key -> task id.
    TaskKeys,
    /// When each live task is next due: (due_ms, id) -> ().
    TaskSchedule,
    /// Users: id (u64 BE) -> `User`.
    Users,
    /// Unique emails (lower case) -> user id.
    UserEmails,
    /// SHA-256 of user tokens -> user id.
    UserTokens,
    /// Proxy -> user links: (proxy name, 0, user id BE) -> (). Always agrees with `User::proxies`.
    ProxyUsers,
    /// Users linked to each proxy: proxy name -> count.
    ProxyAssigned,
    /// Assignment history: (user id, seq) -> `Assignment`.
    UserHistory,
    /// Users owed a fallback proxy (theirs went away, or none was free): user id -> since_ms.
    NeedsFallback,
    /// Invitations: code -> `Invitation`.
    Invitations,
    /// Rebalance plans: id (u64 BE) -> `Plan`.
    Plans,
    /// Mail outbox: id (u64 BE) -> `Mail`.
    Outbox,
    /// Pro proxy -> user links: (proxy name, 0, user id BE) -> (). Agrees with `User::pro_proxies`.
    ProLinks,
    /// Pro users linked to each pro proxy: proxy name -> count.
    ProCounts,
    /// Token hashes each pro proxy must accept: (proxy name, 0, SHA-256 of token) -> user id.
    ProxyTokens,
    /// When each user's Pro ends: (pro_until_ms BE, user id BE) -> ().
    ProExpiry,
    /// Payments: Stripe PaymentIntent (or Checkout Session) id -> `Payment`.
    Payments,
    /// Payments of each user: (user id BE, payment id) -> ().
    UserPayments,
    /// Stripe events already processed: event id -> `ProcessedEvent`.
    StripeEvents,
    /// Referral and promo codes: code -> `Code`.
    Codes,
    /// Who redeemed which code: (code, 0, user id BE) -> redeemed_ms.
    Redemptions,
    /// Admin panel accounts: username -> `AdminAccount`.
    AdminAccounts,
    /// Admin panel sessions: SHA-256 of the session cookie -> `Session`.
    AdminSessions,
    /// What admins did: seq (u64 BE) -> `AuditEntry`.
    Audit,
    /// The trust graph downwards: (inviter id BE, invitee id BE) -> ().
    Invitees,
    /// Who may speak for each proxy name: name -> `ProxyCredential` (outlives the proxy's
    /// registration, so an expired name cannot be taken over).
    ProxyCredentials,
    /// SHA-256 of each proxy secret -> proxy name.
    ProxySecrets,
    /// Admin-issued enrolment tokens: id (u64 BE) -> `Enrolment`.
    Enrolments,
    /// SHA-256 of each enrolment token -> enrolment id.
    EnrolmentTokens,
    /// Each inviter's invitations: (inviter id BE, created_ms BE, code) -> ().
    UserInvitations,
    /// Each inviter's quota override, recent invitation times and open codes: user id ->
    /// `fleet::invitations::Ledger`.
    InvitationLedgers,
    /// Who was ever given each proxy: (proxy name, 0, user id BE) -> `fleet::exposure::Exposure`.
    ProxyExposure,
    /// Each user's country as its last config request showed it: user id -> ISO code.
    UserCountries,
    /// Reachability per proxy and country: (proxy name, 0, country) -> `blocking::Verdict`.
    BlockVerdicts,
    /// The operator's probes: id (u64 BE) -> `blocking::probes::Probe`.
    Probes,
    /// SHA-256 of each probe token -> probe id.
    ProbeTokens,
    /// Each blamed user's suspicion: user id -> `fleet::suspicion::Suspicion`.
    Suspicions,
    /// Each user's trust level and since when: user id -> `fleet::trust::Trust`.
    TrustLevels,
    /// The lowest trust level each proxy was given to: name -> u8 (absent: nobody had it).
    ProxyFloors,
    /// When each user's level rises next: (time u64 BE, user id) -> () (`fleet::trust`).
    TrustRises,
    /// The start of each user and device token, for the admin's search: SHA-256 of the token
    /// -> its kind and first 8 hex digits (`pfu_1a2b3c4d`), 32 of its 256 bits
    /// (`fleet::token_prefixes`).
    TokenPrefixes,
}

impl TreeId {
    pub const ALL: [TreeId; 47] = [
        TreeId::Meta,
        TreeId::Changes,
        TreeId::Proxies,
        TreeId::ProxyLoad,
        TreeId::ProxyEvents,
        TreeId::Tasks,
        TreeId::TaskKeys,
        TreeId::TaskSchedule,
        TreeId::Users,
        TreeId::UserEmails,
        TreeId::UserTokens,
        TreeId::ProxyUsers,
        TreeId::ProxyAssigned,
        TreeId::UserHistory,
        TreeId::NeedsFallback,
        TreeId::Invitations,
        TreeId::Plans,
        TreeId::Outbox,
        TreeId::ProLinks,
        TreeId::ProCounts,
        TreeId::ProxyTokens,
        TreeId::ProExpiry,
        TreeId::Payments,
        TreeId::UserPayments,
        TreeId::StripeEvents,
        TreeId::Codes,
        TreeId::Redemptions,
        TreeId::AdminAccounts,
        TreeId::AdminSessions,
        TreeId::Audit,
        TreeId::Invitees,
        TreeId::ProxyCredentials,
        TreeId::ProxySecrets,
        TreeId::Enrolments,
        TreeId::EnrolmentTokens,
        TreeId::UserInvitations,
        TreeId::InvitationLedgers,
        TreeId::ProxyExposure,
        TreeId::UserCountries,
        TreeId::BlockVerdicts,
        TreeId::Probes,
        TreeId::ProbeTokens,
        TreeId::Suspicions,
        TreeId::TrustLevels,
        TreeId::ProxyFloors,
        TreeId::TrustRises,
        TreeId::TokenPrefixes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TreeId::Meta => "meta",
            TreeId::Changes => "changes",
            TreeId::Proxies => "proxies",
            TreeId::ProxyLoad => "proxy_load",
            TreeId::ProxyEvents => "proxy_events",
            TreeId::Tasks => "tasks",
            TreeId::TaskKeys => "task_keys",
            TreeId::TaskSchedule => "task_schedule",
            TreeId::Users => "users",
            TreeId::UserEmails => "user_emails",
            TreeId::UserTokens => "user_tokens",
            TreeId::ProxyUsers => "proxy_users",
            TreeId::ProxyAssigned => "proxy_assigned",
            TreeId::UserHistory => "user_history",
            TreeId::NeedsFallback => "needs_fallback",
            TreeId::Invitations => "invitations",
            TreeId::Plans => "plans",
            TreeId::Outbox => "outbox",
            TreeId::ProLinks => "pro_links",
            TreeId::ProCounts => "pro_counts",
            TreeId::ProxyTokens => "proxy_tokens",
            TreeId::ProExpiry => "pro_expiry",
            TreeId::Payments => "payments",
            TreeId::UserPayments => "user_payments",
            TreeId::StripeEvents => "stripe_events",
            TreeId::Codes => "codes",
            TreeId::Redemptions => "redemptions",
            TreeId::AdminAccounts => "admin_accounts",
            TreeId::AdminSessions => "admin_sessions",
            TreeId::Audit => "audit",
            TreeId::Invitees => "invitees",
            TreeId::ProxyCredentials => "proxy_credentials",
            TreeId::ProxySecrets => "proxy_secrets",
            TreeId::Enrolments => "enrolments",
            TreeId::EnrolmentTokens => "enrolment_tokens",
            TreeId::UserInvitations => "user_invitations",
            TreeId::InvitationLedgers => "invitation_ledgers",
            TreeId::ProxyExposure => "proxy_exposure",
            TreeId::UserCountries => "user_countries",
            TreeId::BlockVerdicts => "block_verdicts",
            TreeId::Probes => "probes",
            TreeId::ProbeTokens => "probe_tokens",
            TreeId::Suspicions => "suspicions",
            TreeId::TrustLevels => "trust_levels",
            TreeId::ProxyFloors => "proxy_floors",
            TreeId::TrustRises => "trust_rises",
            TreeId::TokenPrefixes => "token_prefixes",
        }
    }
}

/// One tree's records as raw bytes: (tree name, [(key, value)]).
pub type TreeSnapshot = (&'static str, Vec<(sled::IVec, sled::IVec)>);

/// One open sled database: a generation of the store (`generations.rs`).
struct Engine {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    flusher: Flusher,
    generation: Generation,
}

impl Engine {
    /// Must run inside a tokio runtime (it starts the flusher).
    fn open(mut generation: Generation) -> Result<Engine> {
        let db = sled::Config::new()
            .path(&generation.dir)
            .cache_capacity(256 * 1024 * 1024)
            .open()
            .map_err(|e| Error::caused_by(format!("open {}", generation.dir.display()), e))?;
        let trees = TreeId::ALL
            .iter()
            .map(|id| db.open_tree(id.name()))
            .collect::<Result<Vec<_>, _>>()?;
        // A store never rewritten is measured from its size now: rewriting a big store the
        // moment it opens would hold writers for seconds per million records at start-up.
        if generation.written_bytes == 0 {
            generation.written_bytes = db.size_on_disk()?;
        }
        let flusher = Flusher::start();
        Ok(Engine {
            db,
            trees,
            flusher,
            generation,
        })
    }
}

#[derive(Clone)]
pub struct Store {
    /// The data directory (it holds the generations).
    root: Arc<PathBuf>,
    /// The live generation; replaced whole by a compaction, while writers wait at `gate`.
    engine: Arc<ArcSwap<Engine>>,
    compaction: Arc<compaction::State>,
    /// Committed writes per tree, counted in memory: readers that cache what they derive from
    /// a tree compare this instead of re-reading the tree.
    writes: std::sync::Arc<[std::sync::atomic::AtomicU64; TreeId::ALL.len()]>,
    /// Rung after every commit that appended to the change log (the Redis mirror waits on it).
    changed: std::sync::Arc<tokio::sync::Notify>,
    /// Writes hold it shared; a snapshot holds it alone for the moment it copies the trees,
    /// so a backup never sees half of a multi-record change (sled has no read snapshots).
    gate: std::sync::Arc<std::sync::RwLock<()>>,
    /// Refuses writes while the data disk is nearly full (`disk_guard.rs`).
    disk: std::sync::Arc<DiskGuard>,
    /// Set once when a replica is kept (a Redis mirror): see `replication.rs`.
    replication: std::sync::Arc<std::sync::OnceLock<replication::Replication>>,
    /// Writes made durable in a journal of their own and folded into the trees later
    /// (`deferred.rs`): the heartbeat's fast path.
    deferred: Arc<deferred::Deferred>,
}

impl Store {
    /// Opens (or creates) the database. Must run inside a tokio runtime (it starts the flusher).
    /// Whether `dir` holds a store (commands that manage one refuse a directory without).
    pub fn exists(dir: &Path) -> bool {
        generations::exists(dir)
    }

    /// A restore (from a file or from Redis) never writes over a directory that holds anything.
    pub fn refuse_occupied(data_dir: &Path) -> Result<()> {
        let occupied = std::fs::read_dir(data_dir)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false);
        if occupied {
            return Err(Error::invalid(
                "data_dir_not_empty",
                format!(
                    "{} is not empty: restore into a new directory (then point data_dir at it)",
                    data_dir.display()
                ),
            ));
        }
        Ok(())
    }

    pub fn open(dir: &Path) -> Result<Store> {
        let io = |e: std::io::Error| Error::caused_by(dir.display().to_string(), e);
        std::fs::create_dir_all(dir).map_err(io)?;
        let generation = generations::current(dir).map_err(io)?;
        let engine = Engine::open(generation)?;
        // Only after sled holds its lock: another process may have this store open.
        generations::remove_stale(dir, &engine.generation).map_err(io)?;
        let (deferred, journal) = deferred::Deferred::open(dir)?;
        let store = Store {
            root: Arc::new(dir.to_path_buf()),
            engine: Arc::new(ArcSwap::from_pointee(engine)),
            compaction: Default::default(),
            writes: std::sync::Arc::new(std::array::from_fn(|_| Default::default())),
            changed: Default::default(),
            gate: Default::default(),
            disk: std::sync::Arc::new(DiskGuard::new(dir)),
            replication: Default::default(),
            deferred: Arc::new(deferred),
        };
        store.replay_deferred(&journal)?;
        Ok(store)
    }

    /// Shows the journal's records that no fold covered (the process stopped first) again:
    /// reads see them at once, the next fold writes them to the trees.
    fn replay_deferred(&self, journal: &[u8]) -> Result<()> {
        let folded_through: u64 = self
            .get(TreeId::Meta, deferred::FOLDED_THROUGH)?
            .unwrap_or(0);
        let mut pending = self.deferred.lock();
        let replayed = pending.replay(journal, folded_through);
        if !replayed.is_empty() {
            tracing::info!(
                records = replayed.len(),
                "deferred writes acknowledged before the last stop are read from the journal"
            );
        }
        for deferral in replayed {
            self.deferred.restore(&mut pending, deferral);
        }
        Ok(())
    }

    fn tx<'a>(&self, trees: &'a [sled::transaction::TransactionalTree]) -> Tx<'a> {
        Tx {
            trees,
            replication: self.replication.get().copied(),
            captured: Default::default(),
            written: std::cell::Cell::new(0),
        }
    }

    /// The data directory the store was opened in.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Opens a store this process has just closed. sled's I/O threads let go of the
    /// directory's lock a moment after `close` returns, so a lock still held is waited for,
    /// up to `within`; any other error is returned at once.
    pub fn reopen(dir: &Path, within: std::time::Duration) -> Result<Store> {
        let deadline = std::time::Instant::now() + within;
        loop {
            match Store::open(dir) {
                Err(e)
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                opened => return opened,
            }
        }
    }

    /// Shared by writers (a poisoned lock only means a writer panicked: the data is sled's).
    fn write_gate(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every record of every tree at one instant, as raw bytes: (tree name, key, value).
    /// Writers wait while the copy is made (about a second per million records here).
    pub fn snapshot(&self) -> Result<Vec<TreeSnapshot>> {
        self.fold_deferred()?;
        self.with_writes_held(|| {
            TreeId::ALL
                .iter()
                .map(|&id| {
                    let records = self.tree(id).iter().collect::<sled::Result<Vec<_>>>()?;
                    Ok((id.name(), records))
                })
                .collect()
        })
    }

    /// Runs `read` while every writer waits, so reads that span trees see no half-committed
    /// change. `read` must not write (the gate is not reentrant).
    pub fn with_writes_held<T>(&self, read: impl FnOnce() -> T) -> T {
        let _alone = self
            .gate
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        read()
    }

    /// Loads records made by [`Store::snapshot`] into this (empty) store, in one batch per
    /// tree, and flushes. Trees this version does not know are an error: nothing is dropped.
    pub fn load(&self, tree: &str, records: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        let id = TreeId::ALL
            .iter()
            .copied()
            .find(|id| id.name() == tree)
            .ok_or_else(|| Error::internal(format!("the backup has an unknown tree `{tree}`")))?;
        let mut batch = sled::Batch::default();
        for (key, value) in records {
            batch.insert(key, value);
        }
        self.tree(id).apply_batch(batch)?;
        Ok(())
    }

    /// From now on, every transaction logs the writes `replication` carries (set once, at
    /// start, before anything writes; a second call changes nothing).
    pub fn keep_replica(&self, replication: replication::Replication) {
        let _ = self.replication.set(replication);
    }

    /// A handle on one tree of the live generation (cheap: sled trees are reference-counted).
    fn tree(&self, id: TreeId) -> sled::Tree {
        self.engine.load().trees[id as usize].clone()
    }

    /// Runs `body` atomically over all trees. sled may run it more than once on conflict,
    /// so it must only read and write through `tx`.
    pub fn transaction<T>(&self, body: impl Fn(&Tx) -> TxResult<T>) -> Result<T> {
        self.disk.admit()?;
        self.transaction_while_full(body)
    }

    /// As `transaction`, also while the disk guard refuses writes: for the few small writes an
    /// operator needs to act on a full disk (signing in to the panel: a session, a second
    /// factor's use), never for what untrusted callers can repeat. The engine's own full-disk
    /// error still stops it.
    pub fn transaction_while_full<T>(&self, body: impl Fn(&Tx) -> TxResult<T>) -> Result<T> {
        let _writing = self.write_gate();
        let mut pending = self.deferred.lock();
        self.transaction_locked(&mut pending, body)
    }

    /// A transaction while this caller holds the deferred writes: it folds them in first.
    fn transaction_locked<T>(
        &self,
        pending: &mut deferred::Pending,
        body: impl Fn(&Tx) -> TxResult<T>,
    ) -> Result<T> {
        let written = std::cell::Cell::new(0u64);
        let engine = self.engine.load();
        let result = engine.trees.as_slice().transaction(|trees| {
            let tx = self.tx(trees);
            self.deferred.fold_into(pending, &tx)?;
            let value = body(&tx)?;
            tx.log_captured()?;
            written.set(tx.written.get());
            Ok(value)
        });
        if result.is_ok() {
            self.deferred.folded(pending);
            self.count_writes(written.get());
        }
        result
            .map_err(Error::from)
            .inspect_err(|e| self.disk.note(e))
    }

    /// Runs `body` alone among writers; what it returns to write is made visible at once and
    /// written to the deferred journal (`deferred.rs`), not yet synced: call
    /// `deferred_durable` before acknowledging it. `None` from `body` writes nothing.
    /// Reads in `body` go through the store as usual (they see earlier deferred writes).
    pub fn defer<T>(
        &self,
        body: impl FnOnce() -> Result<Option<(T, Deferral)>>,
    ) -> Result<Option<T>> {
        self.disk.admit()?;
        let _writing = self.write_gate();
        let mut pending = self.deferred.lock();
        let Some((value, deferral)) = body()? else {
            return Ok(None);
        };
        let trees = self
            .deferred
            .append(&mut pending, deferral)
            .inspect_err(|e| self.disk.note(e))?;
        // Not the change log's bit: the mirror is woken by the fold that logs it.
        self.count_writes(trees);
        if pending.journal_bytes() >= deferred::FOLD_AT_BYTES {
            self.fold_locked(&mut pending)?;
        }
        Ok(Some(value))
    }

    /// Change-log entries of deferred writes that the next fold will append (`last_seq` does
    /// not count them yet).
    pub fn changes_deferred(&self) -> u64 {
        self.deferred.changes_pending()
    }

    /// Blocks until every deferred write so far is on disk.
    pub fn deferred_durable(&self) -> Result<()> {
        self.deferred.sync().inspect_err(|e| self.disk.note(e))
    }

    /// Folds the deferred writes into the trees, flushes and starts the journal again. Blocking
    /// (a flush): the fold job calls it every `FOLD_EVERY`, a snapshot before it copies.
    pub fn fold_deferred(&self) -> Result<()> {
        if !self.deferred.any_pending() {
            return Ok(());
        }
        let _writing = self.write_gate();
        let mut pending = self.deferred.lock();
        self.fold_locked(&mut pending)
    }

    fn fold_locked(&self, pending: &mut deferred::Pending) -> Result<()> {
        self.transaction_locked(pending, |_| Ok(()))?;
        // Writers wait for this flush (about a millisecond here, once per fold): the journal
        // may only start again once the trees hold all of it on disk.
        self.flush_now()?;
        pending.rewind();
        Ok(())
    }

    /// Resolves after the next commit that appends to the change log (or at once if one
    /// happened since the last wait): a single waiter, the Redis mirror.
    pub async fn next_change(&self) {
        self.changed.notified().await
    }

    /// `trees`: a bit per tree written (bit `TreeId as u64`).
    fn count_writes(&self, trees: u64) {
        if trees & (1 << TreeId::Changes as u64) != 0 {
            self.changed.notify_one();
        }
        for (id, counter) in self.writes.iter().enumerate() {
            if trees & (1 << id) != 0 {
                counter.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            }
        }
    }

    /// How many committed transactions (and single puts) have written `tree` since start.
    pub fn writes(&self, tree: TreeId) -> u64 {
        self.writes[tree as usize].load(std::sync::atomic::Ordering::Acquire)
    }

    /// Resolves when every write made before the call is on disk (shared group commit).
    pub async fn durable(&self) -> Result<()> {
        let (flusher, db) = {
            let engine = self.engine.load();
            (engine.flusher.clone(), engine.db.clone())
        };
        let flushed = flusher.flushed(&db).await;
        drop(db);
        flushed.inspect_err(|e| self.disk.note(e))
    }

    /// Refuse writes while fewer than `bytes` are free on the data disk (0: never).
    pub fn guard_disk(&self, bytes: u64) -> std::io::Result<()> {
        self.disk.set_min_free(bytes);
        self.disk.refresh().map(|_| ())
    }

    /// Reads the free space again, every `disk_guard::WATCH_EVERY`, until `stop`; logs each
    /// time writes stop or resume. Returns early, with `true`, once the engine itself failed
    /// at a full disk.
    pub async fn watch_disk(self, mut stop: tokio::sync::watch::Receiver<bool>) -> bool {
        let mut every = tokio::time::interval(disk_guard::WATCH_EVERY);
        while !*stop.borrow() {
            if self.disk.status().storage_failed {
                return true;
            }
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.changed() => break,
            }
            match self.disk.refresh() {
                Ok(Some(true)) => {
                    let why = self.disk.admit().err().map(|e| e.to_string());
                    tracing::error!("{}", why.unwrap_or_default());
                }
                Ok(Some(false)) => tracing::warn!("the data disk has room again: writes resume"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the data disk's free space"),
            }
        }
        false
    }

    pub fn disk_status(&self) -> DiskStatus {
        self.disk.status()
    }

    /// How many handles on this store exist (clones of it, in every service and task).
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.engine)
    }

    /// Flushes and closes the store: once it returns, the database's files are released and
    /// another `Store::open` (this process or another) may take them. Only the last handle
    /// can close it (see `handles`); with others still open, nothing is closed. Blocking.
    pub fn close(self) -> Result<()> {
        self.fold_deferred()?;
        self.flush_now()?;
        let others = self.handles() - 1;
        if others > 0 {
            return Err(Error::internal(format!(
                "the store is still open in {others} other handles"
            )));
        }
        drop(self);
        Ok(())
    }

    /// A blocking flush, for shutdown.
    pub fn flush_now(&self) -> Result<()> {
        self.engine
            .load()
            .db
            .flush()
            .map_err(Error::from)
            .inspect_err(|e| self.disk.note(e))?;
        Ok(())
    }

    pub fn get<V: DeserializeOwned>(
        &self,
        tree: TreeId,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<V>> {
        // The overlay first: a fold writes the trees before it empties the overlay.
        if let Some(bytes) = self.deferred.value(tree, key.as_ref()) {
            return Ok(Some(decode(&bytes)?));
        }
        match self.tree(tree).get(key.as_ref())? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// An entry's newest value: the deferred overlay's, if it holds one (`deferred.rs`).
    /// `stored` was read from the tree when `deferred.folds()` was `folds`: if a fold ran since,
    /// the overlay may have been emptied after `stored` was read, and the tree is read again.
    fn latest(
        &self,
        tree: TreeId,
        key: &[u8],
        stored: sled::IVec,
        folds: u64,
    ) -> Result<sled::IVec> {
        if let Some(newer) = self.deferred.value(tree, key) {
            return Ok(newer);
        }
        if self.deferred.folds() != folds {
            // A failed read is the caller's error, not a silent fall-back to the stale value.
            if let Some(folded) = self.tree(tree).get(key)? {
                return Ok(folded);
            }
        }
        Ok(stored)
    }

    /// `entries` (a tree's, in any order) with each value as `latest` gives it.
    fn latest_entries<'a>(
        &'a self,
        tree: TreeId,
        mut entries: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + 'a,
    ) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec)>> + 'a {
        std::iter::from_fn(move || {
            let folds = self.deferred.folds();
            let entry = entries.next()?;
            Some(entry.map_err(Error::from).and_then(|(key, stored)| {
                let value = self.latest(tree, &key, stored, folds)?;
                Ok((key, value))
            }))
        })
    }

    pub fn contains(&self, tree: TreeId, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.tree(tree).contains_key(key.as_ref())?)
    }

    /// Writes one record outside a transaction (for single-record state such as the meta tree).
    pub fn put<V: Serialize>(&self, tree: TreeId, key: impl AsRef<[u8]>, value: &V) -> Result<()> {
        if let Some(replication) = self.replication.get() {
            if (replication.carries)(tree, key.as_ref()) {
                // The replica must see it: through a transaction, which logs it.
                return self.transaction(|tx| tx.put(tree, key.as_ref(), value));
            }
        }
        self.disk.admit()?;
        let _writing = self.write_gate();
        self.tree(tree)
            .insert(key.as_ref(), codec::encode(value)?)?;
        self.count_writes(1 << tree as u64);
        Ok(())
    }

    /// Every value of a tree, in key order.
    pub fn values<V: DeserializeOwned>(
        &self,
        tree: TreeId,
    ) -> impl Iterator<Item = Result<V>> + '_ {
        self.latest_entries(tree, self.tree(tree).iter())
            .map(|item| decode(&item?.1))
    }

    /// Entries with keys in `[from, ..)`, in key order.
    pub fn scan_from<V: DeserializeOwned>(
        &self,
        tree: TreeId,
        from: impl AsRef<[u8]>,
    ) -> impl Iterator<Item = Result<(sled::IVec, V)>> + '_ {
        self.latest_entries(tree, self.tree(tree).range(from.as_ref()..))
            .map(|item| {
                let (key, value) = item?;
                Ok((key, decode(&value)?))
            })
    }

    /// Entries in reverse key order (newest first for time- or sequence-keyed trees).
    pub fn scan_rev<V: DeserializeOwned>(
        &self,
        tree: TreeId,
        before: Option<&[u8]>,
    ) -> Box<dyn Iterator<Item = Result<(sled::IVec, V)>> + '_> {
        let id = tree;
        let tree = self.tree(tree);
        let iter = match before {
            Some(b) => tree.range(..b.to_vec()).rev(),
            None => tree.iter().rev(),
        };
        Box::new(self.latest_entries(id, iter).map(|item| {
            let (key, value) = item?;
            Ok((key, decode(&value)?))
        }))
    }

    /// A tree's records as stored (key and value bytes), in key order: the replica's copy.
    pub fn raw_entries(
        &self,
        tree: TreeId,
    ) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec)>> + '_ {
        self.latest_entries(tree, self.tree(tree).iter())
    }

    /// Keys only (index trees), in order, starting at `from`.
    pub fn keys_from(
        &self,
        tree: TreeId,
        from: impl AsRef<[u8]>,
    ) -> impl Iterator<Item = Result<sled::IVec>> + '_ {
        self.tree(tree)
            .range(from.as_ref()..)
            .keys()
            .map(|k| k.map_err(Error::from))
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix<V: DeserializeOwned>(
        &self,
        tree: TreeId,
        prefix: impl AsRef<[u8]>,
    ) -> impl Iterator<Item = Result<(sled::IVec, V)>> + '_ {
        self.latest_entries(tree, self.tree(tree).scan_prefix(prefix.as_ref()))
            .map(|item| {
                let (key, value) = item?;
                Ok((key, decode(&value)?))
            })
    }

    /// Keys only, with the given prefix.
    pub fn keys_with_prefix(
        &self,
        tree: TreeId,
        prefix: impl AsRef<[u8]>,
    ) -> impl Iterator<Item = Result<sled::IVec>> + '_ {
        self.tree(tree)
            .scan_prefix(prefix.as_ref())
            .keys()
            .map(|k| k.map_err(Error::from))
    }

    pub fn first_key(&self, tree: TreeId) -> Result<Option<sled::IVec>> {
        Ok(self.tree(tree).first()?.map(|(k, _)| k))
    }

    pub fn len(&self, tree: TreeId) -> usize {
        self.tree(tree).len()
    }
}

// sled stays inside the store: its errors become the crate's here, with the storage error kept
// as the source.
impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
                Error::StorageFull(format!("the data disk is full: {io}"))
            }
            other => Error::caused_by("storage", other),
        }
    }
}

impl From<sled::transaction::TransactionError<Error>> for Error {
    fn from(e: sled::transaction::TransactionError<Error>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(inner) => inner,
            sled::transaction::TransactionError::Storage(e) => e.into(),
        }
    }
}
