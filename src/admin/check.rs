//! The store's invariants, all in one place for `proxyfleet check` and `GET /api/v1/admin/check`:
//! both sides of every user <-> proxy link agree (with their counts), the task queue is well
//! formed, and every registered proxy has a credential that its secret index agrees with. Reads only.

use crate::error::Result;
use crate::store::Store;

pub fn store_invariants(store: &Store) -> Result<Vec<String>> {
    let problems = read_invariants(store)?;
    if problems.is_empty() {
        return Ok(problems);
    }
    // The reads span trees, so a check that ran while a multi-record change committed saw half
    // of it. Confirm with writers held off: they wait only when something looked wrong.
    store.with_writes_held(|| read_invariants(store))
}

fn read_invariants(store: &Store) -> Result<Vec<String>> {
    let mut problems = crate::fleet::links::check(store)?;
    problems.extend(crate::queue::check::check(store)?);
    problems.extend(crate::registry::credentials::check(store)?);
    Ok(problems)
}
