//! The data-format version of the store: bumped by every change to how records are laid out,
//! with a migration from the one before (`app::migrations`). A store newer than this binary is
//! never opened for writing: its records would be misread.

use super::{Store, TreeId};
use crate::error::Result;

/// The format this binary writes.
pub const DATA_FORMAT: u64 = 2;
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
