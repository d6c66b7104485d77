//! The full copy: clears the prefix, writes every proxy, user, link, token and config from
//! sled, then sets `mirror:seq` to the sequence the copy started from. Changes committed during
//! the copy are streamed after it; each carries a whole record, so replaying one that the copy
//! already saw only writes the same record again.

use redis::aio::MultiplexedConnection;
use serde_json::json;

use super::configs::Configs;
use super::records::{write_proxy, write_user};
use super::State;
use crate::app::AppState;
use crate::clock::now_ms;
use crate::distribution::routes::SIGNATURE_HEADER;
use crate::fleet::model::User;
use crate::registry::Proxy;
use crate::store::codec::u64_key;
use crate::store::TreeId;

/// Users per pipeline during a copy.
const CHUNK: usize = 1_000;

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// `<prefix>settings`: what readers need besides the records.
pub async fn write_settings(
    state: &AppState,
    conn: &mut MultiplexedConnection,
) -> Result<(), String> {
    let settings = [
        ("public_key", state.distribution.keys.public_key()),
        ("signature_header", SIGNATURE_HEADER.to_string()),
        ("peers_domain", state.config.peers_domain.clone()),
        ("max_clients", state.config.max_clients.to_string()),
    ];
    redis::pipe()
        .hset_multiple(state.mirror.keys.settings(), &settings)
        .ignore()
        .query_async::<()>(conn)
        .await
        .map_err(text)
}

/// Copies everything; returns the sequence Redis now holds.
pub async fn run(
    state: &AppState,
    conn: &mut MultiplexedConnection,
    configs: &mut Configs,
    source: &str,
) -> Result<u64, String> {
    let started = std::time::Instant::now();
    let keys = state.mirror.keys.clone();
    state.mirror.update(|s| s.state = State::Resyncing);
    state.store.durable().await.map_err(text)?;
    // Everything up to here is in the copy; later changes are streamed after it.
    let seq = state.store.last_seq().map_err(text)?;

    clear(conn, &keys.pattern()).await?;
    write_settings(state, conn).await?;

    let mut records = 0u64;
    let proxies: Vec<Proxy> = state
        .store
        .values::<Proxy>(TreeId::Proxies)
        .collect::<crate::error::Result<_>>()
        .map_err(text)?;
    for chunk in proxies.chunks(CHUNK) {
        let mut pipe = redis::pipe();
        for proxy in chunk {
            write_proxy(&mut pipe, &keys, proxy);
        }
        pipe.query_async::<()>(conn).await.map_err(text)?;
        records += chunk.len() as u64;
    }

    *configs = Configs::load(state, now_ms()).map_err(text)?;
    let mut from = 0u64;
    loop {
        let users: Vec<User> = state
            .store
            .scan_from::<User>(TreeId::Users, u64_key(from))
            .take(CHUNK)
            .map(|item| item.map(|(_, user)| user))
            .collect::<crate::error::Result<_>>()
            .map_err(text)?;
        let now = now_ms();
        let mut pipe = redis::pipe();
        for user in &users {
            write_user(&mut pipe, &keys, user, seq, false);
            configs.write(&mut pipe, &keys, state, user, now);
        }
        if !pipe.is_empty() {
            pipe.query_async::<()>(conn).await.map_err(text)?;
        }
        records += users.len() as u64;
        match users.last() {
            Some(last) if users.len() == CHUNK => from = last.id + 1,
            _ => break,
        }
    }

    let message = json!({ "kind": "resync", "ids": [], "seq": seq }).to_string();
    redis::pipe()
        .atomic()
        .set(keys.seq(), seq)
        .ignore()
        .set(keys.source(), source)
        .ignore()
        .publish(keys.events(), message)
        .ignore()
        .query_async::<()>(conn)
        .await
        .map_err(text)?;
    let took_ms = started.elapsed().as_millis() as u64;
    tracing::info!(records, took_ms, seq, "redis mirror: resync done");
    state.mirror.update(|s| {
        s.resyncs += 1;
        s.last_resync_records = records;
        s.last_resync_ms = took_ms;
        s.configs_pending = false;
    });
    Ok(seq)
}

/// Removes every key under the prefix (SCAN + UNLINK: the server never blocks on a huge DEL).
async fn clear(conn: &mut MultiplexedConnection, pattern: &str) -> Result<(), String> {
    let mut cursor: u64 = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .map_err(text)?;
        if !found.is_empty() {
            redis::cmd("UNLINK")
                .arg(&found)
                .query_async::<()>(conn)
                .await
                .map_err(text)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
