//! `proxyfleet restore --from-redis`: rebuilds a primary's store from its Redis mirror when
//! the primary's disk is lost. Every tree the change log carries for a replica is in
//! `<p>replica:<tree>` byte for byte; the live proxy records come from `<p>proxy:<name>` (the
//! mirror's own records) with their secret taken from the proxy's credential. The admin
//! panel's sessions are not replicated: everyone signs in again.

use std::path::Path;

use redis::aio::MultiplexedConnection;

use super::keys::Keys;
use super::{connect, REPLICA_FORMAT};
use crate::error::{Error, Result};
use crate::registry::credentials::{ProxyCredential, SecretState};
use crate::registry::Proxy;
use crate::store::{Store, TreeId};

/// Fields read per HSCAN step (and loaded per batch).
const PAGE: usize = 1_000;
/// Attempts at a read during which Redis did not change.
const ATTEMPTS: usize = 3;

/// What a rebuild wrote.
#[derive(Debug, Clone, Default)]
pub struct Rebuilt {
    /// The mirror's sequence the store was rebuilt at.
    pub seq: u64,
    pub records: u64,
    pub proxies: u64,
}

fn redis_error(error: redis::RedisError) -> Error {
    Error::caused_by("redis", error)
}

/// Rebuilds into `data_dir` (empty or absent) from the mirror under `prefix` at `url`.
/// Refuses a Redis that holds no complete mirror, or one mirrored without a replica, and
/// reads again (up to 3 times) when `mirror:seq` moved during the read (a primary still
/// running): the result is one batch boundary of the primary's history.
pub async fn from_redis(url: &str, prefix: &str, data_dir: &Path) -> Result<Rebuilt> {
    Store::refuse_occupied(data_dir)?;
    let keys = Keys::new(prefix);
    let mut conn = connect(url).await.map_err(redis_error)?;
    // Built beside the data dir, which it replaces only once whole.
    let mut scratch = data_dir.as_os_str().to_owned();
    scratch.push(format!(".partial-{}", std::process::id()));
    let scratch = std::path::PathBuf::from(scratch);
    let io = |what: &Path, e: std::io::Error| Error::caused_by(what.display().to_string(), e);
    for _ in 0..ATTEMPTS {
        let _ = std::fs::remove_dir_all(&scratch);
        let before = complete_seq(&mut conn, &keys).await?;
        let store = Store::open(&scratch)?;
        let copied = copy_into(&store, &mut conn, &keys).await;
        let after = complete_seq(&mut conn, &keys).await;
        let (mut rebuilt, after) = match (copied, after) {
            (Ok(rebuilt), Ok(after)) => (rebuilt, after),
            (Err(e), _) | (_, Err(e)) => {
                drop(store);
                let _ = std::fs::remove_dir_all(&scratch);
                return Err(e);
            }
        };
        if after != before {
            drop(store);
            continue; // written meanwhile: read again
        }
        store.transaction(|tx| tx.put(TreeId::Meta, "changelog.seq", &before))?;
        store.close()?;
        rebuilt.seq = before;
        if data_dir.exists() {
            std::fs::remove_dir(data_dir).map_err(|e| io(data_dir, e))?;
        }
        std::fs::rename(&scratch, data_dir).map_err(|e| io(data_dir, e))?;
        return Ok(rebuilt);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Err(Error::conflict(
        "redis_changing",
        "mirror:seq kept moving while reading: stop the primary that writes this Redis first",
    ))
}

/// `mirror:seq`, if Redis holds a complete mirror with a replica of every tree.
async fn complete_seq(conn: &mut MultiplexedConnection, keys: &Keys) -> Result<u64> {
    let (seq, replica): (Option<u64>, Option<u64>) = redis::pipe()
        .get(keys.seq())
        .get(keys.replica_format())
        .query_async(conn)
        .await
        .map_err(redis_error)?;
    let Some(seq) = seq else {
        return Err(Error::invalid(
            "mirror_incomplete",
            "redis holds no complete mirror (mirror:seq is missing: empty, flushed, or a full \
             copy in progress)",
        ));
    };
    if replica != Some(REPLICA_FORMAT) {
        return Err(Error::invalid(
            "mirror_without_replica",
            "redis holds a mirror without a replica of every tree (written by an older \
             proxyfleet): let the primary make a full copy first",
        ));
    }
    Ok(seq)
}

async fn copy_into(
    store: &Store,
    conn: &mut MultiplexedConnection,
    keys: &Keys,
) -> Result<Rebuilt> {
    let mut rebuilt = Rebuilt::default();
    for tree in TreeId::ALL {
        let hash = keys.replica(tree.name());
        let mut cursor: u64 = 0;
        loop {
            let (next, flat): (u64, Vec<Vec<u8>>) = redis::cmd("HSCAN")
                .arg(&hash)
                .arg(cursor)
                .arg("COUNT")
                .arg(PAGE)
                .query_async(conn)
                .await
                .map_err(redis_error)?;
            let records: Vec<(Vec<u8>, Vec<u8>)> = flat
                .chunks_exact(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect();
            rebuilt.records += records.len() as u64;
            if !records.is_empty() {
                store.load(tree.name(), records)?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    rebuilt.proxies = copy_proxies(store, conn, keys).await?;
    Ok(rebuilt)
}

/// The live proxies, from the mirror's records, each with the secret its credential holds.
async fn copy_proxies(store: &Store, conn: &mut MultiplexedConnection, keys: &Keys) -> Result<u64> {
    let names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.proxies())
        .query_async(conn)
        .await
        .map_err(redis_error)?;
    let mut copied = 0;
    for chunk in names.chunks(PAGE) {
        let mut pipe = redis::pipe();
        for name in chunk {
            pipe.hget(keys.proxy(name), "record");
        }
        let records: Vec<Option<String>> = pipe.query_async(conn).await.map_err(redis_error)?;
        for record in records.into_iter().flatten() {
            let mut proxy: Proxy = serde_json::from_str(&record)
                .map_err(|e| Error::caused_by("a mirrored proxy record", e))?;
            let credential =
                store.get::<ProxyCredential>(TreeId::ProxyCredentials, proxy.name.as_str())?;
            proxy.secret_hash = match credential.map(|c| c.secret) {
                Some(SecretState::Active(hash)) => Some(hash),
                _ => None,
            };
            store.put(TreeId::Proxies, proxy.name.as_str(), &proxy)?;
            copied += 1;
        }
    }
    Ok(copied)
}
