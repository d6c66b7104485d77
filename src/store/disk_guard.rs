//! Writes stop *before* the data disk is full. Measured here: when a flush meets ENOSPC, sled
//! keeps that error for good (every later write fails, even after space is freed, until the
//! process restarts). So the free space is read every second, and while it is under
//! `min_free_disk_mb` every write is refused with 503 `storage_full`; reads go on, and writes
//! resume by themselves once the operator frees space.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};

/// How often the free space is read.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What the admin sees: the dashboard, `/metrics` and `/healthz`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiskStatus {
    pub free_bytes: u64,
    pub min_free_bytes: u64,
    /// Writes are being refused because `free_bytes < min_free_bytes`.
    pub writes_refused: bool,
    /// The storage engine failed a write at the disk (the disk filled faster than the check):
    /// it keeps failing until the server is restarted.
    pub storage_failed: bool,
}

/// The rule, apart from the reading: a threshold of zero turns the guard off.
pub fn refuses(free_bytes: u64, min_free_bytes: u64) -> bool {
    free_bytes < min_free_bytes
}

#[derive(Debug, Default)]
pub struct DiskGuard {
    dir: PathBuf,
    min_free_bytes: AtomicU64,
    free_bytes: AtomicU64,
    refusing: AtomicBool,
    failed: AtomicBool,
}

impl DiskGuard {
    pub fn new(dir: &Path) -> DiskGuard {
        DiskGuard {
            dir: dir.to_path_buf(),
            ..Default::default()
        }
    }

    pub fn set_min_free(&self, bytes: u64) {
        self.min_free_bytes.store(bytes, Ordering::Release);
    }

    /// Reads the free space again; returns whether writes are refused now and were not before
    /// (or the reverse), for one log line per change.
    pub fn refresh(&self) -> std::io::Result<Option<bool>> {
        let free = fs2::available_space(&self.dir)?;
        self.free_bytes.store(free, Ordering::Release);
        let refusing = refuses(free, self.min_free_bytes.load(Ordering::Acquire));
        let was = self.refusing.swap(refusing, Ordering::AcqRel);
        Ok((was != refusing).then_some(refusing))
    }

    /// Checked by every write before it touches the engine (one atomic load).
    pub fn admit(&self) -> Result<()> {
        if self.refusing.load(Ordering::Acquire) {
            return Err(Error::StorageFull(format!(
                "the data disk has {} MB free, under min_free_disk_mb ({} MB): writes are refused until space is freed",
                self.free_bytes.load(Ordering::Acquire) / 1_048_576,
                self.min_free_bytes.load(Ordering::Acquire) / 1_048_576
            )));
        }
        Ok(())
    }

    /// Called with the engine's own errors: remembers that it met a full disk itself.
    pub fn note(&self, error: &Error) {
        if matches!(error, Error::StorageFull(_)) {
            self.failed.store(true, Ordering::Release);
        }
    }

    pub fn status(&self) -> DiskStatus {
        DiskStatus {
            free_bytes: self.free_bytes.load(Ordering::Acquire),
            min_free_bytes: self.min_free_bytes.load(Ordering::Acquire),
            writes_refused: self.refusing.load(Ordering::Acquire),
            storage_failed: self.failed.load(Ordering::Acquire),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_under_the_threshold_and_never_when_off() {
        assert!(refuses(10, 11));
        assert!(!refuses(11, 11));
        assert!(!refuses(0, 0));
    }

    #[test]
    fn a_refusing_guard_names_the_figures_and_admits_again_when_space_returns() {
        let dir = tempfile::tempdir().unwrap();
        let guard = DiskGuard::new(dir.path());
        guard.set_min_free(u64::MAX);
        assert_eq!(guard.refresh().unwrap(), Some(true));
        let refused = guard.admit().unwrap_err();
        assert_eq!(refused.code(), "storage_full");
        assert_eq!(guard.refresh().unwrap(), None, "no change, no new log line");
        guard.set_min_free(0);
        assert_eq!(guard.refresh().unwrap(), Some(false));
        assert!(guard.admit().is_ok());
        assert!(guard.status().free_bytes > 0);
    }
}
