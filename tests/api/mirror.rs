//! The Redis mirror against a real redis-server: the documented keys for every kind of change,
//! order, events, recovery from a lost Redis and from a killed primary.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{spawn_app_with, ServerProcess, TestApp};
use crate::redis_support::{assert_equals_a_fresh_copy, caught_up, hash, members, RedisServer};

fn sha_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

async fn mirrored_app(redis: &RedisServer) -> TestApp {
    let url = redis.url();
    spawn_app_with(move |c| c.redis_url = Some(url)).await
}

fn base(app: &TestApp) -> String {
    app.url("")
}

#[tokio::test]
async fn every_kind_of_change_appears_under_the_documented_keys() {
    let redis = RedisServer::start();
    let app = mirrored_app(&redis).await;
    app.proxy(
        "fb1",
        10_001,
        &[
            ("role", "fallback"),
            ("country", "DE"),
            ("city", "Berlin"),
            ("lat", "52.5"),
            ("lon", "13.4"),
            ("clients", "7"),
            ("capacity", "90"),
        ],
    )
    .await;
    app.proxy("free1", 10_002, &[("role", "free")]).await;
    app.proxy("pro1", 10_003, &[("role", "pro")]).await;
    app.proxy("gone1", 10_004, &[("role", "free")]).await;
    let (inviter, _, _) = app.create_user("ana@example.org", None).await;
    let (id, token, proxies) = app.create_user("bo@example.org", Some(inviter)).await;
    assert_eq!(proxies, vec!["fb1".to_string()]);
    app.gift_pro(id, 30).await;
    let device: Value = app
        .user_post(&token, "/api/v1/devices", &json!({ "name": "phone" }))
        .await
        .json()
        .await
        .unwrap();
    let device_token = device["token"].as_str().expect("device token").to_string();
    assert_eq!(app.unregister("gone1").await.status(), StatusCode::OK);
    caught_up(&base(&app), Duration::from_secs(30)).await;

    let mut conn = redis.connection().await;
    assert_eq!(
        members(&mut conn, "proxyfleet:proxies").await,
        ["fb1", "free1", "pro1"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let fb1 = hash(&mut conn, "proxyfleet:proxy:fb1").await;
    for (field, value) in [
        ("ip", "127.0.0.1"),
        ("port", "10001"),
        ("role", "fallback"),
        ("country", "DE"),
        ("city", "Berlin"),
        ("lat", "52.5"),
        ("lon", "13.4"),
        ("capacity", "90"),
        ("clients", "7"),
    ] {
        assert_eq!(
            fb1.get(field).map(String::as_str),
            Some(value),
            "proxy:fb1 {field}"
        );
    }
    let expires: i64 = fb1["expires_at"].parse().unwrap();
    assert!(expires > crate::helpers::unix_now());
    assert!(
        hash(&mut conn, "proxyfleet:proxy:gone1").await.is_empty(),
        "an unregistered proxy is deleted"
    );

    let user = hash(&mut conn, &format!("proxyfleet:user:{id}")).await;
    assert_eq!(user["email"], "bo@example.org");
    assert_eq!(user["status"], "active");
    assert_eq!(user["invited_by"], inviter.to_string());
    let pro_until: i64 = user["pro_until"].parse().unwrap();
    assert!(pro_until > crate::helpers::unix_now() + 29 * 86_400);
    assert_eq!(
        members(&mut conn, &format!("proxyfleet:user:{id}:proxies")).await,
        app.user_proxies(id).await.into_iter().collect()
    );
    assert!(members(&mut conn, "proxyfleet:proxy:fb1:users")
        .await
        .contains(&id.to_string()));

    // Tokens: the edge's lookup of both tokens, and the pro proxy's accept list.
    for t in [&token, &device_token] {
        let owner: Option<String> = redis::cmd("GET")
            .arg(format!("proxyfleet:token:{}", sha_hex(t)))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(owner, Some(id.to_string()));
    }
    let accepted = members(&mut conn, "proxyfleet:proxy:pro1:tokens").await;
    assert!(accepted.contains(&sha_hex(&token)) && accepted.contains(&sha_hex(&device_token)));
    assert_eq!(
        accepted.len(),
        2,
        "only this Pro user's tokens: {accepted:?}"
    );

    // The config, exactly as the primary sends it.
    let response = app
        .client
        .get(app.url("/api/v1/config"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let signature = response.headers()["x-proxyfleet-signature"]
        .to_str()
        .unwrap()
        .to_string();
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let body = response.bytes().await.unwrap();
    let config: std::collections::BTreeMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(format!("proxyfleet:config:{id}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(config["body"], body.to_vec());
    assert_eq!(config["signature"], signature.as_bytes());
    assert_eq!(config["etag"], etag.as_bytes());
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(config["version"], served["version"].to_string().as_bytes());
    let names: Vec<&str> = served["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"pro1") && names.contains(&"fb1"),
        "{names:?}"
    );

    // The admin sees the mirror; /metrics carries its gauges.
    let metrics = app.metrics_text().await;
    assert!(metrics.contains("proxyfleet_mirror_up 1"), "{metrics}");
    assert!(
        metrics.contains("proxyfleet_mirror_lag_changes 0"),
        "{metrics}"
    );

    // Disabling a user is mirrored too.
    let response = app
        .admin_post(
            &format!("/api/v1/admin/users/{inviter}/disable"),
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    caught_up(&base(&app), Duration::from_secs(30)).await;
    assert_eq!(
        hash(&mut conn, &format!("proxyfleet:user:{inviter}")).await["status"],
        "disabled"
    );

    assert_equals_a_fresh_copy(&base(&app), &redis).await;
}

#[tokio::test]
async fn subscribers_hear_every_change_in_order_and_the_proxy_hears_its_users() {
    let redis = RedisServer::start();
    let app = mirrored_app(&redis).await;
    app.proxy("fb1", 10_001, &[("role", "fallback")]).await;
    caught_up(&base(&app), Duration::from_secs(30)).await;

    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("proxyfleet:events").await.unwrap();
    pubsub
        .subscribe("proxyfleet:proxy:fb1:events")
        .await
        .unwrap();
    let mut messages = pubsub.into_on_message();

    // Concurrent writers: heartbeats of 8 proxies and new users, all at once.
    let mut writers = Vec::new();
    for w in 0..8u16 {
        let client = app.client.clone();
        let (keys, base) = (app.keys.clone(), app.url(""));
        writers.push(tokio::spawn(async move {
            for beat in 0..25 {
                let form = [
                    ("name", format!("w{w}")),
                    ("ip", "127.0.0.1".to_string()),
                    ("port", (11_000 + w).to_string()),
                    ("role", "free".to_string()),
                    ("clients", beat.to_string()),
                ];
                let name = format!("w{w}");
                let response = keys.register(&client, &base, &name, &form).await;
                assert_eq!(response.status(), StatusCode::OK);
            }
        }));
    }
    let (id, _, _) = app.create_user("cy@example.org", None).await;
    for writer in writers {
        writer.await.unwrap();
    }
    caught_up(&base(&app), Duration::from_secs(30)).await;

    let mut seqs = Vec::new();
    let mut heard_user_added = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let last_seq = crate::redis_support::mirror_report(&base(&app)).await["last_seq"]
        .as_u64()
        .unwrap();
    while seqs.last() != Some(&last_seq) || !heard_user_added {
        let message = tokio::time::timeout_at(deadline, messages.next())
            .await
            .expect("events arrive")
            .expect("subscription open");
        let payload: Value =
            serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
        if message.get_channel_name() == "proxyfleet:events" {
            if payload["kind"] != "configs" {
                seqs.push(payload["seq"].as_u64().unwrap());
            }
        } else {
            assert_eq!(payload["kind"], "user_added", "{payload}");
            assert_eq!(payload["user"], id);
            assert_eq!(payload["link"], "fallback");
            heard_user_added = true;
        }
    }
    let first = seqs[0];
    let expected: Vec<u64> = (first..=last_seq).collect();
    assert_eq!(seqs, expected, "every change once, in commit order");

    // Redis holds the last heartbeat of each proxy (the order of writes was kept).
    let mut conn = redis.connection().await;
    for w in 0..8 {
        assert_eq!(
            hash(&mut conn, &format!("proxyfleet:proxy:w{w}")).await["clients"],
            "24"
        );
    }
}

/// 10,000 changes: heartbeats of 100 proxies, 100 each.
async fn burst(base: String, changes: usize) -> usize {
    let client = crate::helpers::client();
    let mut writers = Vec::new();
    let keys = crate::helpers::ProxyKeys::default();
    for w in 0..100usize {
        let client = client.clone();
        let (keys, base) = (keys.clone(), base.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = 0;
            for beat in 0..changes / 100 {
                let form = [
                    ("name", format!("b{w}")),
                    ("ip", "127.0.0.1".to_string()),
                    ("port", (12_000 + w).to_string()),
                    (
                        "role",
                        if w % 10 == 0 { "free" } else { "fallback" }.to_string(),
                    ),
                    ("clients", beat.to_string()),
                ];
                let name = format!("b{w}");
                if let Ok(r) = keys.try_register(&client, &base, &name, &form).await {
                    if r.status() == StatusCode::OK {
                        acked += 1;
                    }
                }
            }
            acked
        }));
    }
    let mut acked = 0;
    for writer in writers {
        acked += writer.await.unwrap();
    }
    acked
}

async fn part_mirrored(base: &str, before: u64) {
    crate::helpers::eventually(
        Duration::from_secs(60),
        "part of the burst mirrored",
        || async {
            let report = crate::redis_support::mirror_report(base).await;
            (report["applied_seq"].as_u64() > Some(before + 50)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn redis_lost_mid_burst_comes_back_empty_and_catches_up_to_equal() {
    let mut redis = RedisServer::start();
    let app = mirrored_app(&redis).await;
    for i in 0..20 {
        app.create_user(&format!("u{i}@example.org"), None).await;
    }
    let before = caught_up(&base(&app), Duration::from_secs(30)).await["applied_seq"].as_u64();
    let writes = tokio::spawn(burst(base(&app), 10_000));
    // Let the mirror stream part of the burst (heartbeats arriving together share one change
    // record), then lose Redis and bring it back empty.
    part_mirrored(&base(&app), before.unwrap_or(0)).await;
    redis.kill();
    let failing = crate::helpers::eventually(
        Duration::from_secs(10),
        "the mirror to notice Redis is gone",
        || async {
            let report = crate::redis_support::mirror_report(&base(&app)).await;
            (report["state"] == "failing").then_some(report)
        },
    )
    .await;
    redis.restart_empty();
    assert_eq!(writes.await.unwrap(), 10_000, "the API kept answering");
    let report = caught_up(&base(&app), Duration::from_secs(60)).await;
    assert!(
        report["resyncs"].as_u64() >= Some(2),
        "an empty Redis is copied again: {report} (while down: {failing})"
    );
    let mut conn = redis.connection().await;
    for w in [0, 55, 99] {
        assert_eq!(
            hash(&mut conn, &format!("proxyfleet:proxy:b{w}")).await["clients"],
            "99"
        );
    }
    let seq: u64 = redis::cmd("GET")
        .arg("proxyfleet:mirror:seq")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(Some(seq), report["last_seq"].as_u64());
    assert_equals_a_fresh_copy(&base(&app), &redis).await;
}

#[tokio::test]
async fn primary_killed_while_mirroring_resumes_where_redis_stopped() {
    let redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let url = redis.url();
    let env = [("PROXYFLEET_REDIS_URL", url.as_str())];
    let server = ServerProcess::start(data.path(), &env);
    let writes = tokio::spawn(burst(server.url(""), 5_000));
    part_mirrored(&server.url(""), 0).await;
    server.kill9();
    let _ = writes.await;
    let server = ServerProcess::start(data.path(), &env);
    let report = caught_up(&server.url(""), Duration::from_secs(60)).await;
    assert_eq!(
        report["resyncs"], 0,
        "Redis held a gapless prefix: resumed, not copied: {report}"
    );
    let mut conn = redis.connection().await;
    let seq: u64 = redis::cmd("GET")
        .arg("proxyfleet:mirror:seq")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(Some(seq), report["last_seq"].as_u64());
    assert_equals_a_fresh_copy(&server.url(""), &redis).await;
}
