//! Raw writes for a replica. When a Redis mirror is configured, every transaction's writes to
//! the trees a replica needs are appended to the change log as one entry, in the transaction
//! itself, so the mirror carries them in the same ordered, lossless stream as the typed
//! changes and a primary can be rebuilt from Redis alone.
//!
//! The store decides nothing about what is carried or how the entry reads: the layer above
//! sets a `Replication` once at start (`crate::changes::replication`).

use serde::{Deserialize, Serialize};

use super::{TreeId, Tx, TxResult};

/// One write as a replica replays it: the tree's name, the key, and the value's bytes as the
/// store holds them (`None`: removed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RawWrite {
    pub tree: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

#[derive(Clone, Copy)]
pub struct Replication {
    /// Whether a write to `(tree, key)` is carried.
    pub carries: fn(TreeId, &[u8]) -> bool,
    /// Appends one transaction's carried writes to the change log, inside that transaction.
    pub log: fn(&Tx, Vec<RawWrite>) -> TxResult<u64>,
}

impl TreeId {
    /// Looks a tree up by its stored name.
    pub fn named(name: &str) -> Option<TreeId> {
        TreeId::ALL.iter().copied().find(|id| id.name() == name)
    }
}

impl Tx<'_> {
    /// Records a write for the replica, if one is kept and it carries `(tree, key)`.
    pub(super) fn capture(&self, tree: TreeId, key: &[u8], value: Option<&[u8]>) {
        if let Some(replication) = self.replication {
            if (replication.carries)(tree, key) {
                self.captured.borrow_mut().push(RawWrite {
                    tree: tree.name().to_string(),
                    key: key.to_vec(),
                    value: value.map(<[u8]>::to_vec),
                });
            }
        }
    }

    /// Appends the transaction's carried writes to the change log (at the end of its body).
    pub(super) fn log_captured(&self) -> TxResult<()> {
        let Some(replication) = self.replication else {
            return Ok(());
        };
        let writes = self.captured.take();
        if !writes.is_empty() {
            (replication.log)(self, writes)?;
        }
        Ok(())
    }
}
