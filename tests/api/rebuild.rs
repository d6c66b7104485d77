//! A primary rebuilt from its Redis mirror (`proxyfleet restore --from-redis`) after its disk
//! is lost: every record of a backup taken before the loss is there, and a server started on
//! it signs with the same key and accepts the same tokens and proxy secrets.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use proxyfleet::store::{Store, TreeId};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{client, proxyfleet, ProxyKeys, ServerProcess, ADMIN_TOKEN};
use crate::redis_support::{caught_up, RedisServer};

/// `proxyfleet restore --from-redis URL --data-dir INTO [--secrets-key KEY]`.
fn rebuild_from(url: &str, into: &Path, key: Option<&str>) -> (bool, String) {
    let mut args = vec![
        "restore",
        "--from-redis",
        url,
        "--data-dir",
        into.to_str().unwrap(),
    ];
    args.extend(key.iter().flat_map(|key| ["--secrets-key", key]));
    proxyfleet(&args, &[])
}

type Trees = BTreeMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Every record of the store in `dir`, by tree.
async fn trees_of(dir: &Path) -> Trees {
    let store = Store::open(dir).expect("open store");
    let mut trees = Trees::new();
    for tree in TreeId::ALL {
        let records = store
            .raw_entries(tree)
            .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<Result<_, _>>()
            .expect("read tree");
        trees.insert(tree.name(), records);
    }
    store.close().expect("close");
    trees
}

async fn create_user(base: &str, email: &str) -> Option<(u64, String)> {
    let response = client()
        .post(format!("{base}/api/v1/admin/users"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "email": email }))
        .send()
        .await
        .ok()?;
    if response.status() != StatusCode::CREATED {
        return None;
    }
    let body: serde_json::Value = response.json().await.ok()?;
    Some((body["id"].as_u64()?, body["token"].as_str()?.to_string()))
}

async fn config_etag(base: &str, token: &str) -> String {
    let response = client()
        .get(format!("{base}/api/v1/config"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    response.headers()["etag"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_under_writes_is_rebuilt_from_redis_with_everything_it_had() {
    let redis = RedisServer::start();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let url = redis.url();
    let env = [
        ("PROXYFLEET_REDIS_URL", url.as_str()),
        ("PROXYFLEET_REBALANCE_INTERVAL_SECS", "0"),
    ];
    let server = ServerProcess::start(&data, &env);
    let base = server.url("");

    // Mixed writes: proxies enrol and heartbeat, users are made, an admin account, a promo
    // code.
    let keys = ProxyKeys::default();
    for i in 0..5 {
        let form = [
            ("name", format!("fb{i}")),
            ("ip", format!("127.0.0.{}", i + 1)),
            ("port", "8443".to_string()),
            ("role", "fallback".to_string()),
        ];
        let response = keys
            .register(&client(), &base, &format!("fb{i}"), &form)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let mut users = Vec::new();
    for i in 0..40 {
        users.push(
            create_user(&base, &format!("u{i}@example.org"))
                .await
                .expect("user"),
        );
    }
    let account = client()
        .post(format!("{base}/admin/api/accounts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "username": "ops", "password": "a long enough password 1" }))
        .send()
        .await
        .unwrap();
    assert!(account.status().is_success(), "{:?}", account.text().await);
    let etag = config_etag(&base, &users[7].1).await;
    let at_backup = caught_up(&base, Duration::from_secs(60)).await["applied_seq"]
        .as_u64()
        .unwrap();

    // The backup the rebuild is compared with.
    let backup = root.path().join("before.pfbak");
    let (data_arg, listen) = (
        data.to_str().unwrap().to_string(),
        server.address.to_string(),
    );
    let backup_arg = backup.to_str().unwrap().to_string();
    let (ok, text) = tokio::task::spawn_blocking(move || {
        proxyfleet(
            &["backup", "--out", &backup_arg],
            &[
                ("PROXYFLEET_DATA_DIR", &data_arg),
                ("PROXYFLEET_LISTEN", &listen),
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "{text}");

    // More users while the primary dies; then its disk is gone.
    let writer = {
        let base = base.clone();
        tokio::spawn(async move {
            let mut made = 0;
            for i in 0..10_000 {
                if create_user(&base, &format!("late{i}@example.org"))
                    .await
                    .is_none()
                {
                    break;
                }
                made += 1;
            }
            made
        })
    };
    crate::helpers::eventually(Duration::from_secs(30), "late users mirrored", || async {
        let report = crate::redis_support::mirror_report(&base).await;
        (report["applied_seq"].as_u64() > Some(at_backup + 20)).then_some(())
    })
    .await;
    server.kill9();
    let late = writer.await.unwrap();
    assert!(late > 0, "writes were going on");
    std::fs::remove_dir_all(&data).unwrap();

    let rebuilt = root.path().join("rebuilt");
    let (ok, text) = rebuild_from(&url, &rebuilt, None);
    assert!(ok, "{text}");
    assert!(text.contains("rebuilt"), "{text}");
    let (ok, text) = proxyfleet(
        &["check"],
        &[("PROXYFLEET_DATA_DIR", rebuilt.to_str().unwrap())],
    );
    assert!(ok, "{text}");

    // Every record of the backup is there. Records the late users changed (counters, each
    // proxy's user count and links, the queue, the history) may be newer; the rest is equal.
    let restored = root.path().join("restored");
    let (ok, text) = proxyfleet(
        &[
            "restore",
            backup.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{text}");
    let before = trees_of(&restored).await;
    let after = trees_of(&rebuilt).await;
    let may_change = [
        "meta",
        "proxies",
        "proxy_assigned",
        "tasks",
        "task_keys",
        "outbox",
        "proxy_load",
    ];
    for (tree, records) in &before {
        // The task schedule is keyed by when each task is due: a task leased or done since
        // the backup is filed under another key or none (the tasks themselves are checked).
        if matches!(*tree, "changes" | "admin_sessions" | "task_schedule") {
            continue;
        }
        for (key, value) in records {
            // What describes the dead box itself (its mirror position and source, what its
            // varnishd ran): the rebuilt primary makes its own.
            let local = [
                "mirror.",
                "edge.status",
                "edge.groups",
                "edge.varnish_check",
            ];
            if *tree == "meta" && local.iter().any(|l| key.starts_with(l.as_bytes())) {
                continue;
            }
            let found = after[tree].get(key);
            let shown = String::from_utf8_lossy(key);
            assert!(found.is_some(), "{tree}: {shown} of the backup is missing");
            if !may_change.contains(tree) {
                assert_eq!(found, Some(value), "{tree}: {shown} differs");
            }
        }
    }
    let signing_key = |trees: &Trees| {
        trees["meta"]
            .iter()
            .filter(|(k, _)| k.starts_with(b"distribution."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(signing_key(&before), signing_key(&after), "the same keys");
    assert!(
        after["users"].len() > before["users"].len(),
        "late users that were mirrored are there too"
    );

    // A server on it: the same signature key and ETag for a user, the same proxy secrets.
    let server = ServerProcess::start(&rebuilt, &[("PROXYFLEET_REBALANCE_INTERVAL_SECS", "0")]);
    let base = server.url("");
    assert_eq!(config_etag(&base, &users[7].1).await, etag);
    let form = [
        ("name", "fb3"),
        ("ip", "127.0.0.4"),
        ("port", "8443"),
        ("role", "fallback"),
    ];
    let heartbeat = keys.register(&client(), &base, "fb3", &form).await;
    assert_eq!(
        heartbeat.status(),
        StatusCode::OK,
        "the proxy's secret is accepted"
    );
}

#[tokio::test]
async fn a_rebuild_refuses_a_redis_without_a_complete_mirror() {
    let redis = RedisServer::start();
    let root = tempfile::tempdir().unwrap();
    let into = root.path().join("rebuilt");
    let (ok, text) = rebuild_from(&redis.url(), &into, None);
    assert!(!ok, "{text}");
    assert!(text.contains("no complete mirror"), "{text}");
    assert!(!into.exists(), "nothing written");
}

/// A key file for `redis_encrypt_secrets` in `dir`, readable by its owner only.
fn key_file(dir: &Path, name: &str, byte: u8) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", hex::encode([byte; 32]))).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_string()
}

/// Every value of `<p>replica:<tree>`.
async fn replica_values(redis: &RedisServer, tree: &str) -> Vec<Vec<u8>> {
    let mut conn = redis.connection().await;
    let fields: BTreeMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL")
        .arg(format!("proxyfleet:replica:{tree}"))
        .query_async(&mut conn)
        .await
        .expect("HGETALL");
    fields.into_values().collect()
}

async fn wait_for_resync_because(base: &str, reason: &str) {
    crate::helpers::eventually(Duration::from_secs(30), reason, || async {
        let report = crate::redis_support::mirror_report(base).await;
        let why = report["last_resync_reason"].as_str().unwrap_or_default();
        (why.contains(reason) && report["state"] == "streaming").then_some(())
    })
    .await;
    caught_up(base, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_secrets_are_unreadable_in_redis_and_a_rebuild_needs_their_key() {
    let redis = RedisServer::start();
    let root = tempfile::tempdir().unwrap();
    let (data, url) = (root.path().join("data"), redis.url());
    let key = key_file(root.path(), "redis.key", 7);
    let wrong = key_file(root.path(), "other.key", 8);
    let sealed_env = [
        ("PROXYFLEET_REDIS_URL", url.as_str()),
        ("PROXYFLEET_REBALANCE_INTERVAL_SECS", "0"),
        ("PROXYFLEET_REDIS_ENCRYPT_SECRETS", key.as_str()),
    ];
    let server = ServerProcess::start(&data, &sealed_env);
    let base = server.url("");
    let (_, token) = create_user(&base, "sealed@example.org").await.unwrap();
    let account = client()
        .post(format!("{base}/admin/api/accounts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "username": "ops", "password": "a long enough password 1" }))
        .send()
        .await
        .unwrap();
    assert!(account.status().is_success());
    let etag = config_etag(&base, &token).await;
    caught_up(&base, Duration::from_secs(30)).await;
    let is_sealed = |value: &Vec<u8>| value.starts_with(b"pfs1");
    let meta = replica_values(&redis, "meta").await;
    let accounts = replica_values(&redis, "admin_accounts").await;
    assert!(!meta.is_empty() && meta.iter().all(is_sealed));
    assert_eq!(accounts.len(), 1);
    assert!(accounts.iter().all(is_sealed));
    assert!(!accounts[0].windows(7).any(|w| w == b"$argon2"));
    // Personal data is not a secret: it stays as the store holds it.
    assert!(!replica_values(&redis, "users").await.iter().any(is_sealed));

    // Restarted without the key, the primary copies the replica again, in clear; with it
    // again, sealed again (a replica is never half one, half the other).
    assert!(server.terminate().success());
    let clear_env = &sealed_env[..2];
    let server = ServerProcess::start(&data, clear_env);
    wait_for_resync_because(&server.url(""), "sealed otherwise").await;
    assert!(!replica_values(&redis, "meta").await.iter().any(is_sealed));
    assert!(server.terminate().success());
    let server = ServerProcess::start(&data, &sealed_env);
    wait_for_resync_because(&server.url(""), "sealed otherwise").await;
    assert!(replica_values(&redis, "meta").await.iter().all(is_sealed));
    server.kill9();

    let rebuilt = root.path().join("rebuilt");
    let rebuild = |key: Option<&str>| rebuild_from(&url, &rebuilt, key);
    let (ok, text) = rebuild(None);
    assert!(!ok && text.contains("--secrets-key"), "{text}");
    let (ok, text) = rebuild(Some(&wrong));
    assert!(!ok && text.contains("sealed with key"), "{text}");
    assert!(!rebuilt.exists(), "nothing written");
    let (ok, text) = rebuild(Some(&key));
    assert!(ok, "{text}");
    let server = ServerProcess::start(&rebuilt, &[("PROXYFLEET_REBALANCE_INTERVAL_SECS", "0")]);
    assert_eq!(
        config_etag(&server.url(""), &token).await,
        etag,
        "same signing key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_without_a_replica_is_refused_then_copied_again_by_its_primary() {
    let redis = RedisServer::start();
    let root = tempfile::tempdir().unwrap();
    let (data, url) = (root.path().join("data"), redis.url());
    let env = [
        ("PROXYFLEET_REDIS_URL", url.as_str()),
        ("PROXYFLEET_REBALANCE_INTERVAL_SECS", "0"),
    ];
    let server = ServerProcess::start(&data, &env);
    let (_, token) = create_user(&server.url(""), "old@example.org")
        .await
        .unwrap();
    caught_up(&server.url(""), Duration::from_secs(30)).await;
    assert!(server.terminate().success());
    // What an older proxyfleet left: the mirror, without the replica and its marker.
    let mut conn = redis.connection().await;
    let replica: Vec<String> = redis::cmd("KEYS")
        .arg("proxyfleet:replica:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!replica.is_empty());
    let _: () = redis::cmd("DEL")
        .arg(&replica)
        .arg("proxyfleet:mirror:replica")
        .query_async(&mut conn)
        .await
        .unwrap();

    let rebuilt = root.path().join("rebuilt");
    let rebuild = || rebuild_from(&url, &rebuilt, None);
    let (ok, text) = rebuild();
    assert!(!ok && text.contains("without a replica"), "{text}");
    assert!(!rebuilt.exists(), "nothing written");

    let server = ServerProcess::start(&data, &env);
    wait_for_resync_because(&server.url(""), "no replica").await;
    let etag = config_etag(&server.url(""), &token).await;
    server.kill9();
    let (ok, text) = rebuild();
    assert!(ok, "{text}");
    let server = ServerProcess::start(&rebuilt, &[("PROXYFLEET_REBALANCE_INTERVAL_SECS", "0")]);
    assert_eq!(config_etag(&server.url(""), &token).await, etag);
}

#[tokio::test]
async fn a_rebuild_from_a_redis_that_answers_nothing_gives_up_and_writes_nothing() {
    let redis = RedisServer::start();
    let root = tempfile::tempdir().unwrap();
    let into = root.path().join("rebuilt");
    redis.stall(true);
    let (ok, text) = rebuild_from(&redis.url(), &into, None);
    redis.stall(false);
    assert!(!ok, "{text}");
    assert!(text.contains("redis"), "{text}");
    assert!(!into.exists(), "nothing written");
    let leftovers: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "no scratch directory left: {leftovers:?}"
    );
}
