//! End to end through a real varnishd: proxies registered with proxyfleet become varnish
//! backends reachable by Host `<name>.<peers domain>`, and stop being reachable when they leave.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use warp::Filter;

use crate::helpers::{client, eventually, free_port, require_program, spawn_app_with, TestApp};

pub const DOMAIN: &str = "peers.test";

pub struct Varnishd {
    child: Child,
    pub http: SocketAddr,
    admin: String,
    secret: std::path::PathBuf,
}

impl Varnishd {
    /// varnishd on free ports, its working files and admin secret in `workdir`.
    pub async fn start(workdir: &Path) -> Varnishd {
        let secret = workdir.join("secret");
        std::fs::write(&secret, "proxyfleet-test-secret\n").unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin = format!("127.0.0.1:{}", free_port());
        Varnishd::start_on(workdir, http, admin).await
    }

    /// SIGKILL, then a fresh varnishd on the same ports (with no VCL of ours loaded).
    pub async fn restart(mut self, workdir: &Path) -> Varnishd {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The killed manager's worker process holds the HTTP port until it notices it is
        // alone; a new varnishd started before then cannot bind it and exits.
        let http = self.http;
        eventually(
            Duration::from_secs(30),
            "the old varnishd to free its port",
            || async move { std::net::TcpListener::bind(http).ok().map(drop) },
        )
        .await;
        Varnishd::start_on(workdir, self.http, self.admin.clone()).await
    }

    /// Points the server's edge sync at this varnishd (admin address, secret, peers domain).
    pub fn configure(&self, config: &mut proxyfleet::Config) {
        config.varnish_admin = Some(self.admin.clone());
        config.varnish_secret_file = Some(self.secret.clone());
        config.peers_domain = DOMAIN.into();
    }

    /// `varnishadm vcl.list`: the VCLs and labels varnishd holds.
    pub fn vcl_list(&self) -> String {
        let output = Command::new("varnishadm")
            .args(["-T", &self.admin, "-S"])
            .arg(&self.secret)
            .arg("vcl.list")
            .output()
            .expect("run varnishadm");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// SIGKILL: the admin port is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn start_on(workdir: &Path, http: SocketAddr, admin: String) -> Varnishd {
        let varnishd = require_program("varnishd", "varnish");
        let secret = workdir.join("secret");
        let child = Command::new(varnishd)
            .args(["-F", "-j", "none", "-b", "none", "-s", "malloc,16m"])
            .arg("-n")
            .arg(workdir.join("work"))
            .args(["-a", &http.to_string(), "-T", &admin])
            .arg("-S")
            .arg(&secret)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start varnishd");
        let mut varnish = Varnishd {
            child,
            http,
            admin: admin.clone(),
            secret,
        };
        eventually(Duration::from_secs(20), "varnishd's admin port", || {
            let admin = admin.clone();
            async move { tokio::net::TcpStream::connect(&admin).await.ok() }
        })
        .await;
        assert!(
            varnish.child.try_wait().unwrap().is_none(),
            "varnishd exited at start"
        );
        varnish
    }
}

impl Drop for Varnishd {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}

/// A tiny HTTP backend that names itself in every answer.
pub fn backend(label: &'static str) -> SocketAddr {
    let (address, server) =
        warp::serve(warp::any().map(move || label)).bind_ephemeral(([127, 0, 0, 1], 0));
    tokio::spawn(server);
    address
}

pub async fn through_varnish(varnish: &Varnishd, host: &str) -> Option<String> {
    let response = client()
        .get(format!("http://{}/", varnish.http))
        .header("host", host)
        .send()
        .await
        .ok()?;
    response.status().is_success().then_some(())?;
    response.text().await.ok()
}

async fn wait_for_edge_version(app: &TestApp, version: u64) {
    eventually(
        Duration::from_secs(20),
        "varnish to load the new VCL",
        || async {
            let status = app.admin_json("/api/v1/admin/edge").await;
            (status["loaded"]["version"] == version && status["loaded"]["varnish_vcl"].is_string())
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varnish_routes_by_host_to_registered_proxies_only() {
    let workdir = tempfile::tempdir().unwrap();
    let varnish = Varnishd::start(workdir.path()).await;
    let app = spawn_app_with(|c| {
        varnish.configure(c);
        c.edge_debounce_ms = 300;
    })
    .await;
    let alpha = backend("backend-alpha");
    let beta = backend("backend-beta");
    app.register_ok("alpha", alpha.port()).await;
    app.register_ok("beta", beta.port()).await;
    wait_for_edge_version(&app, 2).await;
    let status = app.admin_json("/api/v1/admin/edge").await;
    assert_eq!(
        status["loaded"]["loads"], 1,
        "a burst of registrations makes one reload"
    );

    let reached = eventually(Duration::from_secs(10), "alpha through varnish", || {
        through_varnish(&varnish, "alpha.peers.test")
    })
    .await;
    assert_eq!(reached, "backend-alpha");
    assert_eq!(
        through_varnish(&varnish, "beta.peers.test")
            .await
            .as_deref(),
        Some("backend-beta")
    );
    assert_eq!(
        through_varnish(&varnish, "BETA.peers.test:80")
            .await
            .as_deref(),
        Some("backend-beta")
    );

    let response = app.unregister("alpha").await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    wait_for_edge_version(&app, 3).await;
    // alpha's host now falls through to the director, which only has beta.
    for _ in 0..5 {
        assert_eq!(
            through_varnish(&varnish, "alpha.peers.test")
                .await
                .as_deref(),
            Some("backend-beta")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_split_into_groups_routes_every_name_and_reloads_only_what_changed() {
    let workdir = tempfile::tempdir().unwrap();
    let varnish = Varnishd::start(workdir.path()).await;
    let app = spawn_app_with(|c| {
        varnish.configure(c);
        c.edge_debounce_ms = 200;
        c.edge_vcl_group_size = 2;
    })
    .await;
    let labels: [&'static str; 7] = ["p0", "p1", "p2", "p3", "p4", "p5", "p6"];
    for name in labels {
        let port = backend(name).port();
        app.register_ok(name, port).await;
    }
    wait_for_edge_version(&app, labels.len() as u64).await;
    let status = app.admin_json("/api/v1/admin/edge").await;
    let groups = status["groups"].as_u64().unwrap();
    assert!(groups >= 2, "7 proxies, 2 a group: split into 4 ({status})");
    let vcl = app
        .admin_get("/api/v1/admin/edge/varnish.vcl")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        vcl.contains("in 4 groups") && vcl.contains("return (vcl(pfg4_"),
        "{vcl}"
    );

    // Every name reaches its own proxy through the top VCL and its group's label, whatever
    // the case and port of the Host; an unknown host reaches one of them.
    for name in labels {
        let host = format!("{}.peers.test:80", name.to_uppercase());
        let reached = eventually(Duration::from_secs(10), "a name through varnish", || {
            through_varnish(&varnish, &host)
        })
        .await;
        assert_eq!(reached, name);
    }
    let other = through_varnish(&varnish, "elsewhere.example")
        .await
        .unwrap();
    assert!(labels.contains(&other.as_str()), "{other}");

    // One more proxy: only its group is recompiled.
    let loads_before = status["group_loads"].as_u64().unwrap();
    let port = backend("p7").port();
    app.register_ok("p7", port).await;
    wait_for_edge_version(&app, 8).await;
    let status = app.admin_json("/api/v1/admin/edge").await;
    assert_eq!(
        status["group_loads"].as_u64().unwrap(),
        loads_before + 1,
        "{status}"
    );
    assert_eq!(
        through_varnish(&varnish, "p7.peers.test").await.as_deref(),
        Some("p7")
    );

    // A restarted varnishd (no labels of ours) gets every group again with the next change.
    let varnish = varnish.restart(workdir.path()).await;
    assert_eq!(app.unregister("p7").await.status(), reqwest::StatusCode::OK);
    wait_for_edge_version(&app, 9).await;
    for name in labels {
        let host = format!("{name}.peers.test");
        let reached = eventually(Duration::from_secs(10), "a name after the restart", || {
            through_varnish(&varnish, &host)
        })
        .await;
        assert_eq!(reached, name);
    }
    let p7 = through_varnish(&varnish, "p7.peers.test").await.unwrap();
    assert_ne!(p7, "p7", "p7 left: its host falls through to the others");
    let list = varnish.vcl_list();
    assert_eq!(list.matches(" label ").count() as u64, groups, "{list}");

    // Down to two proxies: one VCL again, and no group VCL or label is left behind.
    for name in &labels[2..] {
        assert_eq!(app.unregister(name).await.status(), reqwest::StatusCode::OK);
    }
    wait_for_edge_version(&app, 14).await;
    let status = app.admin_json("/api/v1/admin/edge").await;
    assert_eq!(status["groups"], 0, "{status}");
    let list = varnish.vcl_list();
    // A VCL with requests still on it shows as `discarded` until varnishd lets it go.
    let ours: Vec<&str> = list
        .lines()
        .filter(|l| l.contains(" pf") && !l.starts_with("discarded"))
        .collect();
    assert_eq!(ours.len(), 1, "only the active VCL: {list}");
    assert!(ours[0].starts_with("active"), "{list}");
    for name in ["p0", "p1"] {
        assert_eq!(
            through_varnish(&varnish, &format!("{name}.peers.test"))
                .await
                .as_deref(),
            Some(name)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_varnishd_restarted_with_its_own_vcl_is_loaded_again_without_a_fleet_change() {
    let workdir = tempfile::tempdir().unwrap();
    let varnish = Varnishd::start(workdir.path()).await;
    let app = spawn_app_with(|c| {
        varnish.configure(c);
        c.edge_debounce_ms = 300;
        c.varnish_check_secs = 1;
    })
    .await;
    let alpha = backend("backend-alpha");
    app.register_ok("alpha", alpha.port()).await;
    wait_for_edge_version(&app, 1).await;
    eventually(Duration::from_secs(10), "alpha through varnish", || {
        through_varnish(&varnish, "alpha.peers.test")
    })
    .await;

    // Its supervisor restarts varnishd: it boots its own VCL and knows nothing of ours.
    // Nothing changes in the fleet, so only the periodic check can notice.
    let varnish = varnish.restart(workdir.path()).await;
    let reached = eventually(Duration::from_secs(30), "alpha reloaded", || {
        through_varnish(&varnish, "alpha.peers.test")
    })
    .await;
    assert_eq!(reached, "backend-alpha");
    let status = eventually(Duration::from_secs(10), "the check to see ours", || async {
        let status = app.admin_json("/api/v1/admin/edge").await;
        (status["varnish_check"]["problem"].is_null()
            && status["loaded"]["varnish_vcl"].is_string())
        .then_some(status)
    })
    .await;
    assert!(
        status["varnish_check"]["reloads"].as_u64() >= Some(1),
        "{status}"
    );
    let active = status["loaded"]["varnish_vcl"].as_str().unwrap();
    assert_eq!(status["varnish_check"]["active"], active, "{status}");
    assert!(
        varnish
            .vcl_list()
            .lines()
            .any(|l| l.starts_with("active") && l.contains(active)),
        "{}",
        varnish.vcl_list()
    );
}
