//! The full copy: clears the prefix, writes every proxy, user, link, token and config from
//! sled, then sets `mirror:seq` to the sequence the copy started from. Changes committed during
//! the copy are streamed after it; each carries a whole record, so replaying one that the copy
//! already saw only writes the same record again.

use redis::aio::MultiplexedConnection;
use serde_json::json;

use super::configs::Configs;
use super::records::{write_block, write_new_user, write_proxy};
use super::sealing::Sealing;
use super::MirrorDeps;
use super::State;
use crate::clock::now_ms;
use crate::distribution::SIGNATURE_HEADER;
use crate::fleet::model::User;
use crate::registry::Proxy;
use crate::store::codec::u64_key;
use crate::store::TreeId;

/// Users per pipeline during a copy.
const CHUNK: usize = 2_000;

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// `<prefix>settings`: what readers need besides the records.
pub async fn write_settings(
    deps: &MirrorDeps,
    conn: &mut MultiplexedConnection,
) -> Result<(), String> {
    let settings = [
        ("public_key", deps.distribution.keys.public_key()),
        ("signature_header", SIGNATURE_HEADER.to_string()),
        ("peers_domain", deps.settings.peers_domain.clone()),
        ("max_clients", deps.settings.max_clients.to_string()),
    ];
    redis::pipe()
        .hset_multiple(deps.mirror.keys.settings(), &settings)
        .ignore()
        .query_async::<()>(conn)
        .await
        .map_err(text)
}

/// Copies everything, for `reason` (shown to the admin and published with the `resync`
/// event); returns the sequence Redis now holds.
pub async fn run(
    deps: &MirrorDeps,
    conn: &mut MultiplexedConnection,
    configs: &mut Configs,
    source: &str,
    reason: &str,
) -> Result<u64, String> {
    let started = std::time::Instant::now();
    let keys = deps.mirror.keys.clone();
    tracing::info!(reason, "redis mirror: full copy");
    deps.mirror.update(|s| {
        s.state = State::Resyncing;
        s.last_resync_reason = Some(reason.to_string());
        s.last_resync_at = Some(now_ms() / 1000);
    });
    deps.store.durable().await.map_err(text)?;
    // Everything up to here is in the copy; later changes are streamed after it.
    let seq = deps.store.last_seq().map_err(text)?;

    clear(conn, &keys.pattern(), &keys.edge_written_prefix()).await?;
    write_settings(deps, conn).await?;

    let mut records = 0u64;
    let proxies: Vec<Proxy> = deps
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

    let blocked = crate::blocking::Blocking::all_blocked(&deps.store).map_err(text)?;
    if !blocked.is_empty() {
        let mut pipe = redis::pipe();
        for (proxy, country) in &blocked {
            write_block(&mut pipe, &keys, proxy, country, true);
        }
        pipe.query_async::<()>(conn).await.map_err(text)?;
        records += blocked.len() as u64;
    }

    *configs = Configs::load(deps, now_ms()).map_err(text)?;
    let mut from = 0u64;
    let mut in_flight: Option<tokio::task::JoinHandle<redis::RedisResult<()>>> = None;
    loop {
        let users: Vec<User> = deps
            .store
            .scan_from::<User>(TreeId::Users, u64_key(from))
            .take(CHUNK)
            .map(|item| item.map(|(_, user)| user))
            .collect::<crate::error::Result<_>>()
            .map_err(text)?;
        let pipes = build_chunk(deps, &keys, configs, &users);
        if !users.is_empty() {
            // One chunk in flight while the next is built: Redis and our CPU work at once.
            if let Some(previous) = in_flight.take() {
                previous.await.map_err(text)?.map_err(text)?;
            }
            let mut sender = conn.clone();
            in_flight = Some(tokio::spawn(async move {
                for pipe in pipes {
                    pipe.query_async::<()>(&mut sender).await?;
                }
                Ok(())
            }));
        }
        records += users.len() as u64;
        match users.last() {
            Some(last) if users.len() == CHUNK => from = last.id.0 + 1,
            _ => break,
        }
    }

    if let Some(last) = in_flight {
        last.await.map_err(text)?.map_err(text)?;
    }
    records += copy_replica(deps, conn, &keys).await?;

    let message = json!({ "kind": "resync", "ids": [], "seq": seq, "reason": reason }).to_string();
    let mut finish = redis::pipe();
    match &deps.mirror.sealing {
        Some(sealing) => finish.set(keys.sealed(), sealing.id()).ignore(),
        None => finish.del(keys.sealed()).ignore(),
    };
    finish
        .atomic()
        .set(keys.seq(), seq)
        .ignore()
        .set(keys.source(), source)
        .ignore()
        .set(keys.replica_format(), super::REPLICA_FORMAT)
        .ignore()
        .set(keys.data_format(), crate::store::format::DATA_FORMAT)
        .ignore()
        .publish(keys.events(), message)
        .ignore()
        .query_async::<()>(conn)
        .await
        .map_err(text)?;
    let took_ms = started.elapsed().as_millis() as u64;
    tracing::info!(records, took_ms, seq, "redis mirror: resync done");
    deps.mirror.update(|s| {
        s.resyncs += 1;
        s.last_resync_records = records;
        s.last_resync_ms = took_ms;
        s.configs_pending = false;
    });
    Ok(seq)
}

/// Copies every tree a replica carries into `<p>replica:<tree>`, byte for byte. Records
/// written meanwhile are also in the change log after `seq`, so the stream replays them.
async fn copy_replica(
    deps: &MirrorDeps,
    conn: &mut MultiplexedConnection,
    keys: &super::keys::Keys,
) -> Result<u64, String> {
    let mut records = 0u64;
    for tree in TreeId::ALL {
        let hash = keys.replica(tree.name());
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(CHUNK);
        let mut entries = deps.store.raw_entries(tree).peekable();
        while let Some(entry) = entries.next() {
            let (key, value) = entry.map_err(text)?;
            if crate::changes::carried(tree, &key) {
                let value = Sealing::outgoing(deps.mirror.sealing.as_ref(), tree, &key, &value);
                fields.push((key.to_vec(), value));
            }
            if fields.len() == CHUNK || (entries.peek().is_none() && !fields.is_empty()) {
                records += fields.len() as u64;
                redis::pipe()
                    .hset_multiple(&hash, &fields)
                    .ignore()
                    .query_async::<()>(conn)
                    .await
                    .map_err(text)?;
                fields.clear();
            }
        }
    }
    Ok(records)
}

/// The commands for one chunk of users, as at most two pipelines (Redis refuses an empty
/// one, and a chunk of one user has an empty half). Rendering and signing configs is most of
/// a copy's CPU, so the halves are built on two threads; their order does not matter because
/// the copy writes into an empty prefix and set additions commute.
fn build_chunk(
    deps: &MirrorDeps,
    keys: &super::keys::Keys,
    configs: &Configs,
    users: &[User],
) -> Vec<redis::Pipeline> {
    let build = |part: &[User]| {
        let now = now_ms();
        let mut pipe = redis::pipe();
        for user in part {
            write_new_user(&mut pipe, keys, user);
            configs.write(&mut pipe, keys, deps, user, now);
        }
        pipe
    };
    let (first, second) = users.split_at(users.len() / 2);
    let both = || {
        std::thread::scope(|scope| {
            let other = scope.spawn(|| build(second));
            let first = build(first);
            // A panic on the helper thread is a bug: build that half again here to surface it.
            let second = other.join().unwrap_or_else(|_| build(second));
            [first, second]
        })
    };
    // On the server's multi-threaded runtime, other tasks move to another worker meanwhile;
    // an embedding current-thread runtime (the tests' in-process server) just waits.
    let halves = match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => both(),
        _ => tokio::task::block_in_place(both),
    };
    halves.into_iter().filter(|pipe| !pipe.is_empty()).collect()
}

/// Removes every key under the prefix (SCAN + UNLINK: the server never blocks on a huge DEL)
/// but those the edges write for the primary (`keep`: their counts are not in the store yet).
async fn clear(conn: &mut MultiplexedConnection, pattern: &str, keep: &str) -> Result<(), String> {
    let mut cursor: u64 = 0;
    loop {
        let (next, mut found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .map_err(text)?;
        found.retain(|key| !key.starts_with(keep));
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
