use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    error_code, eventually, spawn_app, spawn_app_with, ADMIN_TOKEN, REGISTRY_TOKEN,
};

#[tokio::test]
async fn register_heartbeat_and_unregister() {
    let app = spawn_app().await;
    let first = app
        .register(&[
            ("name", "fl1"),
            ("ip", "127.0.0.1"),
            ("port", "8443"),
            ("role", "free"),
            ("country", "nl"),
            ("city", "Amsterdam"),
            ("lat", "52.37"),
            ("lon", "4.89"),
            ("capacity", "150"),
            ("clients", "10"),
        ])
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["name"], "fl1");
    let first_expiry = first["expires_at"].as_u64().unwrap();

    let proxy = app.admin_json("/api/v1/admin/proxies/fl1").await;
    assert_eq!(proxy["ip"], "127.0.0.1");
    assert_eq!(proxy["port"], 8443);
    assert_eq!(proxy["role"], "free");
    assert_eq!(proxy["country"], "NL");
    assert_eq!(proxy["city"], "Amsterdam");
    assert_eq!(proxy["capacity"], 150);
    assert_eq!(proxy["clients"], 10);

    // The heartbeat is registering again: it refreshes expiry and load.
    app.clock.advance(Duration::from_secs(2));
    let beat = app
        .register(&[
            ("name", "fl1"),
            ("ip", "127.0.0.1"),
            ("port", "8443"),
            ("clients", "25"),
        ])
        .await;
    assert_eq!(beat.status(), StatusCode::OK);
    let beat: Value = beat.json().await.unwrap();
    assert!(beat["expires_at"].as_u64().unwrap() > first_expiry);
    let proxy = app.admin_json("/api/v1/admin/proxies/fl1").await;
    assert_eq!(proxy["clients"], 25);
    // The load history samples every 30 s: the heartbeat a second later adds no point.
    let load = app.admin_json("/api/v1/admin/proxies/fl1/load").await;
    assert_eq!(load["samples"].as_array().unwrap().len(), 1);
    assert_eq!(load["samples"][0]["clients"], 10);
    assert_eq!(proxy["registered_at"].as_u64(), Some(first_expiry - 300));
    assert_eq!(app.proxy_names().await, vec!["fl1"]);

    let gone = app.unregister("fl1").await;
    assert_eq!(gone.status(), StatusCode::OK);
    assert!(app.proxy_names().await.is_empty());
    assert_eq!(
        app.admin_get("/api/v1/admin/proxies/fl1").await.status(),
        StatusCode::NOT_FOUND
    );

    let again = app.unregister("fl1").await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(again).await, "not_found");

    let history = app
        .admin_json("/api/v1/admin/registry/events?name=fl1")
        .await;
    let kinds: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["unregistered", "registered"],
        "newest first, heartbeat is no event"
    );
}

#[tokio::test]
async fn json_bodies_are_accepted_like_forms() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/register"))
        .bearer_auth(REGISTRY_TOKEN)
        .json(&json!({"name": "js1", "ip": "127.0.0.2", "port": 443, "lat": 1.5, "lon": -2.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let enrolled: Value = response.json().await.unwrap();
    let secret = enrolled["proxy_secret"]
        .as_str()
        .expect("the enrolment's secret");
    let proxy = app.admin_json("/api/v1/admin/proxies/js1").await;
    assert_eq!(proxy["port"], 443);
    assert_eq!(proxy["lat"], 1.5);
    assert_eq!(proxy["lon"], -2.5);
    let response = app
        .client
        .post(app.url("/unregister"))
        .bearer_auth(secret)
        .json(&json!({"name": "js1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_or_missing_tokens_are_401_and_change_nothing() {
    let app = spawn_app().await;
    let form = [("name", "x1"), ("ip", "127.0.0.1"), ("port", "80")];
    let cases = [
        (
            app.client.post(app.url("/register")).form(&form),
            "register without token",
        ),
        (
            app.client
                .post(app.url("/register"))
                .bearer_auth("wrong")
                .form(&form),
            "register, wrong token",
        ),
        (
            app.client
                .post(app.url("/register"))
                .bearer_auth(ADMIN_TOKEN)
                .form(&form),
            "register, admin token",
        ),
        (
            app.client
                .post(app.url("/unregister"))
                .form(&[("name", "x1")]),
            "unregister without token",
        ),
        (
            app.client.get(app.url("/api/v1/admin/proxies")),
            "admin list without token",
        ),
        (
            app.client
                .get(app.url("/api/v1/admin/proxies"))
                .bearer_auth(REGISTRY_TOKEN),
            "admin list, registry token",
        ),
        (
            app.client
                .get(app.url("/api/v1/admin/edge/varnish.vcl"))
                .bearer_auth("nope"),
            "vcl, wrong token",
        ),
        (
            app.client.get(app.url("/api/v1/admin/queue")),
            "queue without token",
        ),
        (
            app.client
                .post(app.url("/api/v1/admin/queue/tasks/1/retry")),
            "retry without token",
        ),
    ];
    for (request, what) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(error_code(response).await, "unauthorized", "{what}");
    }
    assert!(app.proxy_names().await.is_empty());
}

#[tokio::test]
async fn silent_proxies_expire_and_leave_the_vcl() {
    let app = spawn_app_with(|c| c.heartbeat_ttl_secs = 2).await;
    app.register_ok("quiet", 9001).await;
    app.register_ok("chatty", 9002).await;
    let vcl = app
        .admin_get("/api/v1/admin/edge/varnish.vcl")
        .await
        .text()
        .await
        .unwrap();
    assert!(vcl.contains("backend f_quiet") && vcl.contains("backend f_chatty"));

    // chatty keeps beating; quiet stops.
    let names = eventually(Duration::from_secs(10), "quiet to expire", || async {
        app.register_ok("chatty", 9002).await;
        let names = app.proxy_names().await;
        (names == vec!["chatty"]).then_some(names)
    })
    .await;
    assert_eq!(names, vec!["chatty"]);

    // The sweeper records why it left.
    let events = eventually(Duration::from_secs(10), "the expiry event", || async {
        let history = app
            .admin_json("/api/v1/admin/registry/events?name=quiet")
            .await;
        let latest = history["events"][0]["kind"].as_str().map(String::from);
        (latest.as_deref() == Some("expired")).then_some(history)
    })
    .await;
    assert_eq!(events["events"][0]["name"], "quiet");
    let vcl = app
        .admin_get("/api/v1/admin/edge/varnish.vcl")
        .await
        .text()
        .await
        .unwrap();
    assert!(!vcl.contains("f_quiet") && vcl.contains("backend f_chatty"));
}

#[tokio::test]
async fn edge_sync_runs_only_when_the_routable_set_changes() {
    let app = spawn_app().await;
    app.register_ok("a1", 9001).await;
    app.register_ok("b2", 9002).await;
    let status = eventually(Duration::from_secs(10), "edge sync", || async {
        let status = app.admin_json("/api/v1/admin/edge").await;
        (status["loaded"]["version"] == status["version"] && status["version"] == 2)
            .then_some(status)
    })
    .await;
    assert_eq!(status["loaded"]["proxies"], 2);
    let written = std::fs::read_to_string(app.data_dir.path().join("edge/proxyfleet.vcl")).unwrap();
    let served = app
        .admin_get("/api/v1/admin/edge/varnish.vcl")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(written, served);

    // Heartbeats with new load but the same address do not touch the edge.
    for clients in 1..5 {
        let clients = clients.to_string();
        let response = app
            .register(&[
                ("name", "a1"),
                ("ip", "127.0.0.1"),
                ("port", "9001"),
                ("clients", &clients),
            ])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(app.admin_json("/api/v1/admin/edge").await["version"], 2);

    // A new address does.
    let response = app
        .register(&[("name", "a1"), ("ip", "127.0.0.9"), ("port", "9001")])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.admin_json("/api/v1/admin/edge").await["version"], 3);
    let history = app
        .admin_json("/api/v1/admin/registry/events?name=a1&limit=1")
        .await;
    assert_eq!(history["events"][0]["kind"], "moved");
    assert_eq!(history["events"][0]["ip"], "127.0.0.9");
}
