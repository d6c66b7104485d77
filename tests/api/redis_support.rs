//! A real `redis-server` on a free loopback port, started and stopped by the test, and the
//! reads the mirror tests make of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{eventually, free_port, require_program, ADMIN_TOKEN};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    _dir: tempfile::TempDir,
    binary: PathBuf,
}

impl RedisServer {
    /// An empty Redis without persistence (a restart empties it).
    pub fn start() -> RedisServer {
        let binary = require_program("redis-server", "redis-server");
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            _dir: tempfile::tempdir().expect("temp dir"),
            binary,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self._dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: everything it held is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a server that holds its connections and answers
    /// nothing, as a stalled or swapping Redis does.
    pub fn stall(&self, stalled: bool) {
        let child = self.child.as_ref().expect("redis-server runs");
        let signal = if stalled { "-STOP" } else { "-CONT" };
        let sent = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill {signal}");
    }

    /// Starts again on the same port, empty.
    pub fn restart_empty(&mut self) {
        self.kill();
        self.spawn();
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One key's value, whatever its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dumped {
    String(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    Set(BTreeSet<String>),
}

/// Every key under `prefix` with its value.
pub async fn dump(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> BTreeMap<String, Dumped> {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN");
        keys.extend(found);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut out = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(conn)
            .await
            .expect("TYPE");
        let value = match kind.as_str() {
            "string" => Dumped::String(
                redis::cmd("GET")
                    .arg(&key)
                    .query_async(conn)
                    .await
                    .expect("GET"),
            ),
            "hash" => Dumped::Hash(
                redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(conn)
                    .await
                    .expect("HGETALL"),
            ),
            "set" => Dumped::Set(
                redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(conn)
                    .await
                    .expect("SMEMBERS"),
            ),
            "none" => continue,
            other => panic!("unexpected type {other} of {key}"),
        };
        out.insert(key, value);
    }
    out
}

pub async fn hash(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> BTreeMap<String, String> {
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(conn)
        .await
        .expect("HGETALL")
}

pub async fn members(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> BTreeSet<String> {
    redis::cmd("SMEMBERS")
        .arg(key)
        .query_async(conn)
        .await
        .expect("SMEMBERS")
}

/// The mirror's report from a server's admin API.
pub async fn mirror_report(base: &str) -> Value {
    crate::helpers::client()
        .get(format!("{base}/api/v1/admin/mirror"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

/// Waits until the mirror streams, holds every committed change and has no config sweep left.
pub async fn caught_up(base: &str, limit: Duration) -> Value {
    eventually(limit, "the mirror to catch up", || async {
        let report = mirror_report(base).await;
        let done = report["state"] == "streaming"
            && report["changes_behind"] == 0
            && report["configs_pending"] == false;
        done.then_some(report)
    })
    .await
}

/// Asks for a full copy and waits until it is done (the resync count went up).
pub async fn resync(base: &str, limit: Duration) {
    let before = mirror_report(base).await["resyncs"]
        .as_u64()
        .expect("resyncs");
    let response = crate::helpers::client()
        .post(format!("{base}/api/v1/admin/mirror/resync"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    eventually(limit, "the resync", || async {
        let report = mirror_report(base).await;
        (report["resyncs"].as_u64() > Some(before)).then_some(())
    })
    .await;
    caught_up(base, limit).await;
}

/// Waits until no task is waiting or running (the queue is mirrored too: a task finishing
/// between two dumps would tell them apart), then until the mirror has caught up.
async fn settled(base: &str) {
    eventually(Duration::from_secs(60), "the queue to be idle", || async {
        let queue: Value = crate::helpers::client()
            .get(format!("{base}/api/v1/admin/queue"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        (queue["ready"] == 0 && queue["leased"] == 0).then_some(())
    })
    .await;
    caught_up(base, Duration::from_secs(60)).await;
}

/// Streaming and a fresh copy from sled must leave Redis identical, key by key.
pub async fn assert_equals_a_fresh_copy(base: &str, redis: &RedisServer) {
    let mut conn = redis.connection().await;
    settled(base).await;
    let mut streamed = dump(&mut conn, "proxyfleet:").await;
    resync(base, Duration::from_secs(60)).await;
    settled(base).await;
    let mut copied = dump(&mut conn, "proxyfleet:").await;
    // Asking for the copy is itself an audited admin write: its audit entry, the audit
    // counter and the sequence it took are in the copy only.
    for dumped in [&mut streamed, &mut copied] {
        dumped.remove("proxyfleet:mirror:seq");
        if let Some(Dumped::Hash(meta)) = dumped.get_mut("proxyfleet:replica:meta") {
            meta.remove(b"audit.next_id".as_slice());
        }
    }
    let audit = "proxyfleet:replica:audit";
    let streamed_audit = match streamed.get(audit) {
        Some(Dumped::Hash(entries)) => entries.clone(),
        _ => BTreeMap::new(),
    };
    if let Some(Dumped::Hash(entries)) = copied.get_mut(audit) {
        let before = entries.len();
        entries.retain(|id, _| streamed_audit.contains_key(id));
        assert_eq!(
            before - entries.len(),
            1,
            "the resync request's own audit entry"
        );
        if entries.is_empty() {
            copied.remove(audit);
        }
    }
    let only_streamed: Vec<&String> = streamed
        .keys()
        .filter(|k| !copied.contains_key(*k))
        .collect();
    let only_copied: Vec<&String> = copied
        .keys()
        .filter(|k| !streamed.contains_key(*k))
        .collect();
    let differing: Vec<&String> = streamed
        .iter()
        .filter(|(k, v)| copied.get(*k).is_some_and(|c| c != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        only_streamed.is_empty() && only_copied.is_empty() && differing.is_empty(),
        "streamed != copied: only streamed {only_streamed:?}, only copied {only_copied:?}, differing {differing:?}"
    );
    assert!(streamed.len() > 3, "the mirror holds data");
}
