//! `proxyfleet restore --from-redis`: rebuilds a primary's store from its Redis mirror when
//! the primary's disk is lost. Every tree the change log carries for a replica is in
//! `<p>replica:<tree>` byte for byte; the live proxy records come from `<p>proxy:<name>` (the
//! mirror's own records) with their secret taken from the proxy's credential. The admin
//! panel's sessions are not replicated: everyone signs in again.

use std::path::Path;

use redis::aio::MultiplexedConnection;

use super::keys::Keys;
use super::sealing::{is_sealed, Sealing};
use super::{connect, REPLICA_FORMAT};
use crate::error::{Error, Result};
use crate::registry::credentials::{ProxyCredential, SecretState};
use crate::registry::Proxy;
use crate::store::{Store, TreeId};

/// Fields read per HSCAN step (and loaded per batch).
const PAGE: usize = 1_000;
/// Pages read from Redis but not yet written to sled, at most.
const PAGES_AHEAD: usize = 4;
/// Records written between two reopenings of the store (see `copy_into`).
const REOPEN_EVERY: u64 = 1_000_000;
/// How long a reopening waits for sled to let go of the store it just closed.
const REOPEN_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);
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
pub async fn from_redis(
    url: &str,
    prefix: &str,
    sealing: Option<&Sealing>,
    data_dir: &Path,
) -> Result<Rebuilt> {
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
        let before = complete_seq(&mut conn, &keys, sealing).await?;
        let copied = copy_into(&scratch, &mut conn, &keys, sealing, before).await;
        let after = complete_seq(&mut conn, &keys, sealing).await;
        let (rebuilt, after) = match (copied, after) {
            (Ok(rebuilt), Ok(after)) => (rebuilt, after),
            (Err(e), _) | (_, Err(e)) => {
                let _ = std::fs::remove_dir_all(&scratch);
                return Err(e);
            }
        };
        if after != before {
            continue; // written meanwhile: read again
        }
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

/// `mirror:seq`, if Redis holds a complete mirror with a replica of every tree, sealed with
/// the key given (if any).
async fn complete_seq(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    sealing: Option<&Sealing>,
) -> Result<u64> {
    let (seq, replica, sealed): (Option<u64>, Option<u64>, Option<String>) = redis::pipe()
        .get(keys.seq())
        .get(keys.replica_format())
        .get(keys.sealed())
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
    match (sealed, sealing) {
        (None, _) => {}
        (Some(_), None) => {
            return Err(Error::invalid(
                "replica_sealed",
                "the replica's secrets are sealed (redis_encrypt_secrets): give its key file \
                 with --secrets-key FILE",
            ))
        }
        (Some(id), Some(sealing)) if id != sealing.id() => {
            return Err(Error::invalid(
                "secrets_key_mismatch",
                format!(
                    "the replica's secrets are sealed with key {id}, the key file given is {}",
                    sealing.id()
                ),
            ))
        }
        (Some(_), Some(_)) => {}
    }
    Ok(seq)
}

/// Copies every replica hash, then the live proxies, into a store made in `dir`, which it
/// leaves closed. Reading Redis and writing sled overlap: a task reads pages while a thread
/// writes them, with at most `PAGES_AHEAD` pages between them. Each tree is sorted before it
/// is written (sled takes keys in order at about twice the speed), and the store is closed
/// and opened again every `REOPEN_EVERY` records: sled 0.34 keeps what it wrote in memory
/// whatever its cache size, and 1,000,000 users would otherwise need about 2.6 GB.
async fn copy_into(
    dir: &Path,
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    sealing: Option<&Sealing>,
    seq: u64,
) -> Result<Rebuilt> {
    let (pages, mut received) = tokio::sync::mpsc::channel::<(TreeId, Vec<Vec<u8>>)>(PAGES_AHEAD);
    let reader = {
        let (mut conn, keys) = (conn.clone(), keys.clone());
        tokio::spawn(async move {
            for tree in TreeId::ALL {
                let hash = keys.replica(tree.name());
                let mut cursor: u64 = 0;
                loop {
                    let (next, flat): (u64, Vec<Vec<u8>>) = redis::cmd("HSCAN")
                        .arg(&hash)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(PAGE)
                        .query_async(&mut conn)
                        .await
                        .map_err(redis_error)?;
                    if !flat.is_empty() && pages.send((tree, flat)).await.is_err() {
                        return Ok(()); // the writer failed: its error is the one reported
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            Ok::<(), Error>(())
        })
    };
    let writer = {
        let (dir, sealing) = (dir.to_path_buf(), sealing.cloned());
        tokio::task::spawn_blocking(move || {
            let mut loader = Loader::open(dir, REOPEN_EVERY)?;
            let mut tree_now = None;
            let mut held: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            while let Some((tree, flat)) = received.blocking_recv() {
                if let Some(done) = tree_now.filter(|&t| t != tree) {
                    loader.write_sorted(done, &mut held)?;
                }
                tree_now = Some(tree);
                held.extend(pairs(tree, flat, sealing.as_ref())?);
            }
            if let Some(done) = tree_now {
                loader.write_sorted(done, &mut held)?;
            }
            loader.close()
        })
    };
    let written = writer.await.map_err(Error::internal)?;
    reader.await.map_err(Error::internal)??;
    let records = written?;
    let store = Store::reopen(dir, REOPEN_WITHIN)?;
    let proxies = copy_proxies(&store, conn, keys).await?;
    store.transaction(|tx| tx.put(TreeId::Meta, "changelog.seq", &seq))?;
    store.close()?;
    Ok(Rebuilt {
        seq,
        records,
        proxies,
    })
}

/// The store a rebuild writes into, closed and opened again every `REOPEN_EVERY` records.
struct Loader {
    dir: std::path::PathBuf,
    /// Always `Some` between calls (taken while the store is reopened).
    store: Option<Store>,
    records: u64,
    since_open: u64,
    reopen_every: u64,
}

impl Loader {
    fn open(dir: std::path::PathBuf, reopen_every: u64) -> Result<Loader> {
        Ok(Loader {
            store: Some(Store::open(&dir)?),
            dir,
            records: 0,
            since_open: 0,
            reopen_every,
        })
    }

    /// Writes one tree's records in key order, in batches of `PAGE`, and empties `held`.
    fn write_sorted(&mut self, tree: TreeId, held: &mut Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        held.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut batch = Vec::with_capacity(PAGE);
        for record in held.drain(..) {
            batch.push(record);
            if batch.len() == PAGE {
                self.write(tree, std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            self.write(tree, batch)?;
        }
        Ok(())
    }

    fn write(&mut self, tree: TreeId, batch: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        let count = batch.len() as u64;
        let store = self.store.take().expect("a loader's store is open");
        store.load(tree.name(), batch)?;
        self.records += count;
        self.since_open += count;
        self.store = Some(if self.since_open >= self.reopen_every {
            // Closed first: sled refuses a second opening of a directory that is open.
            store.close()?;
            self.since_open = 0;
            Store::reopen(&self.dir, REOPEN_WITHIN)?
        } else {
            store
        });
        Ok(())
    }

    /// Closes the store (flushed); returns the records written.
    fn close(self) -> Result<u64> {
        if let Some(store) = self.store {
            store.close()?;
        }
        Ok(self.records)
    }
}

/// An HSCAN page (field, value, field, value...) as records, sealed values opened.
fn pairs(
    tree: TreeId,
    flat: Vec<Vec<u8>>,
    sealing: Option<&Sealing>,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut records = Vec::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let (Some(key), Some(value)) = (flat.next(), flat.next()) {
        let value = match sealing {
            Some(sealing) if is_sealed(tree) => sealing.open(tree, &key, &value)?,
            _ => value,
        };
        records.push((key, value));
    }
    Ok(records)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_loader_reopening_its_store_keeps_every_record_of_every_tree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let mut loader = Loader::open(path.clone(), 1_000).unwrap();
        let records = |n: u64, tag: u8| -> Vec<(Vec<u8>, Vec<u8>)> {
            // In the shuffled order HSCAN gives.
            (0..n)
                .map(|i| ((i * 7_919) % n).to_be_bytes().to_vec())
                .map(|key| (key, vec![tag]))
                .collect()
        };
        loader
            .write_sorted(TreeId::Users, &mut records(2_500, 1))
            .unwrap();
        loader
            .write_sorted(TreeId::ProxyUsers, &mut records(1_001, 2))
            .unwrap();
        assert_eq!(loader.close().unwrap(), 3_501);
        let store = Store::open(&path).unwrap();
        let keys = |tree| -> Vec<Vec<u8>> {
            store
                .raw_entries(tree)
                .map(|entry| entry.unwrap().0.to_vec())
                .collect()
        };
        let expected = |n: u64| (0..n).map(|i| i.to_be_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(keys(TreeId::Users), expected(2_500));
        assert_eq!(keys(TreeId::ProxyUsers), expected(1_001));
    }
}
