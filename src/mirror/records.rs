//! How each record and change becomes Redis commands. Pure: it only fills a pipeline, which
//! `stream.rs` and `resync.rs` send.

use redis::Pipeline;
use serde::Serialize;
use serde_json::json;

use super::keys::Keys;
use super::sealing::Sealing;
use crate::changes::{Change, ChangeKind};
use crate::distribution::config::Rendered;
use crate::fleet::model::{ProxyName, User, UserStatus};
use crate::registry::Proxy;
use crate::store::replication::RawWrite;
use crate::store::TreeId;

/// The script that mirrors a user (see the script's own comments).
pub const USER_SCRIPT: &str = include_str!("user.lua");

fn secs(ms: u64) -> String {
    (ms / 1000).to_string()
}

/// The fields of `<prefix>proxy:<name>`. Absent values are absent fields; `record` is the
/// whole record as JSON, so an edge rebuilds exactly what the primary ranks.
pub fn proxy_fields(proxy: &Proxy) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("ip", proxy.ip.to_string()),
        ("port", proxy.port.to_string()),
        ("role", proxy.role.name().to_string()),
        ("registered_at", secs(proxy.registered_ms)),
        ("last_seen", secs(proxy.last_seen_ms)),
        ("expires_at", secs(proxy.expires_ms)),
    ];
    let location = &proxy.location;
    let optional = [
        ("country", location.country.clone()),
        ("city", location.city.clone()),
        ("lat", location.lat.map(|v| v.to_string())),
        ("lon", location.lon.map(|v| v.to_string())),
        (
            "tz_offset_min",
            location.tz_offset_min.map(|v| v.to_string()),
        ),
        ("capacity", proxy.capacity.map(|v| v.to_string())),
        ("clients", proxy.load.clients.map(|v| v.to_string())),
        ("cpu", proxy.load.cpu.map(|v| v.to_string())),
        ("bandwidth", proxy.load.bandwidth.map(|v| v.to_string())),
        (
            "protocol",
            proxy.transport.protocol.map(|p| p.name().to_string()),
        ),
        ("cert_sha256", proxy.transport.cert_sha256.clone()),
        ("public_key", proxy.transport.public_key.clone()),
        ("sni", proxy.transport.sni.clone()),
        ("front", proxy.transport.front.clone()),
    ];
    fields.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| (name, v))),
    );
    fields.push(("record", proxy.public_record()));
    fields
}

pub fn write_proxy(pipe: &mut Pipeline, keys: &Keys, proxy: &Proxy) {
    let key = keys.proxy(proxy.name.as_str());
    pipe.del(&key).ignore();
    pipe.hset_multiple(&key, &proxy_fields(proxy)).ignore();
    pipe.sadd(keys.proxies(), proxy.name.as_str()).ignore();
}

pub fn remove_proxy(pipe: &mut Pipeline, keys: &Keys, name: &str) {
    pipe.del(keys.proxy(name)).ignore();
    pipe.srem(keys.proxies(), name).ignore();
}

/// What `user.lua` receives.
#[derive(Serialize)]
struct UserPayload<'a> {
    id: String,
    /// Field, value, field, value... of `<prefix>user:<id>`.
    hash: Vec<String>,
    proxies: &'a [ProxyName],
    pro_proxies: &'a [ProxyName],
    /// Hex SHA-256 of the account's token and of every linked device's.
    tokens: Vec<String>,
    seq: u64,
    /// Publish per-proxy events (not during a resync).
    publish: bool,
}

pub fn user_fields(user: &User) -> Vec<String> {
    let status = match user.status {
        UserStatus::Active => "active",
        UserStatus::Disabled => "disabled",
        UserStatus::Pending => "pending",
        UserStatus::Lapsed => "lapsed",
    };
    let mut fields = vec![
        ("email", user.email.as_str().to_string()),
        ("status", status.to_string()),
        ("created_at", secs(user.created_ms)),
        ("config_version", user.config_version.to_string()),
        ("devices", user.devices.len().to_string()),
    ];
    let optional = [
        ("pro_until", user.pro_until_ms.map(secs)),
        ("invited_by", user.invited_by.map(|v| v.to_string())),
        ("referral_code", user.referral_code.clone()),
        ("referred_by", user.referred_by.map(|v| v.to_string())),
    ];
    fields.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| (name, v))),
    );
    fields
        .into_iter()
        .flat_map(|(name, value)| [name.to_string(), value])
        .collect()
}

pub fn write_user(pipe: &mut Pipeline, keys: &Keys, user: &User, seq: u64, publish: bool) {
    let payload = UserPayload {
        id: user.id.to_string(),
        hash: user_fields(user),
        proxies: &user.proxies,
        pro_proxies: &user.pro_proxies,
        tokens: user
            .published_token_hashes()
            .map(|h| hex::encode(h.as_bytes()))
            .collect(),
        seq,
        publish,
    };
    let payload = serde_json::to_string(&payload).unwrap_or_default();
    pipe.cmd("EVAL")
        .arg(USER_SCRIPT)
        .arg(0)
        .arg(keys.prefix())
        .arg(payload)
        .ignore();
}

/// The same keys as `user.lua` writes, for a user that is not in Redis yet: plain commands, no
/// diff and no events. Only for a copy into a cleared prefix (`resync.rs`), where it is several
/// times faster than the script; the mirror tests check that both give the same keys.
pub fn write_new_user(pipe: &mut Pipeline, keys: &Keys, user: &User) {
    let id = user.id.to_string();
    let ukey = keys.user(user.id.0);
    pipe.hset_multiple(&ukey, &pairs(&user_fields(user)))
        .ignore();
    if !user.proxies.is_empty() {
        pipe.sadd(format!("{ukey}:proxies"), names(&user.proxies))
            .ignore();
    }
    for name in &user.proxies {
        pipe.sadd(keys.proxy_users(name.as_str()), &id).ignore();
    }
    let tokens: Vec<String> = user
        .published_token_hashes()
        .map(|h| hex::encode(h.as_bytes()))
        .collect();
    for token in &tokens {
        pipe.set(keys.token(token), &id).ignore();
    }
    if !tokens.is_empty() {
        pipe.sadd(format!("{ukey}:tokens"), &tokens).ignore();
    }
    if !user.pro_proxies.is_empty() {
        pipe.sadd(format!("{ukey}:pro_proxies"), names(&user.pro_proxies))
            .ignore();
    }
    for name in &user.pro_proxies {
        pipe.sadd(keys.proxy_pro_users(name.as_str()), &id).ignore();
        if !tokens.is_empty() {
            pipe.sadd(keys.proxy_tokens(name.as_str()), &tokens)
                .ignore();
        }
    }
}

fn names(proxies: &[ProxyName]) -> Vec<&str> {
    proxies.iter().map(ProxyName::as_str).collect()
}

fn pairs(flat: &[String]) -> Vec<(&str, &str)> {
    flat.chunks(2)
        .filter_map(|pair| match pair {
            [field, value] => Some((field.as_str(), value.as_str())),
            _ => None,
        })
        .collect()
}

/// `<prefix>config:<user>`: the config exactly as the primary sends it, with its signature.
pub fn write_config(
    pipe: &mut Pipeline,
    keys: &Keys,
    user: u64,
    version: u64,
    rendered: &Rendered,
    signature: &str,
) {
    let key = keys.config(user);
    pipe.hset_multiple(
        &key,
        &[
            ("version", version.to_string().into_bytes()),
            ("etag", rendered.etag.clone().into_bytes()),
            ("signature", signature.as_bytes().to_vec()),
            ("body", rendered.body.clone()),
        ],
    )
    .ignore();
}

/// The `<prefix>events` message of a change. Raw writes get one too (`writes`, naming the
/// trees), so subscribers see every sequence number and can tell when they missed one.
pub fn event_message(change: &Change) -> String {
    let (kind, ids) = match &change.kind {
        ChangeKind::ProxiesUpserted(proxies) => (
            "proxies_upserted",
            proxies.iter().map(|p| json!(p.name.as_str())).collect(),
        ),
        ChangeKind::ProxyRemoved { name, .. } => ("proxy_removed", vec![json!(name)]),
        ChangeKind::UserUpserted(user) => ("user_upserted", vec![json!(user.id)]),
        ChangeKind::BlockChanged { proxy, country, .. } => {
            ("block_changed", vec![json!(proxy), json!(country)])
        }
        ChangeKind::Writes(writes) => {
            let trees: std::collections::BTreeSet<&str> =
                writes.iter().map(|w| w.tree.as_str()).collect();
            ("writes", trees.into_iter().map(|t| json!(t)).collect())
        }
    };
    json!({ "kind": kind, "ids": ids, "seq": change.seq, "at_ms": change.at_ms }).to_string()
}

/// Replays raw writes into the `<p>replica:<tree>` hashes (secret trees sealed, if a key is
/// set).
pub fn write_raw(pipe: &mut Pipeline, keys: &Keys, sealing: Option<&Sealing>, writes: &[RawWrite]) {
    for write in writes {
        let hash = keys.replica(&write.tree);
        match (&write.value, TreeId::named(&write.tree)) {
            (Some(value), Some(tree)) => pipe.hset(
                hash,
                write.key.as_slice(),
                Sealing::outgoing(sealing, tree, &write.key, value),
            ),
            // A tree this version does not know cannot come from its own change log.
            (Some(value), None) => pipe.hset(hash, write.key.as_slice(), value.as_slice()),
            (None, _) => pipe.hdel(hash, write.key.as_slice()),
        };
        pipe.ignore();
    }
}

/// `<p>blocked:<country>` gains or loses the proxy.
pub fn write_block(pipe: &mut Pipeline, keys: &Keys, proxy: &str, country: &str, blocked: bool) {
    if blocked {
        pipe.sadd(keys.blocked(country), proxy).ignore();
    } else {
        pipe.srem(keys.blocked(country), proxy).ignore();
    }
}

/// Appends the commands of one change, then its event.
pub fn apply_change(pipe: &mut Pipeline, keys: &Keys, sealing: Option<&Sealing>, change: &Change) {
    match &change.kind {
        ChangeKind::ProxiesUpserted(proxies) => {
            for proxy in proxies {
                write_proxy(pipe, keys, proxy);
            }
        }
        ChangeKind::ProxyRemoved { name, .. } => remove_proxy(pipe, keys, name),
        ChangeKind::UserUpserted(user) => write_user(pipe, keys, user, change.seq, true),
        ChangeKind::Writes(writes) => write_raw(pipe, keys, sealing, writes),
        ChangeKind::BlockChanged {
            proxy,
            country,
            blocked,
        } => write_block(pipe, keys, proxy, country, *blocked),
    }
    pipe.publish(keys.events(), event_message(change)).ignore();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::model::{Load, Location};
    use crate::registry::{ProxyName, Role};

    fn proxy() -> Proxy {
        Proxy {
            name: ProxyName::parse("p1").unwrap(),
            ip: "203.0.113.5".parse().unwrap(),
            port: 443,
            role: Role::Pro,
            location: Location {
                country: Some("DE".into()),
                city: None,
                lat: Some(52.5),
                lon: Some(13.4),
                tz_offset_min: None,
            },
            capacity: Some(50),
            load: Load {
                clients: Some(7),
                cpu: None,
                bandwidth: None,
            },
            registered_ms: 1_000,
            last_seen_ms: 2_000,
            expires_ms: 302_000,
            role_pinned: false,
            over_limit_since_ms: None,
            under_low_since_ms: None,
            load_sampled_ms: 0,
            transport: crate::registry::model::Transport {
                protocol: Some(crate::registry::model::Protocol::Obfs4),
                public_key: Some("c2VjcmV0".into()),
                ..Default::default()
            },
            secret_hash: None,
        }
    }

    #[test]
    fn proxy_hash_has_the_documented_fields_and_no_empty_ones() {
        let fields = proxy_fields(&proxy());
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("ip"), Some("203.0.113.5"));
        assert_eq!(get("port"), Some("443"));
        assert_eq!(get("role"), Some("pro"));
        assert_eq!(get("country"), Some("DE"));
        assert_eq!(get("lat"), Some("52.5"));
        assert_eq!(get("capacity"), Some("50"));
        assert_eq!(get("clients"), Some("7"));
        assert_eq!(get("expires_at"), Some("302"));
        assert_eq!(get("city"), None);
        assert_eq!(get("protocol"), Some("obfs4"));
        assert_eq!(get("public_key"), Some("c2VjcmV0"));
        assert_eq!(get("sni"), None);
        let record: Proxy = serde_json::from_str(get("record").unwrap()).unwrap();
        assert_eq!(record, proxy());
        let secret = crate::http::TokenHash::of("pfp_secret");
        let with_secret = Proxy {
            secret_hash: Some(secret),
            ..proxy()
        };
        let fields = proxy_fields(&with_secret);
        let record = &fields.iter().find(|(n, _)| *n == "record").unwrap().1;
        assert!(
            !record.contains("secret"),
            "the secret's hash never leaves the store"
        );
        let decoded: Proxy = serde_json::from_str(record).unwrap();
        assert_eq!(decoded.secret_hash, None);
    }

    #[test]
    fn events_name_the_kind_ids_and_sequence() {
        let change = Change {
            seq: 9,
            at_ms: 0,
            kind: ChangeKind::ProxyRemoved {
                name: "p1".into(),
                reason: crate::registry::RemovalReason::Expired,
            },
        };
        let message: serde_json::Value = serde_json::from_str(&event_message(&change)).unwrap();
        assert_eq!(
            message,
            json!({"kind": "proxy_removed", "ids": ["p1"], "seq": 9, "at_ms": 0})
        );
    }
}
