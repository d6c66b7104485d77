//! The change log: every committed change gets the next sequence number, in the same
//! transaction as the change itself, so replaying the log in sequence order (the Redis mirror,
//! notifications) sees exactly the committed history, in order, with no gaps.
//!
//! The store does not know what the records are: the capabilities that write them define the
//! record type (`crate::changes::ChangeKind`), and the store keeps it as it keeps any value.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use sled::transaction::ConflictableTransactionError;

use super::codec::{encode, key_u64, u64_key};
use super::{Store, TreeId, Tx, TxResult};
use crate::error::Result;

const SEQ: &str = "changelog.seq";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Change<K> {
    pub seq: u64,
    pub at_ms: u64,
    pub kind: K,
}

impl Tx<'_> {
    /// Appends a change and returns its sequence number.
    pub fn log<K: Serialize>(&self, at_ms: u64, kind: K) -> TxResult<u64> {
        let seq = self.next(SEQ)?;
        self.put(TreeId::Changes, u64_key(seq), &Change { seq, at_ms, kind })?;
        Ok(seq)
    }

    /// As `log`, with the kind already encoded (`codec::encode`): a deferred write's entry.
    /// bincode writes a struct as its fields one after the other, so the bytes are the same.
    pub fn log_encoded(&self, at_ms: u64, kind: &[u8]) -> TxResult<u64> {
        let seq = self.next(SEQ)?;
        let mut bytes = encode(&seq).map_err(ConflictableTransactionError::Abort)?;
        bytes.extend(encode(&at_ms).map_err(ConflictableTransactionError::Abort)?);
        bytes.extend_from_slice(kind);
        self.put_raw(TreeId::Changes, u64_key(seq), bytes)?;
        Ok(seq)
    }
}

impl Store {
    /// The sequence number of the newest committed change (0 when none).
    pub fn last_seq(&self) -> Result<u64> {
        Ok(self.get(TreeId::Meta, SEQ)?.unwrap_or(0))
    }

    /// Up to `limit` changes with `seq > after`, in order.
    pub fn changes_after<K: DeserializeOwned>(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change<K>>> {
        self.scan_from::<Change<K>>(TreeId::Changes, u64_key(after.saturating_add(1)))
            .take(limit)
            .map(|item| item.map(|(_, change)| change))
            .collect()
    }

    /// The oldest sequence number still in the log (older ones were compacted away).
    pub fn first_retained_seq(&self) -> Result<Option<u64>> {
        Ok(self.first_key(TreeId::Changes)?.and_then(|k| key_u64(&k)))
    }

    /// Drops the entries no one needs any more: those its reader has replayed (`consumed`:
    /// the newest seq the Redis mirror applied; `None` when no mirror reads the log), and
    /// beyond the newest `retain` in any case. Returns how many went.
    pub fn compact_changes(&self, retain: u64, consumed: Option<u64>) -> Result<u64> {
        let keep_from = first_kept(self.last_seq()?, retain, consumed);
        let mut removed = 0;
        let _writing = self.write_gate();
        for key in self.keys_from(TreeId::Changes, u64_key(0)) {
            let key = key?;
            match key_u64(&key) {
                Some(seq) if seq < keep_from => {
                    self.tree(TreeId::Changes).remove(key)?;
                    removed += 1;
                }
                _ => break,
            }
        }
        Ok(removed)
    }
}

/// The oldest seq worth keeping. Every entry carries full records (a heartbeat batch holds its
/// proxies), so a log kept by count alone grew by gigabytes under heartbeats (BENCHMARKS.md). A
/// reader that falls behind the kept window copies everything again (the mirror's resync).
fn first_kept(last: u64, retain: u64, consumed: Option<u64>) -> u64 {
    let by_count = last.saturating_sub(retain) + 1;
    let unread = consumed.unwrap_or(last).min(last) + 1;
    by_count.max(unread)
}

#[cfg(test)]
mod tests {
    use super::first_kept;

    #[test]
    fn keeps_what_the_mirror_has_not_replayed_up_to_the_count() {
        assert_eq!(first_kept(100, 1_000, Some(40)), 41, "unread by the mirror");
        assert_eq!(
            first_kept(100, 10, Some(40)),
            91,
            "the count bounds a mirror far behind"
        );
        assert_eq!(first_kept(100, 1_000, None), 101, "no reader: nothing kept");
        assert_eq!(
            first_kept(100, 1_000, Some(0)),
            1,
            "a mirror that has read nothing"
        );
        assert_eq!(first_kept(0, 1_000, None), 1);
    }
}
