//! A transaction over every tree, with typed reads and writes. Capabilities write through
//! `Store::transaction`, so a multi-record change (record + index + change log + task) is
//! all or nothing.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::codec::{decode, encode};
use super::TreeId;
use crate::error::Error;

/// What a transaction body returns: `Err(Abort(e))` rolls back and returns `e`.
pub type TxResult<T> = Result<T, ConflictableTransactionError<Error>>;

pub fn abort<T>(error: Error) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(error))
}

pub struct Tx<'a> {
    pub(super) trees: &'a [TransactionalTree],
    /// Set when a replica is kept: the writes it carries are captured and logged.
    pub(super) replication: Option<super::replication::Replication>,
    pub(super) captured: std::cell::RefCell<Vec<super::replication::RawWrite>>,
    /// Bit per tree written (for `Store::writes`): an attempt that sled retries may set bits
    /// for nothing, which only costs a reader a needless refresh.
    pub(super) written: std::cell::Cell<u64>,
}

fn codec<T>(result: crate::error::Result<T>) -> TxResult<T> {
    result.map_err(ConflictableTransactionError::Abort)
}

impl Tx<'_> {
    fn tree(&self, id: TreeId) -> &TransactionalTree {
        &self.trees[id as usize]
    }

    fn tree_to_write(&self, id: TreeId) -> &TransactionalTree {
        self.written.set(self.written.get() | 1 << id as u64);
        &self.trees[id as usize]
    }

    pub fn get<V: DeserializeOwned>(
        &self,
        tree: TreeId,
        key: impl AsRef<[u8]>,
    ) -> TxResult<Option<V>> {
        match self.tree(tree).get(key.as_ref())? {
            Some(bytes) => Ok(Some(codec(decode(&bytes))?)),
            None => Ok(None),
        }
    }

    /// A value's bytes, undecoded (data-format migrations).
    pub fn get_raw(&self, tree: TreeId, key: impl AsRef<[u8]>) -> TxResult<Option<sled::IVec>> {
        Ok(self.tree(tree).get(key.as_ref())?)
    }

    /// Writes bytes already encoded (data-format migrations).
    pub fn put_raw(&self, tree: TreeId, key: impl AsRef<[u8]>, bytes: Vec<u8>) -> TxResult<()> {
        self.capture(tree, key.as_ref(), Some(&bytes));
        self.tree_to_write(tree).insert(key.as_ref(), bytes)?;
        Ok(())
    }

    pub fn contains(&self, tree: TreeId, key: impl AsRef<[u8]>) -> TxResult<bool> {
        Ok(self.tree(tree).get(key.as_ref())?.is_some())
    }

    pub fn put<V: Serialize>(
        &self,
        tree: TreeId,
        key: impl AsRef<[u8]>,
        value: &V,
    ) -> TxResult<()> {
        let bytes = codec(encode(value))?;
        self.capture(tree, key.as_ref(), Some(&bytes));
        self.tree_to_write(tree).insert(key.as_ref(), bytes)?;
        Ok(())
    }

    /// An index entry: the key is the information.
    pub fn put_marker(&self, tree: TreeId, key: impl AsRef<[u8]>) -> TxResult<()> {
        self.capture(tree, key.as_ref(), Some(&[]));
        self.tree_to_write(tree)
            .insert(key.as_ref(), &[] as &[u8])?;
        Ok(())
    }

    pub fn remove(&self, tree: TreeId, key: impl AsRef<[u8]>) -> TxResult<bool> {
        self.capture(tree, key.as_ref(), None);
        Ok(self.tree_to_write(tree).remove(key.as_ref())?.is_some())
    }

    /// Increments a counter in the meta tree and returns its new value. Commits are
    /// serialised by sled, so counters are gap-free per committed transaction.
    pub fn next(&self, counter: &str) -> TxResult<u64> {
        let current: u64 = self.get(TreeId::Meta, counter)?.unwrap_or(0);
        let next = current + 1;
        self.put(TreeId::Meta, counter, &next)?;
        Ok(next)
    }

    pub fn counter(&self, counter: &str) -> TxResult<u64> {
        Ok(self.get(TreeId::Meta, counter)?.unwrap_or(0))
    }
}
