//! The change log's records: what the Redis mirror replays, in commit order. The registry
//! writes proxy changes and the fleet user changes, each in the transaction of the change
//! itself (`Tx::log`); the store keeps them without knowing their type.

use serde::{Deserialize, Serialize};

use crate::fleet::model::User;
use crate::registry::model::{Proxy, RemovalReason};

/// One entry of the log, as stored.
pub type Change = crate::store::Change<ChangeKind>;

/// What changed. New capabilities append variants (never reorder: the log is stored).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ChangeKind {
    /// Proxies registered or heartbeated (one entry per combined batch): their full records.
    ProxiesUpserted(Vec<Proxy>),
    ProxyRemoved {
        name: String,
        reason: RemovalReason,
    },
    /// A user was created or changed (status, proxies, config version): the full record.
    UserUpserted(Box<User>),
}
