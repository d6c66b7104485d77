//! Bounded disk use. sled keeps the space of every value it rewrites (a heartbeat rewrites its
//! proxy's record), so left alone the store grows with traffic, not with data. A compaction
//! copies every live record into a fresh generation (`generations.rs`), makes it live and deletes
//! the old one. It runs when the store takes `ratio` times the space it took right after the last
//! rewrite (and at least `min_bytes`), so its cost is paid once per such growth.
//!
//! Writers wait while the copy is made (reads go on, from the old generation, which holds the
//! same data): a write acknowledged before the copy is in it, one made after goes to the new one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::generations;
use super::{Engine, Store, TreeId};
use crate::error::{Error, Result};

/// Records per sled batch while copying.
const BATCH: usize = 10_000;
/// How long a retired generation may stay in use (by a read that began before the switch)
/// before its files are deleted anyway (Linux keeps open files readable).
const RETIRE_WAIT: Duration = Duration::from_secs(30);

/// When to compact: at `ratio` times the size after the last rewrite, and not below
/// `min_bytes`. A ratio of 0 never compacts.
#[derive(Debug, Clone, Copy)]
pub struct CompactPolicy {
    pub ratio: u64,
    pub min_bytes: u64,
}

impl CompactPolicy {
    /// When the store is compacted (`store_compact_*`).
    pub fn from_config(config: &crate::config::Config) -> CompactPolicy {
        CompactPolicy {
            ratio: config.store_compact_ratio,
            min_bytes: config.store_compact_min_mb.saturating_mul(1_048_576),
        }
    }

    /// The size on disk at which the store is rewritten, given its size right after the last
    /// rewrite (or when it was opened, for a store never rewritten).
    pub fn threshold(&self, written_bytes: u64) -> Option<u64> {
        (self.ratio > 0).then(|| self.min_bytes.max(written_bytes.saturating_mul(self.ratio)))
    }

    pub fn due(&self, on_disk: u64, written_bytes: u64) -> bool {
        self.threshold(written_bytes)
            .is_some_and(|threshold| on_disk >= threshold)
    }
}

/// One compaction, for the log and the admin.
#[derive(Debug, Clone, Serialize)]
pub struct Compacted {
    pub at_ms: u64,
    pub generation: u64,
    pub records: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// How long writers waited.
    pub writes_paused_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompactionStatus {
    pub generation: u64,
    pub bytes_on_disk: u64,
    /// Size on disk right after the live generation was written (or when this process opened
    /// it, if it was never rewritten).
    pub bytes_after_last: u64,
    /// The size on disk that starts the next compaction (`null`: never).
    pub next_at_bytes: Option<u64>,
    /// Compactions since the server started.
    pub compactions: u64,
    pub last: Option<Compacted>,
}

#[derive(Default)]
pub(super) struct State {
    /// One compaction (or retirement) at a time.
    running: Mutex<()>,
    count: AtomicU64,
    last: Mutex<Option<Compacted>>,
}

impl Store {
    /// Bytes the live generation takes on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.engine.load().db.size_on_disk()?)
    }

    pub fn compaction_status(&self, policy: CompactPolicy) -> Result<CompactionStatus> {
        let engine = self.engine.load();
        let written = engine.generation.written_bytes;
        Ok(CompactionStatus {
            generation: engine.generation.number,
            bytes_on_disk: engine.db.size_on_disk()?,
            bytes_after_last: written,
            next_at_bytes: policy.threshold(written),
            compactions: self.compaction.count.load(Ordering::Relaxed),
            last: lock(&self.compaction.last).clone(),
        })
    }

    /// Compacts if `policy` says the store has grown enough. Blocking: run it off the runtime's
    /// worker threads (it must still run inside the runtime: the new generation's flusher is a
    /// task).
    pub fn compact_if_due(&self, policy: CompactPolicy) -> Result<Option<Compacted>> {
        let engine = self.engine.load_full();
        if !policy.due(engine.db.size_on_disk()?, engine.generation.written_bytes) {
            return Ok(None);
        }
        drop(engine);
        self.compact().map(Some)
    }

    /// Rewrites every record into a new generation and makes it live. Blocking, as above.
    pub fn compact(&self) -> Result<Compacted> {
        self.disk.admit()?;
        let _one = lock(&self.compaction.running);
        let started = Instant::now();
        let _alone = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        let old = self.engine.load_full();
        let bytes_before = old.db.size_on_disk()?;
        // The copy needs at most the old size; never let it be what fills the disk.
        let free = fs2::available_space(self.root.as_path())
            .map_err(|e| Error::caused_by(self.root.display().to_string(), e))?;
        if free < bytes_before {
            return Err(Error::internal(format!(
                "not enough free space to compact the store: {free} bytes free, up to {bytes_before} needed"
            )));
        }
        let target = generations::next(&self.root, Some(&old.generation));
        let (new, records) = match copy_into(&old, target.clone()) {
            Ok(copied) => copied,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&target.dir);
                return Err(e);
            }
        };
        if let Err(e) = generations::make_current(&self.root, &new.generation) {
            drop(new);
            let _ = std::fs::remove_dir_all(&target.dir);
            return Err(Error::internal(format!(
                "switching to {}: {e}",
                target.dir.display()
            )));
        }
        let done = Compacted {
            at_ms: crate::clock::now_ms(),
            generation: new.generation.number,
            records,
            bytes_before,
            bytes_after: new.generation.written_bytes,
            writes_paused_ms: started.elapsed().as_millis() as u64,
        };
        self.engine.store(Arc::new(new));
        drop(_alone);
        drop(_one);
        self.compaction.count.fetch_add(1, Ordering::Relaxed);
        *lock(&self.compaction.last) = Some(done.clone());
        self.retire(old);
        Ok(done)
    }

    /// Deletes a replaced generation once nothing uses it (in the background).
    fn retire(&self, old: Arc<Engine>) {
        let store = self.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + RETIRE_WAIT;
            while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(old);
            let _one = lock(&store.compaction.running);
            let live = store.engine.load().generation.clone();
            if let Err(e) = generations::remove_stale(&store.root, &live) {
                tracing::warn!(error = %e, "cannot delete the replaced store generation (it goes at the next start)");
            }
        });
    }
}

/// Copies every tree of `from` into a new engine at `target` and flushes it; returns it with
/// its size on disk recorded, and the number of records.
fn copy_into(from: &Engine, target: generations::Generation) -> Result<(Engine, u64)> {
    if target.dir.exists() {
        std::fs::remove_dir_all(&target.dir)
            .map_err(|e| Error::caused_by(target.dir.display().to_string(), e))?;
    }
    let mut to = Engine::open(target)?;
    let mut records = 0u64;
    for id in TreeId::ALL {
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for item in from.trees[id as usize].iter() {
            let (key, value) = item?;
            batch.insert(key, value);
            in_batch += 1;
            if in_batch == BATCH {
                to.trees[id as usize].apply_batch(std::mem::take(&mut batch))?;
                records += in_batch as u64;
                in_batch = 0;
            }
        }
        to.trees[id as usize].apply_batch(batch)?;
        records += in_batch as u64;
    }
    to.db.flush()?;
    to.generation.written_bytes = to.db.size_on_disk()?;
    Ok((to, records))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_at_ratio_times_the_last_size_and_never_below_the_minimum() {
        let policy = CompactPolicy {
            ratio: 4,
            min_bytes: 100,
        };
        assert!(!policy.due(99, 0));
        assert!(policy.due(100, 0));
        assert!(!policy.due(399, 100));
        assert!(policy.due(400, 100));
        assert_eq!(policy.threshold(10), Some(100));
        let never = CompactPolicy {
            ratio: 0,
            min_bytes: 0,
        };
        assert!(!never.due(u64::MAX, 0));
        assert_eq!(never.threshold(5), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_compaction_keeps_every_record_and_gives_back_the_space() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Churn: the same 1,000 records rewritten 200 times.
        for round in 0..200u32 {
            store
                .transaction(|tx| {
                    for i in 0..1_000u32 {
                        tx.put(TreeId::Proxies, i.to_be_bytes(), &(round, "x".repeat(100)))?;
                    }
                    Ok(())
                })
                .unwrap();
        }
        store.flush_now().unwrap();
        let before = store.size_on_disk().unwrap();
        let store2 = store.clone();
        let done = tokio::task::spawn_blocking(move || store2.compact())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.generation, 2);
        assert_eq!(done.bytes_before, before);
        assert!(
            done.bytes_after * 4 < before,
            "{} bytes after, {before} before",
            done.bytes_after
        );
        let value: (u32, String) = store
            .get(TreeId::Proxies, 7u32.to_be_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(value.0, 199);
        assert_eq!(store.len(TreeId::Proxies), 1_000);
        // Writes go to the new generation and survive a reopen.
        store.put(TreeId::Meta, b"after", &1u8).unwrap();
        store.durable().await.unwrap();
        drop(store);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(reopened.get::<u8>(TreeId::Meta, b"after").unwrap(), Some(1));
        assert_eq!(reopened.len(TreeId::Proxies), 1_000);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.contains(&"store-1".to_string()), "{names:?}");
    }
}
