//! Faults around the server: the data disk nearly full, Redis stalled, varnishd's admin port
//! gone, Stripe failing. Each time the API keeps answering, the work waits in the durable
//! queue (or the client is told to retry), nothing acknowledged is lost, and the admin sees it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// A small tmpfs mounted for the test (needs root, as CI runs), unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "this test mounts a {megabytes} MB tmpfs to fill it: it must run as root (CI does)"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk until `leave` bytes are free.
    fn fill_leaving(&self, leave: u64) -> PathBuf {
        let free = fs2::available_space(self.path()).unwrap();
        let filler = self.path().join("filler");
        let file = std::fs::File::create(&filler).unwrap();
        fs2::FileExt::allocate(&file, free.saturating_sub(leave)).unwrap();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

async fn health(server: &ServerProcess) -> (StatusCode, Value) {
    let response = client().get(server.url("/healthz")).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_disk_refuses_writes_keeps_reads_and_recovers_when_freed() {
    let disk = SmallDisk::mount(48);
    let data = disk.path().join("data");
    let env = [("PROXYFLEET_MIN_FREE_DISK_MB", "16")];
    let server = ServerProcess::start(&data, &env);
    for i in 0..20 {
        assert_eq!(
            server.enrol(&format!("before{i}"), 7000).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(health(&server).await.0, StatusCode::OK);
    let password = "a long enough password for ops";
    let made = client()
        .post(server.url("/admin/api/accounts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "username": "ops", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);

    let filler = disk.fill_leaving(8 * 1_048_576);
    let (_, body) = eventually(
        Duration::from_secs(10),
        "the guard to see the full disk",
        || async {
            let (status, body) = health(&server).await;
            (status == StatusCode::SERVICE_UNAVAILABLE).then_some((status, body))
        },
    )
    .await;
    assert_eq!(body["status"], "disk_full", "{body}");
    assert_eq!(body["storage"]["writes_refused"], true);

    // Writes: a clear 503, nothing stored. Reads: as before.
    for i in 0..5 {
        let refused = server.enrol(&format!("during{i}"), 7000).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error_code(refused).await, "storage_full");
    }
    let listed = proxy_names(&server.admin_json("/api/v1/admin/proxies").await);
    assert_eq!(listed.len(), 20, "{listed:?}");
    // The operator can still sign in to the panel to see it and act (a session is the one
    // small write allowed), and the panel's summary says why writes are refused.
    let signed_in = client()
        .post(server.url("/admin/api/login"))
        .json(&serde_json::json!({ "username": "ops", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    let summary = server.admin_json("/api/v1/admin/summary").await;
    assert_eq!(
        summary["storage"]["writes_refused"], true,
        "the dashboard shows it"
    );
    let needs = summary["warnings"].as_array().unwrap();
    assert!(
        needs
            .iter()
            .any(|w| w.as_str().unwrap().starts_with("Storage full")),
        "and puts it on top: {summary}"
    );
    let metrics = client()
        .get(server.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("proxyfleet_storage{measure=\"writes_refused\"} 1"),
        "{metrics}"
    );

    // The operator frees space: writes resume without a restart.
    std::fs::remove_file(filler).unwrap();
    eventually(Duration::from_secs(10), "writes to resume", || async {
        (health(&server).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    for i in 0..20 {
        assert_eq!(
            server.enrol(&format!("after{i}"), 7000).await.status(),
            StatusCode::OK
        );
    }
    server.kill9();

    let (ok, text) = crate::check::run_check(&data);
    assert!(ok, "{text}");
    let server = ServerProcess::start(&data, &env);
    let listed = proxy_names(&server.admin_json("/api/v1/admin/proxies").await);
    assert_eq!(
        listed.len(),
        40,
        "every acknowledged registration, none refused: {listed:?}"
    );
    assert!(!listed.iter().any(|name| name.starts_with("during")));
    server.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_met_a_full_disk_exits_for_a_restart_and_keeps_what_it_acknowledged() {
    let disk = SmallDisk::mount(48);
    let data = disk.path().join("data");
    // The guard off: the engine itself meets the full disk.
    let env = [("PROXYFLEET_MIN_FREE_DISK_MB", "0")];
    let mut server = ServerProcess::start(&data, &env);
    let mut acked = Vec::new();
    for i in 0..10 {
        let name = format!("before{i}");
        assert_eq!(server.enrol(&name, 7000).await.status(), StatusCode::OK);
        acked.push(name);
    }
    let filler = disk.fill_leaving(0);
    let mut refused = 0;
    for i in 0..200 {
        let name = format!("full{i}");
        match server.enrol(&name, 7000).await.status() {
            StatusCode::OK => acked.push(name),
            _ => refused += 1,
        }
        if refused >= 3 {
            break;
        }
    }
    assert!(refused >= 3, "a full disk refuses writes");
    let status = eventually(Duration::from_secs(20), "the server to exit", || {
        let exited = server.child.try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert_eq!(
        status.code(),
        Some(proxyfleet::app::EXIT_STORAGE_FAILED),
        "exits to be restarted"
    );

    std::fs::remove_file(filler).unwrap();
    let server = ServerProcess::start(&data, &env);
    let listed = proxy_names(&server.admin_json("/api/v1/admin/proxies").await);
    for name in &acked {
        assert!(
            listed.contains(name),
            "acknowledged {name} lost: {listed:?}"
        );
    }
    assert_eq!(server.enrol("after", 7000).await.status(), StatusCode::OK);
    server.kill9();
}

/// How the fake Stripe answers: an API error (500), never (a hang), or as Stripe does.
const STRIPE_FAILS: u8 = 0;
const STRIPE_HANGS: u8 = 1;
const STRIPE_WORKS: u8 = 2;

/// A fake of Stripe's customer and payment-intent endpoints that fails as told, and records
/// each request's path and Idempotency-Key.
async fn unreliable_stripe(
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
) {
    use warp::Filter;
    let seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> = Default::default();
    let log = seen.clone();
    let route = warp::post()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(warp::body::bytes())
        .then(move |path: warp::path::FullPath, key: Option<String>, _body: bytes::Bytes| {
            let (mode, log) = (mode.clone(), log.clone());
            async move {
                let path = path.as_str().to_string();
                log.lock().unwrap().push((path.clone(), key.unwrap_or_default()));
                let (status, answer) = match mode.load(std::sync::atomic::Ordering::SeqCst) {
                    STRIPE_FAILS => (
                        500,
                        serde_json::json!({ "error": { "type": "api_error", "message": "boom" } }),
                    ),
                    STRIPE_HANGS => {
                        tokio::time::sleep(Duration::from_secs(600)).await;
                        (500, Value::Null)
                    }
                    _ if path == "/v1/customers" => {
                        (200, serde_json::json!({ "id": "cus_fault1", "object": "customer" }))
                    }
                    _ => (
                        200,
                        serde_json::json!({ "id": "pi_fault1", "object": "payment_intent",
                                            "client_secret": "pi_fault1_secret_x" }),
                    ),
                };
                warp::reply::with_status(
                    warp::reply::json(&answer),
                    warp::http::StatusCode::from_u16(status).unwrap(),
                )
            }
        });
    let (address, server) = warp::serve(route).bind_ephemeral(([127, 0, 0, 1], 0));
    tokio::spawn(server);
    (format!("http://{address}"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_failing_or_hanging_is_a_503_to_retry_and_the_retry_reuses_its_idempotency_key() {
    let mode = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(STRIPE_FAILS));
    let (base, seen) = unreliable_stripe(mode.clone()).await;
    let app = spawn_app_with(|c| {
        c.stripe_api_base = base;
        c.stripe_secret_key = Some(proxyfleet::config::Secret::new("sk_test_faults"));
        c.stripe_timeout_secs = 1;
    })
    .await;
    let (_, token, _) = app.create_user("buyer@example.org", None).await;
    let order = serde_json::json!({ "plan": "pro-1m", "idempotency_key": "order-1" });

    for (fault, how) in [(STRIPE_FAILS, "answering 500"), (STRIPE_HANGS, "hanging")] {
        mode.store(fault, std::sync::atomic::Ordering::SeqCst);
        let response = app.user_post(&token, "/api/v1/pro/purchase", &order).await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "Stripe {how}"
        );
        assert_eq!(error_code(response).await, "unavailable", "Stripe {how}");
    }
    // Meanwhile the rest of the API answers.
    assert_eq!(
        app.admin_get("/api/v1/admin/summary").await.status(),
        StatusCode::OK
    );

    mode.store(STRIPE_WORKS, std::sync::atomic::Ordering::SeqCst);
    let response = app.user_post(&token, "/api/v1/pro/purchase", &order).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["client_secret"], "pi_fault1_secret_x", "{body}");

    // Every attempt at the customer carried one key, so Stripe made (at most) one customer.
    let seen = seen.lock().unwrap().clone();
    let customer_keys: std::collections::BTreeSet<&str> = seen
        .iter()
        .filter(|(path, _)| path == "/v1/customers")
        .map(|(_, key)| key.as_str())
        .collect();
    assert_eq!(customer_keys.len(), 1, "{seen:?}");
    assert!(seen.len() >= 3, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_holds_no_write_back_and_the_mirror_catches_up_to_equal() {
    use crate::redis_support::{assert_equals_a_fresh_copy, caught_up, mirror_report, RedisServer};
    let redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(move |c| c.redis_url = Some(url)).await;
    app.proxy("stall1", 9101, &[]).await;
    caught_up(&app.url(""), Duration::from_secs(30)).await;

    redis.stall(true);
    // Writes go on at full speed while Redis answers nothing.
    for i in 0..30 {
        app.create_user(&format!("stalled{i}@example.org"), None)
            .await;
        app.proxy(
            &format!("stall{}", i % 5),
            9101,
            &[("clients", &i.to_string())],
        )
        .await;
    }
    let report = mirror_report(&app.url("")).await;
    assert!(
        report["changes_behind"].as_u64() > Some(0),
        "the admin sees the mirror fall behind: {report}"
    );
    let failing = eventually(
        Duration::from_secs(30),
        "the stall to be reported",
        || async {
            let report = mirror_report(&app.url("")).await;
            report["last_error"].is_string().then_some(report)
        },
    )
    .await;
    redis.stall(false);

    let report = caught_up(&app.url(""), Duration::from_secs(60)).await;
    assert_eq!(
        report["changes_behind"], 0,
        "{report} (while stalled: {failing})"
    );
    assert_equals_a_fresh_copy(&app.url(""), &redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varnish_admin_gone_is_retried_from_the_queue_and_loads_when_it_is_back() {
    use crate::varnish::{backend, through_varnish, Varnishd};
    let workdir = tempfile::tempdir().unwrap();
    let mut varnish = Varnishd::start(workdir.path()).await;
    let app = spawn_app_with(|c| {
        varnish.configure(c);
        c.edge_debounce_ms = 100;
        c.queue_backoff_base_ms = 200;
        c.queue_max_attempts = 50;
    })
    .await;
    varnish.kill();

    let alpha = backend("backend-alpha");
    app.register_ok("alpha", alpha.port()).await; // the API answers without varnish
    let pending = eventually(
        Duration::from_secs(20),
        "the failed sync to show",
        || async {
            let edge = app.admin_json("/api/v1/admin/edge").await;
            let failed = edge["pending"]["last_error"].is_string() && edge["loaded"].is_null();
            failed.then_some(edge)
        },
    )
    .await;
    assert!(
        pending["pending"]["attempts"].as_u64() >= Some(1),
        "{pending}"
    );

    let varnish = varnish.restart(workdir.path()).await;
    let reached = eventually(Duration::from_secs(30), "alpha through varnish", || {
        through_varnish(&varnish, "alpha.peers.test")
    })
    .await;
    assert_eq!(reached, "backend-alpha");
    // Varnish may serve the new config a moment before the task that loaded it is marked
    // done: wait for the record, not for the traffic.
    let edge = eventually(
        Duration::from_secs(30),
        "the sync to be recorded",
        || async {
            let edge = app.admin_json("/api/v1/admin/edge").await;
            edge["pending"].is_null().then_some(edge)
        },
    )
    .await;
    assert_eq!(edge["loaded"]["version"], edge["version"], "{edge}");
}
