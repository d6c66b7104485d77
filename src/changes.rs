//! The change log's records: what the Redis mirror replays, in commit order. The registry
//! writes proxy changes and the fleet user changes, each in the transaction of the change
//! itself (`Tx::log`); the store keeps them without knowing their type.

use serde::{Deserialize, Serialize};

use crate::fleet::model::User;
use crate::registry::model::{Proxy, RemovalReason};
use crate::store::replication::{RawWrite, Replication};
use crate::store::TreeId;

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
    /// One transaction's writes to the trees a replica needs, byte for byte (logged only when a
    /// Redis mirror is configured): what `proxyfleet restore --from-redis` rebuilds from.
    Writes(Vec<RawWrite>),
}

/// Meta keys that describe this box rather than the fleet: a rebuilt primary makes its own.
const LOCAL_META: [&str; 5] = [
    "changelog.seq",
    "mirror.",
    "edge.status",
    "edge.groups",
    "edge.varnish_check",
];

/// What the change log carries for a replica: every tree but the log itself, the admin
/// panel's sessions (a rebuilt primary signs everyone out), the live proxy records (the
/// mirror's `<p>proxy:<name>` records carry them; logging them again would double every
/// heartbeat's log entry) and the box's own meta keys.
pub fn carried(tree: TreeId, key: &[u8]) -> bool {
    match tree {
        TreeId::Changes | TreeId::AdminSessions | TreeId::Proxies => false,
        TreeId::Meta => !LOCAL_META
            .iter()
            .any(|local| key.starts_with(local.as_bytes())),
        _ => true,
    }
}

/// The replica's settings for `Store::keep_replica`.
pub fn replication() -> Replication {
    Replication {
        carries: carried,
        log: |tx, writes| tx.log(crate::clock::now_ms(), ChangeKind::Writes(writes)),
    }
}
