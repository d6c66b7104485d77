//! Building a client's config: pro proxies first (for pro users), then the user's fallback
//! proxies, then a stable subset of k free proxies. Only live proxies are listed, so one that
//! left is simply absent. Pure apart from the registry view it is given.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::subset::{pick, Secret};
use crate::error::Result;
use crate::fleet::model::User;
use crate::registry::model::Protocol;
use crate::registry::{Proxy, ProxyName, Registry, Role};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProxyEntry {
    pub name: String,
    pub ip: String,
    pub port: u16,
    pub role: Role,
    pub country: Option<String>,
    pub city: Option<String>,
    /// How to connect (sent only when the proxy registered it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub front: Option<String>,
}

impl From<&Proxy> for ProxyEntry {
    fn from(proxy: &Proxy) -> Self {
        ProxyEntry {
            name: proxy.name.to_string(),
            ip: proxy.ip.to_string(),
            port: proxy.port,
            role: proxy.role,
            country: proxy.location.country.clone(),
            city: proxy.location.city.clone(),
            protocol: proxy.transport.protocol,
            cert_sha256: proxy.transport.cert_sha256.clone(),
            public_key: proxy.transport.public_key.clone(),
            sni: proxy.transport.sni.clone(),
            front: proxy.transport.front.clone(),
        }
    }
}

/// A client's config as signed. The signature covers the whole body, so `user`, `issued_at`
/// and `expires_at` bind it to its account and its time: a client refuses a body for another
/// account, an expired one, or a `version`... see docs/API.md ("Verifying a config").
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClientConfig {
    /// Changes whenever the proxy list changes (a 48-bit digest of it).
    pub version: u64,
    /// The account the config is for.
    pub user: u64,
    /// Unix seconds: when this body was signed, and until when a client may use it.
    pub issued_at: u64,
    pub expires_at: u64,
    pub proxies: Vec<ProxyEntry>,
    pub poll_after_secs: u64,
}

/// The signing window of `now_ms`: configs are signed at the start of each window of half
/// the validity, so a body (and its ETag and cached signature) stays the same for the whole
/// window, and the one a client holds is valid for at least half the validity.
pub fn signing_window(now_ms: u64, validity_secs: u64) -> (u64, u64) {
    let half = (validity_secs / 2).max(1);
    let issued_at = now_ms / 1000 / half * half;
    (issued_at, issued_at + validity_secs.max(1))
}

/// The live fleet as the config server sees it: by name, and the free and pro names (sorted),
/// as they were when the view was built. The view is rebuilt every second and whenever a proxy
/// comes or goes, so a request checks liveness only for the proxies it picks.
pub struct FleetView {
    pub by_name: HashMap<String, Proxy>,
    pub free: Vec<String>,
    pub pro: Vec<String>,
    /// What a config lists of each proxy live when the view was built, formatted once here
    /// rather than on every request.
    entries: HashMap<String, ProxyEntry>,
    /// The earliest expiry among the live proxies when the view was built.
    first_expiry_ms: u64,
}

impl FleetView {
    pub fn new(proxies: Vec<Proxy>, now_ms: u64) -> FleetView {
        let names = |role: Role| -> Vec<String> {
            let mut names: Vec<String> = proxies
                .iter()
                .filter(|p| p.role == role && p.expires_ms > now_ms)
                .map(|p| p.name.to_string())
                .collect();
            names.sort();
            names
        };
        let (free, pro) = (names(Role::Free), names(Role::Pro));
        let first_expiry_ms = proxies
            .iter()
            .map(|p| p.expires_ms)
            .filter(|expires| *expires > now_ms)
            .min()
            .unwrap_or(u64::MAX);
        let entries = proxies
            .iter()
            .filter(|p| p.expires_ms > now_ms)
            .map(|p| (p.name.to_string(), ProxyEntry::from(p)))
            .collect();
        FleetView {
            by_name: proxies
                .into_iter()
                .map(|p| (p.name.to_string(), p))
                .collect(),
            free,
            pro,
            entries,
            first_expiry_ms,
        }
    }

    fn live(&self, name: &str, now_ms: u64) -> Option<&Proxy> {
        self.by_name.get(name).filter(|p| p.expires_ms > now_ms)
    }

    /// What a config lists of proxy `name`, if it is live at `now_ms`.
    fn live_entry(&self, name: &str, now_ms: u64) -> Option<&ProxyEntry> {
        self.live(name, now_ms)?;
        self.entries.get(name)
    }

    /// True when every config built from either view is the same as from the other while
    /// no proxy expires: the same free proxies, and the same live proxies as configs list them
    /// (load and heartbeat times differ from one view to the next and are not listed).
    pub fn lists_as(&self, other: &FleetView) -> bool {
        self.free == other.free && self.entries == other.entries
    }

    /// True when no proxy that was live when the view was built has expired by `now_ms`.
    pub fn none_expired_since_built(&self, now_ms: u64) -> bool {
        self.first_expiry_ms > now_ms
    }
}

/// What decides a config besides the user.
pub struct Rules<'a> {
    pub secret: &'a Secret,
    pub free_k: usize,
    /// The key of the free subset: the user, or a network and time window.
    pub subset_key: &'a str,
    pub poll_after_secs: u64,
    /// `expires_at - issued_at` of every signed config.
    pub validity_secs: u64,
    /// Proxies blocked where the client is: never listed (the rest of the free subset
    /// stays as it was, rendezvous hashing replaces only what is taken out).
    pub blocked: &'a HashSet<String>,
}

pub fn build(view: &FleetView, user: &User, rules: &Rules, now_ms: u64) -> ClientConfig {
    // Pro proxies are assigned (least loaded, at purchase): listed while Pro lasts.
    let pro_picks: Vec<&str> = if user.is_pro(now_ms) {
        user.pro_proxies.iter().map(ProxyName::as_str).collect()
    } else {
        Vec::new()
    };
    let mut free = live_names(view, &view.free, now_ms);
    if !rules.blocked.is_empty() {
        free.retain(|name| !rules.blocked.contains(*name));
    }
    let free_picks = pick(rules.secret, rules.subset_key, &free, rules.free_k);
    let mut proxies: Vec<ProxyEntry> = Vec::new();
    let candidates = pro_picks
        .into_iter()
        .chain(user.proxies.iter().map(ProxyName::as_str))
        .chain(free_picks.into_iter().copied());
    for name in candidates {
        if proxies.iter().any(|p| p.name == name) || rules.blocked.contains(name) {
            continue;
        }
        if let Some(entry) = view.live_entry(name, now_ms) {
            proxies.push(entry.clone());
        }
    }
    let (issued_at, expires_at) = signing_window(now_ms, rules.validity_secs);
    ClientConfig {
        version: list_version(&proxies),
        user: user.id.0,
        issued_at,
        expires_at,
        proxies,
        poll_after_secs: rules.poll_after_secs,
    }
}

/// The names in `names` whose proxy is live now: all of them while none has expired since the
/// view was built (the common case, no lookups), else the ones still live.
fn live_names<'a>(view: &FleetView, names: &'a [String], now_ms: u64) -> Vec<&'a str> {
    let all = names.iter().map(String::as_str);
    if view.none_expired_since_built(now_ms) {
        return all.collect();
    }
    all.filter(|name| view.live(name, now_ms).is_some())
        .collect()
}

fn list_version(proxies: &[ProxyEntry]) -> u64 {
    let mut hasher = Sha256::new();
    for p in proxies {
        hasher.update(p.name.as_bytes());
        hasher.update([0]);
        hasher.update(p.ip.as_bytes());
        hasher.update(p.port.to_be_bytes());
        // A new certificate or key is a new config: the client must fetch it.
        let transport = [
            p.protocol.map(Protocol::name),
            p.cert_sha256.as_deref(),
            p.public_key.as_deref(),
            p.sni.as_deref(),
            p.front.as_deref(),
        ];
        for field in transport {
            hasher.update(field.unwrap_or_default().as_bytes());
            hasher.update([0]);
        }
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes[2..].copy_from_slice(&digest[..6]);
    u64::from_be_bytes(bytes)
}

/// The user's fallback proxies that are live now (for admin views).
pub fn proxy_entries(registry: &Registry, user: &User, now_ms: u64) -> Result<Vec<ProxyEntry>> {
    let mut entries = Vec::with_capacity(user.proxies.len());
    for name in &user.proxies {
        if let Some(proxy) = registry.get(name, now_ms)? {
            entries.push(ProxyEntry::from(&proxy));
        }
    }
    Ok(entries)
}

/// A config as sent: the body, its strong ETag and the body's SHA-256 (the key under which its
/// signature is cached).
pub struct Rendered {
    pub body: Vec<u8>,
    pub etag: String,
    pub digest: [u8; 32],
}

pub fn render(config: &ClientConfig) -> Rendered {
    let body = serde_json::to_vec(config).unwrap_or_default();
    let digest: [u8; 32] = Sha256::digest(&body).into();
    let etag = format!("\"{}\"", hex::encode(&digest[..12]));
    Rendered { body, etag, digest }
}

/// Does an `If-None-Match` header value match `etag` (a list, or `*`)? A tag of the gzip
/// variant (`"...-gz"`) matches its plain tag: both name the same config.
pub fn matches(if_none_match: &str, etag: &str) -> bool {
    let plain = |tag: &str| tag.trim().trim_start_matches("W/").replace("-gz\"", "\"");
    let wanted = plain(etag);
    if_none_match
        .split(',')
        .map(plain)
        .any(|tag| tag == "*" || tag == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signing_window_is_half_the_validity_and_stable_within_it() {
        let week = 7 * 24 * 3600;
        let (issued, expires) = signing_window(1_000_000_000 * 1000, week);
        assert_eq!(expires - issued, week);
        assert!(issued <= 1_000_000_000 && 1_000_000_000 < issued + week / 2);
        let later = signing_window((issued + week / 2 - 1) * 1000, week);
        assert_eq!(later, (issued, expires), "same window, same body");
        let next = signing_window((issued + week / 2) * 1000, week);
        assert_eq!(next.0, issued + week / 2);
        assert_eq!(
            signing_window(5_000, 0),
            (5, 6),
            "a zero validity is one second"
        );
    }

    #[test]
    fn etags_change_with_the_body_and_match_lists() {
        let a = ClientConfig {
            version: 1,
            user: 7,
            issued_at: 0,
            expires_at: 604_800,
            proxies: vec![],
            poll_after_secs: 300,
        };
        let b = ClientConfig {
            version: 2,
            ..a.clone()
        };
        let ta = render(&a).etag;
        let tb = render(&b).etag;
        assert_ne!(ta, tb);
        assert_eq!(render(&a).etag, ta);
        assert!(matches(&ta, &ta));
        assert!(matches(&format!("\"x\", W/{ta}"), &ta));
        let bare = ta.trim_matches('"');
        assert!(
            matches(&format!("\"{bare}-gz\""), &ta),
            "the gzip variant names the same config"
        );
        assert!(matches("*", &ta));
        assert!(!matches("\"x\"", &ta));
    }
}
