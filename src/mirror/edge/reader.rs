//! What an edge reads from Redis: the settings, the fleet (for `/json`), and per request the
//! user behind a token and that user's config.

use std::collections::HashMap;

use crate::http::TokenHash;
use crate::mirror::keys::Keys;
use crate::registry::Proxy;

pub type ReadResult<T> = Result<T, String>;

/// An edge's connection: it reconnects by itself, with backoff, after any error (a Redis
/// restart, a dropped connection), so an edge never stays on a dead socket.
pub type Conn = redis::aio::ConnectionManager;

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// `<prefix>settings` as the primary wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub public_key: String,
    pub peers_domain: String,
    pub max_clients: u32,
}

pub async fn settings(conn: &mut Conn, keys: &Keys) -> ReadResult<Option<Settings>> {
    let fields: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.settings())
        .query_async(conn)
        .await
        .map_err(text)?;
    let (Some(public_key), Some(peers_domain), Some(max_clients)) = (
        fields.get("public_key"),
        fields.get("peers_domain"),
        fields.get("max_clients").and_then(|v| v.parse().ok()),
    ) else {
        return Ok(None);
    };
    Ok(Some(Settings {
        public_key: public_key.clone(),
        peers_domain: peers_domain.clone(),
        max_clients,
    }))
}

/// The sequence the mirror has applied (`None`: nothing mirrored yet).
pub async fn seq(conn: &mut Conn, keys: &Keys) -> ReadResult<Option<u64>> {
    redis::cmd("GET")
        .arg(keys.seq())
        .query_async(conn)
        .await
        .map_err(text)
}

/// Every mirrored proxy record.
pub async fn proxies(conn: &mut Conn, keys: &Keys) -> ReadResult<Vec<Proxy>> {
    let names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.proxies())
        .query_async(conn)
        .await
        .map_err(text)?;
    let mut proxies = Vec::with_capacity(names.len());
    for chunk in names.chunks(1_000) {
        let mut pipe = redis::pipe();
        for name in chunk {
            pipe.hget(keys.proxy(name), "record");
        }
        let records: Vec<Option<String>> = pipe.query_async(conn).await.map_err(text)?;
        for record in records.into_iter().flatten() {
            proxies.push(serde_json::from_str(&record).map_err(text)?);
        }
    }
    Ok(proxies)
}

/// A config as mirrored.
#[derive(Debug, Clone)]
pub struct StoredConfig {
    pub etag: String,
    pub signature: String,
    pub body: Vec<u8>,
}

/// The user a token belongs to, if its config may be read: active, or pending (an invitee
/// whose client holds the invitation's bundle and has not reached the primary).
pub async fn user_of(conn: &mut Conn, keys: &Keys, token: &str) -> ReadResult<Option<u64>> {
    let hash = hex::encode(TokenHash::of(token).as_bytes());
    let user: Option<u64> = redis::cmd("GET")
        .arg(keys.token(&hash))
        .query_async(conn)
        .await
        .map_err(text)?;
    let Some(user) = user else {
        return Ok(None);
    };
    let status: Option<String> = redis::cmd("HGET")
        .arg(keys.user(user))
        .arg("status")
        .query_async(conn)
        .await
        .map_err(text)?;
    Ok(matches!(status.as_deref(), Some("active" | "pending")).then_some(user))
}

pub async fn config(conn: &mut Conn, keys: &Keys, user: u64) -> ReadResult<Option<StoredConfig>> {
    let (etag, signature, body): (Option<String>, Option<String>, Option<Vec<u8>>) =
        redis::cmd("HMGET")
            .arg(keys.config(user))
            .arg("etag")
            .arg("signature")
            .arg("body")
            .query_async(conn)
            .await
            .map_err(text)?;
    Ok(match (etag, signature, body) {
        (Some(etag), Some(signature), Some(body)) => Some(StoredConfig {
            etag,
            signature,
            body,
        }),
        _ => None,
    })
}
