//! The store's invariants, all in one place for `proxyfleet check` and `GET /api/v1/admin/check`:
//! both sides of every user <-> proxy link agree (with their counts), the task queue is well
//! formed, and every registered proxy has a credential that its secret index agrees with. Reads only.

use crate::error::Result;
use crate::store::Store;

pub fn store_invariants(store: &Store) -> Result<Vec<String>> {
    let mut problems = crate::fleet::links::check(store)?;
    problems.extend(crate::queue::check::check(store)?);
    problems.extend(crate::registry::credentials::check(store)?);
    Ok(problems)
}
