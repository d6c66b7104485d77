//! Data format 2 to 3: admin accounts gained `disabled`, single-use TOTP codes and recovery
//! codes; audit entries gained a count (failed logins are aggregated) and the request's
//! parameters. Records are bincode (positional), so each is read with the format-2 layout
//! and written again.

use serde::{Deserialize, Serialize};

use super::accounts::AdminAccount;
use super::audit::AuditEntry;
use crate::error::Result;
use crate::store::{format, Store, TreeId};

/// `AdminAccount` as format 2 stored it.
#[derive(Deserialize, Serialize)]
struct AdminAccountV2 {
    username: String,
    password_hash: String,
    password_epoch: u64,
    totp_secret: Option<String>,
    created_ms: u64,
}

impl From<AdminAccountV2> for AdminAccount {
    fn from(a: AdminAccountV2) -> AdminAccount {
        AdminAccount {
            username: a.username,
            password_hash: a.password_hash,
            session_epoch: a.password_epoch,
            totp_secret: a.totp_secret,
            created_ms: a.created_ms,
            disabled: false,
            totp_last_step: 0,
            recovery_codes: Vec::new(),
        }
    }
}

/// `AuditEntry` as format 2 stored it.
#[derive(Deserialize, Serialize)]
struct AuditEntryV2 {
    id: u64,
    at_ms: u64,
    actor: String,
    action: String,
    status: u16,
    client_ip: Option<String>,
}

impl From<AuditEntryV2> for AuditEntry {
    fn from(e: AuditEntryV2) -> AuditEntry {
        AuditEntry {
            id: e.id,
            at_ms: e.at_ms,
            actor: e.actor,
            action: e.action,
            status: e.status,
            client_ip: e.client_ip,
            count: 1,
            params: None,
        }
    }
}

pub fn to_format_3(store: &Store) -> Result<()> {
    format::rewrite::<AdminAccountV2, AdminAccount>(store, TreeId::AdminAccounts)?;
    format::rewrite::<AuditEntryV2, AuditEntry>(store, TreeId::Audit)?;
    Ok(())
}
