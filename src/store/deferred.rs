//! Deferred writes: the heartbeat's fast path.
//!
//! A heartbeat that only refreshes a proxy rewrites one record that already exists. Through
//! sled, every batch of them cost a transaction and an IO buffer handed to sled's own thread
//! pool, about 40 us of CPU per heartbeat above the bare server (BENCHMARKS.md, "Where the
//! time goes"). A deferred batch is instead appended to a journal file of its own and
//! `fdatasync`ed before it is acknowledged, kept in memory as an overlay that every read of
//! the store consults, and folded into the trees later:
//!
//! - every `Store::transaction` folds what is pending first, inside its own sled transaction,
//!   so a writer always reads and writes the latest records;
//! - a background job folds every `FOLD_EVERY` (the Redis mirror learns of the changes then),
//!   and a journal past `FOLD_AT_BYTES` is folded at once; both flush and rewind the journal.
//!
//! Recovery: a fold records the newest journal sequence number it folded
//! (`deferred.folded_through`, in the meta tree, in the same transaction). At open, the
//! journal's records past it are shown again as if just deferred, and the next fold writes
//! them to the trees.
//!
//! Journal records are `[length u32 LE][crc32 u32 LE][bincode Record]`, numbered without
//! gaps. The file is rewound only after a flushed fold covered every record in it, so reading
//! stops at the first record that is torn, fails its checksum or does not follow the one
//! before (a stale one from before the rewind).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::{TreeId, Tx, TxResult};
use crate::error::{Error, Result};

/// The journal's name in the data directory.
pub const JOURNAL_FILE: &str = "deferred.journal";
/// Meta key: the newest journal record folded into the trees.
pub(super) const FOLDED_THROUGH: &str = "deferred.folded_through";
/// How often pending writes are folded when nothing else writes.
pub const FOLD_EVERY: Duration = Duration::from_millis(200);
/// A journal this long is folded at once (about 0.3 s of heartbeats at full speed here).
pub(super) const FOLD_AT_BYTES: u64 = 4 << 20;
/// The journal grows by this much at a time, written as zeros and synced, so that an append
/// overwrites blocks already allocated and its `fdatasync` carries no metadata.
const GROW_BY: u64 = 1 << 20;
/// A record larger than this is corrupt (a batch of 256 proxies is far below it).
const MAX_RECORD: u32 = 16 << 20;

/// What a deferred batch changes.
#[derive(Debug, Default)]
pub struct Deferral {
    /// New values of records that already exist: a deferred write never adds or removes a
    /// key, so key scans and counts need not consult the overlay.
    pub writes: Vec<(TreeId, Vec<u8>, Vec<u8>)>,
    /// A change-log entry (its kind encoded with `codec::encode`) and when it happened.
    pub change: Option<(u64, Vec<u8>)>,
}

#[derive(Serialize, Deserialize)]
struct Record {
    seq: u64,
    writes: Vec<(u8, Vec<u8>, Vec<u8>)>,
    change: Option<(u64, Vec<u8>)>,
}

/// The deferred state of one store.
pub(super) struct Deferred {
    pending: Mutex<Pending>,
    /// Trees with values in the overlay, a bit per tree (reads skip the map when 0).
    mask: AtomicU64,
    /// Folds so far: a reader that read a tree before a fold and finds the overlay emptied
    /// after it reads the tree again (`Store::latest`).
    folds: AtomicU64,
    /// Change-log entries waiting for the fold (readers of the log count them as behind).
    changes_pending: AtomicU64,
    overlay: RwLock<HashMap<(u8, Vec<u8>), sled::IVec>>,
    /// The journal again, so that `sync` needs no lock.
    sync_handle: File,
}

/// What only one writer at a time touches: held across every transaction.
pub(super) struct Pending {
    journal: File,
    /// Where the next record goes, and how much of the file is allocated.
    position: u64,
    allocated: u64,
    /// Change-log entries not folded yet, in order.
    changes: Vec<(u64, Vec<u8>)>,
    last_seq: u64,
    folded_through: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::caused_by(path.display().to_string(), e)
}

impl Deferred {
    /// Opens (or creates, owner-only) the journal in `root`; returns it with the file's bytes,
    /// which the caller reads back (`Pending::replay`, `Deferred::restore`).
    pub(super) fn open(root: &Path) -> Result<(Deferred, Vec<u8>)> {
        let path = root.join(JOURNAL_FILE);
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut journal = options.open(&path).map_err(io(&path))?;
        let mut bytes = Vec::new();
        journal.read_to_end(&mut bytes).map_err(io(&path))?;
        let sync_handle = journal.try_clone().map_err(io(&path))?;
        let deferred = Deferred {
            pending: Mutex::new(Pending {
                journal,
                position: 0,
                allocated: bytes.len() as u64,
                changes: Vec::new(),
                last_seq: 0,
                folded_through: 0,
            }),
            mask: AtomicU64::new(0),
            changes_pending: AtomicU64::new(0),
            folds: AtomicU64::new(0),
            overlay: RwLock::default(),
            sync_handle,
        };
        Ok((deferred, bytes))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether anything waits to be folded (a hint: the fold itself checks under the lock).
    pub(super) fn any_pending(&self) -> bool {
        self.mask.load(Ordering::Acquire) != 0 || self.changes_pending() != 0
    }

    pub(super) fn folds(&self) -> u64 {
        self.folds.load(Ordering::Acquire)
    }

    /// Change-log entries deferred and not folded yet.
    pub(super) fn changes_pending(&self) -> u64 {
        self.changes_pending.load(Ordering::Acquire)
    }

    /// The overlay's value for `key`, if `tree` has one.
    pub(super) fn value(&self, tree: TreeId, key: &[u8]) -> Option<sled::IVec> {
        if self.mask.load(Ordering::Acquire) & (1 << tree as u64) == 0 {
            return None;
        }
        self.overlay
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(tree as u8, key.to_vec()))
            .cloned()
    }

    /// Appends `deferral` to the journal (not yet synced), then shows it to readers. Returns
    /// a bit per tree written.
    pub(super) fn append(&self, pending: &mut Pending, deferral: Deferral) -> Result<u64> {
        let seq = pending.last_seq + 1;
        let record = Record {
            seq,
            writes: deferral
                .writes
                .iter()
                .map(|(tree, key, value)| (*tree as u8, key.clone(), value.clone()))
                .collect(),
            change: deferral.change.clone(),
        };
        let payload = encode(&record)?;
        let mut framed = Vec::with_capacity(payload.len() + 8);
        framed.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        framed.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        framed.extend_from_slice(&payload);
        pending.write(&framed)?;
        pending.last_seq = seq;
        if deferral.change.is_some() {
            self.changes_pending.fetch_add(1, Ordering::AcqRel);
        }
        pending.changes.extend(deferral.change);
        Ok(self.show(deferral.writes))
    }

    /// Shows a record replayed from the journal again, as `append` did before the stop.
    pub(super) fn restore(&self, pending: &mut Pending, deferral: Deferral) {
        if deferral.change.is_some() {
            self.changes_pending.fetch_add(1, Ordering::AcqRel);
        }
        pending.changes.extend(deferral.change);
        self.show(deferral.writes);
    }

    fn show(&self, writes: Vec<(TreeId, Vec<u8>, Vec<u8>)>) -> u64 {
        let mut trees = 0;
        let mut overlay = self.overlay.write().unwrap_or_else(PoisonError::into_inner);
        for (tree, key, value) in writes {
            trees |= 1 << tree as u64;
            overlay.insert((tree as u8, key), value.into());
        }
        self.mask.fetch_or(trees, Ordering::AcqRel);
        trees
    }

    /// Makes every record appended so far durable.
    pub(super) fn sync(&self) -> Result<()> {
        self.sync_handle
            .sync_data()
            .map_err(|e| Error::caused_by("syncing the deferred journal", e))
    }

    /// Writes what is pending into `tx` (the first thing every transaction does).
    pub(super) fn fold_into(&self, pending: &Pending, tx: &Tx) -> TxResult<()> {
        if pending.last_seq == pending.folded_through {
            return Ok(());
        }
        let overlay = self.overlay.read().unwrap_or_else(PoisonError::into_inner);
        for ((tree, key), value) in overlay.iter() {
            tx.put_raw(TreeId::ALL[*tree as usize], key, value.to_vec())?;
        }
        for (at_ms, kind) in &pending.changes {
            tx.log_encoded(*at_ms, kind)?;
        }
        tx.put(TreeId::Meta, FOLDED_THROUGH, &pending.last_seq)
    }

    /// After the transaction that folded committed: the trees hold it all.
    pub(super) fn folded(&self, pending: &mut Pending) {
        if pending.last_seq == pending.folded_through {
            return;
        }
        // Counted before the overlay empties: see `folds`.
        self.folds.fetch_add(1, Ordering::AcqRel);
        self.overlay
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.mask.store(0, Ordering::Release);
        self.changes_pending.store(0, Ordering::Release);
        pending.changes.clear();
        pending.folded_through = pending.last_seq;
    }
}

impl Pending {
    pub(super) fn journal_bytes(&self) -> u64 {
        self.position
    }

    /// After a flushed fold covered every record: the next one goes to the start.
    pub(super) fn rewind(&mut self) {
        if self.last_seq == self.folded_through {
            self.position = 0;
        }
    }

    fn write(&mut self, framed: &[u8]) -> Result<()> {
        let end = self.position + framed.len() as u64;
        let failed = |e| Error::caused_by("writing the deferred journal", e);
        if end > self.allocated {
            let grown = end.div_ceil(GROW_BY) * GROW_BY;
            self.journal
                .seek(SeekFrom::Start(self.allocated))
                .map_err(failed)?;
            let zeros = vec![0u8; (grown - self.allocated) as usize];
            self.journal.write_all(&zeros).map_err(failed)?;
            self.journal.sync_all().map_err(failed)?;
            self.allocated = grown;
        }
        self.journal
            .seek(SeekFrom::Start(self.position))
            .map_err(failed)?;
        self.journal.write_all(framed).map_err(failed)?;
        self.position = end;
        Ok(())
    }

    /// Reads the journal's `bytes` at open: the records past the meta tree's `folded_through`
    /// (their writes were acknowledged, no fold covered them). They stay where they are; the
    /// caller shows them again (`Deferred::restore`), and the next fold writes them to the
    /// trees (by then the Redis replica, if any, is kept, so it sees them too).
    pub(super) fn replay(&mut self, bytes: &[u8], folded_through: u64) -> Vec<Deferral> {
        let mut replayed = Vec::new();
        let mut previous: Option<u64> = None;
        let mut rest = bytes;
        let mut end_of_replayed = 0;
        while let Some(record) = next_record(&mut rest) {
            if previous.is_some_and(|p| record.seq != p + 1) {
                break; // a stale record from before the last rewind
            }
            previous = Some(record.seq);
            if record.seq <= folded_through {
                continue;
            }
            if replayed.is_empty() && record.seq != folded_through + 1 {
                tracing::warn!(
                    first = record.seq,
                    folded_through,
                    "the deferred journal does not follow the store: not replayed"
                );
                break;
            }
            let writes = record
                .writes
                .into_iter()
                .filter_map(|(tree, key, value)| {
                    TreeId::ALL
                        .get(tree as usize)
                        .map(|&tree| (tree, key, value))
                })
                .collect();
            replayed.push(Deferral {
                writes,
                change: record.change,
            });
            end_of_replayed = bytes.len() - rest.len();
        }
        self.folded_through = folded_through;
        self.last_seq = folded_through + replayed.len() as u64;
        // New records follow the replayed ones; with none, the journal starts again.
        self.position = end_of_replayed as u64;
        replayed
    }
}

fn next_record(rest: &mut &[u8]) -> Option<Record> {
    let header = rest.get(..8)?;
    let length = u32::from_le_bytes(header[..4].try_into().ok()?);
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if length == 0 || length > MAX_RECORD {
        return None;
    }
    let payload = rest.get(8..8 + length as usize)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let record = decode(payload).ok()?;
    *rest = &rest[8 + length as usize..];
    Some(record)
}
