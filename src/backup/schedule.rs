//! Scheduled backups into `backup_dir`, every `backup_interval_secs`, keeping the newest
//! `backup_keep`. The first one is taken one interval after start, so restarts do not pile up
//! backups.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::now_ms;
use crate::store::Store;

const PREFIX: &str = "proxyfleet-";
pub const SUFFIX: &str = ".pfbak";

/// `proxyfleet-20261125T171500Z.pfbak`: names sort by time.
pub fn file_name(prefix: &str, at_ms: u64) -> String {
    let at = chrono::DateTime::from_timestamp_millis(at_ms as i64).unwrap_or_default();
    format!("{prefix}{}{SUFFIX}", at.format("%Y%m%dT%H%M%S%.3fZ"))
}

/// Pure: the scheduled backups to delete so that the newest `keep` remain.
pub fn beyond_retention(mut names: Vec<String>, keep: usize) -> Vec<String> {
    names.retain(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX));
    names.sort();
    let excess = names.len().saturating_sub(keep);
    names.truncate(excess);
    names
}

/// What the schedule needs: where, how often, how many to keep, and to whom to encrypt.
#[derive(Clone)]
pub struct Schedule {
    pub dir: PathBuf,
    /// Zero turns scheduled backups off.
    pub every: Duration,
    pub keep: usize,
    pub recipient: Option<super::encryption::Recipient>,
}

/// Takes one scheduled backup and applies the retention.
pub fn take(store: &Store, schedule: &Schedule) -> crate::error::Result<super::Written> {
    let dir = &schedule.dir;
    let path = dir.join(file_name(PREFIX, now_ms()));
    let written = super::write_file(store, &path, schedule.recipient.as_ref())?;
    let names = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    for old in beyond_retention(names, schedule.keep) {
        if let Err(e) = std::fs::remove_file(dir.join(&old)) {
            tracing::warn!(file = %old, error = %e, "could not remove an old backup");
        }
    }
    Ok(written)
}

pub async fn run(store: Store, schedule: Schedule, stop: watch::Receiver<bool>) {
    if schedule.every.is_zero() {
        return;
    }
    let schedule = Arc::new(schedule);
    let first = tokio::time::Instant::now() + schedule.every;
    crate::clock::repeat(first, schedule.every, stop, || async {
        let store = store.clone();
        let schedule = schedule.clone();
        match tokio::task::spawn_blocking(move || take(&store, &schedule)).await {
            Ok(Ok(written)) => tracing::info!(
                path = %written.path.display(), records = written.records, bytes = written.bytes,
                "scheduled backup written"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, "scheduled backup failed"),
            Err(e) => tracing::error!(error = %e, "scheduled backup panicked"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_are_kept_and_other_files_left_alone() {
        let names = [
            "proxyfleet-20261101T000000.000Z.pfbak",
            "proxyfleet-20261103T000000.000Z.pfbak",
            "proxyfleet-20261102T000000.000Z.pfbak",
            "pre-migration-0-to-1-20261001T000000.000Z.pfbak",
            "notes.txt",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            beyond_retention(names.clone(), 2),
            ["proxyfleet-20261101T000000.000Z.pfbak"]
        );
        assert!(beyond_retention(names, 5).is_empty());
        assert_eq!(
            file_name("proxyfleet-", 1_764_000_000_123),
            "proxyfleet-20251124T160000.123Z.pfbak"
        );
    }
}
