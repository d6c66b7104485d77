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
    /// A proxy became blocked in a country, or stopped being so (`blocking`).
    BlockChanged {
        proxy: String,
        country: String,
        blocked: bool,
    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_carries_the_fleet_but_not_the_box_or_what_the_mirror_holds_already() {
        assert!(carried(TreeId::Users, b"\0\0\0\0\0\0\0\x01"));
        assert!(carried(TreeId::Payments, b"pi_1"));
        assert!(carried(TreeId::AdminAccounts, b"ops"));
        assert!(carried(TreeId::Meta, b"distribution.signing_key"));
        assert!(carried(TreeId::Meta, b"users.next_id"));
        assert!(!carried(TreeId::Changes, b"\0"));
        assert!(!carried(TreeId::AdminSessions, b"cookie"));
        assert!(!carried(TreeId::Proxies, b"p1"));
        assert!(!carried(TreeId::Meta, b"changelog.seq"));
        assert!(!carried(TreeId::Meta, b"mirror.applied_seq"));
        assert!(!carried(TreeId::Meta, b"mirror.source"));
        assert!(!carried(TreeId::Meta, b"edge.status"));
        assert!(carried(TreeId::Meta, b"edge.version"), "a fleet counter");
        assert!(
            carried(TreeId::Meta, b"edge.group_salt"),
            "keeps the VCL groups"
        );
    }
}
