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

async fn register(server: &ServerProcess, name: &str) -> reqwest::Response {
    client()
        .post(server.url("/register"))
        .bearer_auth(REGISTRY_TOKEN)
        .form(&[("name", name), ("ip", "127.0.0.1"), ("port", "7000")])
        .send()
        .await
        .unwrap()
}

async fn health(server: &ServerProcess) -> (StatusCode, Value) {
    let response = client().get(server.url("/healthz")).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn admin_json(server: &ServerProcess, path: &str) -> Value {
    let response = client()
        .get(server.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_disk_refuses_writes_keeps_reads_and_recovers_when_freed() {
    let disk = SmallDisk::mount(48);
    let data = disk.path().join("data");
    let env = [("PROXYFLEET_MIN_FREE_DISK_MB", "16")];
    let server = ServerProcess::start(&data, &env);
    for i in 0..20 {
        assert_eq!(
            register(&server, &format!("before{i}")).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(health(&server).await.0, StatusCode::OK);

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
        let refused = register(&server, &format!("during{i}")).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error_code(refused).await, "storage_full");
    }
    let listed = proxy_names(&admin_json(&server, "/api/v1/admin/proxies").await);
    assert_eq!(listed.len(), 20, "{listed:?}");
    let summary = admin_json(&server, "/api/v1/admin/summary").await;
    assert_eq!(
        summary["storage"]["writes_refused"], true,
        "the dashboard shows it"
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
            register(&server, &format!("after{i}")).await.status(),
            StatusCode::OK
        );
    }
    server.kill9();

    let output = Command::new(env!("CARGO_BIN_EXE_proxyfleet"))
        .arg("check")
        .env("PROXYFLEET_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let server = ServerProcess::start(&data, &env);
    let listed = proxy_names(&admin_json(&server, "/api/v1/admin/proxies").await);
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
        assert_eq!(register(&server, &name).await.status(), StatusCode::OK);
        acked.push(name);
    }
    let filler = disk.fill_leaving(0);
    let mut refused = 0;
    for i in 0..200 {
        let name = format!("full{i}");
        match register(&server, &name).await.status() {
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
    let listed = proxy_names(&admin_json(&server, "/api/v1/admin/proxies").await);
    for name in &acked {
        assert!(
            listed.contains(name),
            "acknowledged {name} lost: {listed:?}"
        );
    }
    assert_eq!(register(&server, "after").await.status(), StatusCode::OK);
    server.kill9();
}
