//! Building a user's client config (pure apart from reading the registry): the user's proxies
//! that are live right now, so a proxy that left is simply absent, and an ETag over the body.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::fleet::model::User;
use crate::registry::{ProxyName, Registry, Role};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProxyEntry {
    pub name: String,
    pub ip: String,
    pub port: u16,
    pub role: Role,
    pub country: Option<String>,
    pub city: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClientConfig {
    pub version: u64,
    pub proxies: Vec<ProxyEntry>,
    pub poll_after_secs: u64,
}

/// The user's proxies that are live now, in the user's order (newest last).
pub fn proxy_entries(registry: &Registry, user: &User, now_ms: u64) -> Result<Vec<ProxyEntry>> {
    let mut entries = Vec::with_capacity(user.proxies.len());
    for name in &user.proxies {
        let Ok(name) = ProxyName::parse(name) else {
            continue;
        };
        if let Some(proxy) = registry.get(&name, now_ms)? {
            entries.push(ProxyEntry {
                name: proxy.name.to_string(),
                ip: proxy.ip.to_string(),
                port: proxy.port,
                role: proxy.role,
                country: proxy.location.country,
                city: proxy.location.city,
            });
        }
    }
    Ok(entries)
}

pub fn build(
    registry: &Registry,
    user: &User,
    poll_after_secs: u64,
    now_ms: u64,
) -> Result<ClientConfig> {
    Ok(ClientConfig {
        version: user.config_version,
        proxies: proxy_entries(registry, user, now_ms)?,
        poll_after_secs,
    })
}

/// The body as sent and its strong ETag.
pub fn render(config: &ClientConfig) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(config).unwrap_or_default();
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", hex::encode(&digest[..12]));
    (body, etag)
}

/// Does an `If-None-Match` header value match `etag` (a list, or `*`)?
pub fn matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_change_with_the_body_and_match_lists() {
        let a = ClientConfig {
            version: 1,
            proxies: vec![],
            poll_after_secs: 300,
        };
        let b = ClientConfig {
            version: 2,
            ..a.clone()
        };
        let (_, ta) = render(&a);
        let (_, tb) = render(&b);
        assert_ne!(ta, tb);
        assert_eq!(render(&a).1, ta);
        assert!(matches(&ta, &ta));
        assert!(matches(&format!("\"x\", W/{ta}"), &ta));
        assert!(matches("*", &ta));
        assert!(!matches("\"x\"", &ta));
    }
}
