//! The data-format version of the store: bumped by every change to how records are laid out,
//! with a migration from the one before (`app::migrations`). A store newer than this binary is
//! never opened for writing: its records would be misread.

use serde::Serialize;

use super::codec::{decode, encode};
use super::{Store, TreeId};
use crate::error::{Error, Result};

/// The format this binary writes.
pub const DATA_FORMAT: u64 = 6;
const KEY: &str = "store.data_format";

/// The store's format: recorded, or 0 for a store made before formats were recorded, or
/// `None` for a brand-new empty store.
pub fn read(store: &Store) -> Result<Option<u64>> {
    if let Some(format) = store.get::<u64>(TreeId::Meta, KEY)? {
        return Ok(Some(format));
    }
    let empty = TreeId::ALL.iter().all(|&id| store.len(id) == 0);
    Ok((!empty).then_some(0))
}

pub fn write(store: &Store, format: u64) -> Result<()> {
    store.transaction(|tx| tx.put(TreeId::Meta, KEY, &format))
}

/// Rewrites a tree's values from an older layout `Old` to `New`, a thousand records per
/// transaction. A value that already reads as `New` is left alone, so a migration interrupted
/// half-way can run again (an older record is too short to read as `New`: new fields
/// come last). Returns every value as it now is.
pub fn rewrite<Old, New>(store: &Store, tree: TreeId) -> Result<Vec<New>>
where
    Old: serde::de::DeserializeOwned,
    New: From<Old> + Serialize + serde::de::DeserializeOwned,
{
    let keys: Vec<Vec<u8>> = store
        .keys_from(tree, b"")
        .map(|key| key.map(|k| k.to_vec()))
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(1_000) {
        let batch = store.transaction(|tx| {
            let mut batch = Vec::with_capacity(chunk.len());
            for key in chunk {
                let Some(raw) = tx.get_raw(tree, key)? else {
                    continue;
                };
                if let Ok(already) = decode::<New>(&raw) {
                    batch.push(already);
                    continue;
                }
                let converted = decode::<Old>(&raw).map(New::from).map_err(abort_with)?;
                tx.put_raw(tree, key, encode(&converted).map_err(abort_with)?)?;
                batch.push(converted);
            }
            Ok(batch)
        })?;
        out.extend(batch);
    }
    Ok(out)
}

fn abort_with(e: Error) -> sled::transaction::ConflictableTransactionError<Error> {
    sled::transaction::ConflictableTransactionError::Abort(e)
}
