//! The mirror heals itself against a real redis-server: full copies of every size around the
//! copy's chunk of 2,000 users, and Redis emptied, flushed, rewritten, restarted or evicting
//! while the primary is idle or streaming.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::helpers::{spawn_app_with, TestApp};
use crate::redis_support::{caught_up, mirror_report, resync, RedisServer};

async fn mirrored_app(redis: &RedisServer) -> TestApp {
    let url = redis.url();
    spawn_app_with(move |c| {
        c.redis_url = Some(url);
        c.redis_check_secs = 1;
    })
    .await
}

/// Users `from..to`, created through the admin API, 16 at a time.
async fn add_users(app: &TestApp, from: usize, to: usize) {
    futures::stream::iter(from..to)
        .for_each_concurrent(16, |i| async move {
            app.create_user(&format!("u{i}@example.org"), None).await;
        })
        .await;
}

/// How many `<p>user:<id>` records Redis holds.
async fn users_in_redis(conn: &mut redis::aio::MultiplexedConnection) -> usize {
    let mut cursor: u64 = 0;
    let mut count = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("proxyfleet:user:*")
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN");
        count += found
            .iter()
            .filter(|key| {
                key["proxyfleet:user:".len()..]
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .count();
        if next == 0 {
            return count;
        }
        cursor = next;
    }
}

async fn redis_seq(conn: &mut redis::aio::MultiplexedConnection) -> Option<u64> {
    redis::cmd("GET")
        .arg("proxyfleet:mirror:seq")
        .query_async(conn)
        .await
        .expect("GET")
}

#[tokio::test]
async fn full_copies_hold_every_user_at_every_size_around_a_chunk() {
    let redis = RedisServer::start();
    let app = mirrored_app(&redis).await;
    let base = app.url("");
    let mut conn = redis.connection().await;
    let mut have = 0;
    for size in [0, 1, 2, 1999, 2000, 2001, 4001] {
        add_users(&app, have, size).await;
        have = size;
        resync(&base, Duration::from_secs(120)).await;
        let report = mirror_report(&base).await;
        assert_eq!(report["state"], "streaming", "{size} users: {report}");
        assert_eq!(users_in_redis(&mut conn).await, size, "{size} users copied");
        assert_eq!(
            redis_seq(&mut conn).await,
            report["last_seq"].as_u64(),
            "{size} users: mirror:seq set"
        );
    }
}

/// Waits for a full copy after `before` copies; returns the report.
async fn copied_again(base: &str, before: u64, what: &str) -> Value {
    let report = crate::helpers::eventually(Duration::from_secs(30), what, || async {
        let report = mirror_report(base).await;
        (report["resyncs"].as_u64() > Some(before)).then_some(report)
    })
    .await;
    caught_up(base, Duration::from_secs(30)).await;
    report
}

#[tokio::test]
async fn an_idle_primary_copies_again_after_any_loss_of_its_keys() {
    let mut redis = RedisServer::start();
    let app = mirrored_app(&redis).await;
    let base = app.url("");
    add_users(&app, 0, 30).await;
    caught_up(&base, Duration::from_secs(30)).await;
    type Disrupt = fn(&mut redis::Pipeline);
    let disruptions: [(&str, Disrupt, &str); 4] = [
        (
            "FLUSHALL",
            |p| {
                p.cmd("FLUSHALL");
            },
            "lost the mirror",
        ),
        (
            "FLUSHDB",
            |p| {
                p.cmd("FLUSHDB");
            },
            "lost the mirror",
        ),
        (
            "DEL mirror:seq",
            |p| {
                p.del("proxyfleet:mirror:seq");
            },
            "lost the mirror",
        ),
        (
            "SET mirror:seq 3",
            |p| {
                p.set("proxyfleet:mirror:seq", 3);
            },
            "not what the mirror wrote",
        ),
    ];
    for (what, disrupt, reason) in disruptions {
        let before = caught_up(&base, Duration::from_secs(30)).await["resyncs"]
            .as_u64()
            .unwrap();
        let mut conn = redis.connection().await;
        let mut pipe = redis::pipe();
        disrupt(&mut pipe);
        pipe.query_async::<()>(&mut conn).await.unwrap();
        // Nothing changes on the primary: the periodic check alone must notice.
        let report = copied_again(&base, before, what).await;
        let why = report["last_resync_reason"].as_str().unwrap_or_default();
        assert!(why.contains(reason), "{what}: {report}");
        assert_eq!(users_in_redis(&mut conn).await, 30, "{what}: all back");
    }

    // A restart that empties Redis, with nothing to stream either.
    let before = mirror_report(&base).await["resyncs"].as_u64().unwrap();
    redis.restart_empty();
    copied_again(&base, before, "a copy after the restart").await;
    let mut conn = redis.connection().await;
    assert_eq!(users_in_redis(&mut conn).await, 30, "restart: all back");
}

#[tokio::test]
async fn a_flush_on_the_live_connection_is_not_taken_for_a_caught_up_redis() {
    let redis = RedisServer::start();
    // A long check interval: here the next batch itself must notice.
    let url = redis.url();
    let app = spawn_app_with(move |c| {
        c.redis_url = Some(url);
        c.redis_check_secs = 3600;
    })
    .await;
    let base = app.url("");
    add_users(&app, 0, 25).await;
    let before = caught_up(&base, Duration::from_secs(30)).await["resyncs"]
        .as_u64()
        .unwrap();
    let mut conn = redis.connection().await;
    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    // The next change is streamed into the emptied Redis only after a full copy.
    app.create_user("after-flush@example.org", None).await;
    let report = copied_again(&base, before, "a copy before the next batch").await;
    assert!(
        report["last_resync_reason"]
            .as_str()
            .is_some_and(|why| why.contains("lost the mirror") || why.contains("during a batch")),
        "{report}"
    );
    assert_eq!(
        users_in_redis(&mut conn).await,
        26,
        "every user, not only the new one"
    );
    crate::redis_support::assert_equals_a_fresh_copy(&base, &redis).await;
}

#[tokio::test]
async fn keys_evicted_under_maxmemory_are_copied_again() {
    let redis = RedisServer::start();
    let app = mirrored_app(&redis).await;
    let base = app.url("");
    add_users(&app, 0, 40).await;
    let before = caught_up(&base, Duration::from_secs(30)).await["resyncs"]
        .as_u64()
        .unwrap();
    let mut conn = redis.connection().await;
    // An operator's Redis with an evicting policy and too little memory: a write by someone
    // else evicts some of the mirror's records (not necessarily mirror:seq).
    redis::pipe()
        .cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-random")
        .ignore()
        .cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .ignore()
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let _ = redis::cmd("SET")
        .arg("someone-else")
        .arg("x")
        .query_async::<()>(&mut conn)
        .await;
    let evicted = 40usize.saturating_sub(users_in_redis(&mut conn).await);
    redis::pipe()
        .cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .ignore()
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert!(evicted > 0, "the test evicted some users");
    let report = copied_again(&base, before, "a copy after the eviction").await;
    assert!(
        report["last_resync_reason"]
            .as_str()
            .is_some_and(|why| why.contains("evicted") || why.contains("lost the mirror")),
        "{report}"
    );
    assert_eq!(users_in_redis(&mut conn).await, 40, "every user back");
}

async fn edge_health(edge: &crate::edge::Edge) -> (reqwest::StatusCode, Value) {
    let response = crate::helpers::client()
        .get(format!("{}/healthz", edge.base))
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

async fn edge_config(edge: &crate::edge::Edge, token: &str) -> reqwest::StatusCode {
    crate::helpers::client()
        .get(format!("{}/api/v1/config", edge.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
}

#[tokio::test]
async fn an_edge_on_an_empty_redis_says_so_rather_than_refusing_tokens() {
    let redis = RedisServer::start();
    let edge = crate::edge::start_edge(&redis).await;
    let (status, body) = edge_health(&edge).await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert!(
        body["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
    // Any token: Redis holds no mirror, so the edge cannot know it is wrong.
    assert_eq!(
        edge_config(&edge, "some-valid-looking-token").await,
        reqwest::StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn an_edge_whose_redis_restarted_reconnects_and_is_unavailable_meanwhile() {
    let mut redis = RedisServer::start();
    let app = mirrored_app(&redis).await;
    let base = app.url("");
    let (_, token, _) = app.create_user("edge-user@example.org", None).await;
    caught_up(&base, Duration::from_secs(30)).await;
    let edge = crate::edge::start_edge(&redis).await;
    crate::helpers::eventually(Duration::from_secs(10), "the edge ready", || async {
        (edge_health(&edge).await.0 == reqwest::StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(edge_config(&edge, &token).await, reqwest::StatusCode::OK);
    assert_eq!(
        edge_config(&edge, "not-a-token").await,
        reqwest::StatusCode::UNAUTHORIZED
    );

    redis.kill();
    let down = crate::helpers::eventually(
        Duration::from_secs(10),
        "the edge to report Redis gone",
        || async {
            let (status, body) = edge_health(&edge).await;
            (status == reqwest::StatusCode::SERVICE_UNAVAILABLE).then_some(body)
        },
    )
    .await;
    assert!(
        down["reason"].as_str().is_some_and(|r| r.contains("redis")),
        "{down}"
    );
    assert_eq!(
        edge_config(&edge, &token).await,
        reqwest::StatusCode::SERVICE_UNAVAILABLE
    );

    // Back empty: the primary copies everything again and the same edge, without a restart,
    // serves the user once more.
    redis.restart_empty();
    crate::helpers::eventually(
        Duration::from_secs(30),
        "the edge back, serving the user",
        || async {
            let healthy = edge_health(&edge).await.0 == reqwest::StatusCode::OK;
            (healthy && edge_config(&edge, &token).await == reqwest::StatusCode::OK).then_some(())
        },
    )
    .await;
}
