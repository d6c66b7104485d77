//! Data format 1 to 2: proxies gained their transport details, and every name its
//! credential. Records are bincode (positional), so each proxy and each change-log entry
//! holding proxies is read with the format-1 layout and written again; every proxy then
//! registered gets an `Unclaimed` credential with its role and address, so none is exposed
//! (no proxy becomes a gateway) and none is dropped (its next heartbeat claims a secret).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::credentials::{ProxyCredential, SecretState, ENROLLED};
use super::model::{Load, Location, Proxy, ProxyName, RemovalReason, Role, Transport};
use crate::changes::{Change, ChangeKind};
use crate::error::Result;
use crate::fleet::model::User;
use crate::store::{format, Store, TreeId};

/// `Proxy` as format 1 stored it.
#[derive(Deserialize, Serialize)]
struct ProxyV1 {
    name: ProxyName,
    ip: IpAddr,
    port: u16,
    role: Role,
    location: Location,
    capacity: Option<u32>,
    load: Load,
    registered_ms: u64,
    last_seen_ms: u64,
    expires_ms: u64,
    role_pinned: bool,
    over_limit_since_ms: Option<u64>,
    under_low_since_ms: Option<u64>,
    load_sampled_ms: u64,
}

impl From<ProxyV1> for Proxy {
    fn from(p: ProxyV1) -> Proxy {
        Proxy {
            name: p.name,
            ip: p.ip,
            port: p.port,
            role: p.role,
            location: p.location,
            capacity: p.capacity,
            load: p.load,
            registered_ms: p.registered_ms,
            last_seen_ms: p.last_seen_ms,
            expires_ms: p.expires_ms,
            role_pinned: p.role_pinned,
            over_limit_since_ms: p.over_limit_since_ms,
            under_low_since_ms: p.under_low_since_ms,
            load_sampled_ms: p.load_sampled_ms,
            transport: Transport::default(),
            secret_hash: None,
        }
    }
}

/// `ChangeKind` as format 1 stored it (same variants, format-1 proxies).
#[derive(Deserialize, Serialize)]
enum ChangeKindV1 {
    ProxiesUpserted(Vec<ProxyV1>),
    ProxyRemoved { name: String, reason: RemovalReason },
    UserUpserted(Box<User>),
}

#[derive(Deserialize, Serialize)]
struct ChangeV1 {
    seq: u64,
    at_ms: u64,
    kind: ChangeKindV1,
}

impl From<ChangeV1> for Change {
    fn from(c: ChangeV1) -> Change {
        let kind = match c.kind {
            ChangeKindV1::ProxiesUpserted(proxies) => {
                ChangeKind::ProxiesUpserted(proxies.into_iter().map(Proxy::from).collect())
            }
            ChangeKindV1::ProxyRemoved { name, reason } => {
                ChangeKind::ProxyRemoved { name, reason }
            }
            ChangeKindV1::UserUpserted(user) => ChangeKind::UserUpserted(user),
        };
        Change {
            seq: c.seq,
            at_ms: c.at_ms,
            kind,
        }
    }
}

pub fn to_format_2(store: &Store) -> Result<()> {
    let proxies: Vec<Proxy> = format::rewrite::<ProxyV1, Proxy>(store, TreeId::Proxies)?;
    format::rewrite::<ChangeV1, Change>(store, TreeId::Changes)?;
    store.transaction(|tx| {
        let mut enrolled = tx.counter(ENROLLED)?;
        for proxy in &proxies {
            let name = proxy.name.as_str();
            if tx.contains(TreeId::ProxyCredentials, name)? {
                continue; // a migration interrupted after this step: already done
            }
            let credential = ProxyCredential {
                secret: SecretState::Unclaimed {
                    ip: proxy.ip,
                    port: proxy.port,
                },
                role: proxy.role,
                max_capacity: None,
                gone_since_ms: None,
            };
            tx.put(TreeId::ProxyCredentials, name, &credential)?;
            enrolled += 1;
        }
        tx.put(TreeId::Meta, ENROLLED, &enrolled)
    })?;
    Ok(())
}
