//! The audit trail: who (admin account or "admin-token"), what (method, path, outcome), when.
//! Every mutating admin request is recorded once it has been answered; logins and logouts too.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::codec::u64_key;
use crate::store::{Store, TreeId};

const NEXT_AUDIT_ID: &str = "audit.next_id";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: u64,
    pub at_ms: u64,
    pub actor: String,
    /// What was done, e.g. `POST /api/v1/admin/users/7/pro`, `login`, `login_failed`.
    pub action: String,
    /// HTTP status of the answer (0 for events that are not requests).
    pub status: u16,
    pub client_ip: Option<String>,
}

/// Appends an entry; the caller makes it durable with the store's group commit.
pub fn record(
    store: &Store,
    actor: &str,
    action: &str,
    status: u16,
    client_ip: Option<String>,
    now_ms: u64,
) -> Result<AuditEntry> {
    store.transaction(|tx| {
        let id = tx.next(NEXT_AUDIT_ID)?;
        let entry = AuditEntry {
            id,
            at_ms: now_ms,
            actor: actor.to_string(),
            action: action.to_string(),
            status,
            client_ip: client_ip.clone(),
        };
        tx.put(TreeId::Audit, u64_key(id), &entry)?;
        Ok(entry)
    })
}

/// Newest first, `limit` entries before id `before`, optionally only those whose actor or
/// action contains `q`. Returns the entries and the cursor of the next page.
pub fn page(
    store: &Store,
    before: Option<u64>,
    limit: usize,
    q: Option<&str>,
) -> Result<(Vec<AuditEntry>, Option<u64>)> {
    let from = before.map(u64_key);
    let mut entries = Vec::with_capacity(limit);
    // A filtered page reads at most this many entries, so a rare match cannot scan forever.
    let mut budget = 100_000usize;
    for item in store.scan_rev::<AuditEntry>(TreeId::Audit, from.as_ref().map(|k| &k[..])) {
        let (_, entry) = item?;
        budget -= 1;
        let keep = q.is_none_or(|q| entry.actor.contains(q) || entry.action.contains(q));
        if keep {
            entries.push(entry);
        }
        if entries.len() == limit || budget == 0 {
            break;
        }
    }
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok((entries, next))
}
