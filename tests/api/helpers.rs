//! Test harness: the real application on an ephemeral loopback port with a temporary data
//! dir, spoken to over HTTP. `spawn_app` runs it in-process; `ServerProcess` runs the real
//! binary, for restarts and kill -9.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proxyfleet::app::ShutdownHandle;
use proxyfleet::{Application, Config};
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// The suite's HTTP client: reqwest with the API description's check on every answer
/// (`conformance::Conformance`).
pub type Http = reqwest_middleware::ClientWithMiddleware;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const REGISTRY_TOKEN: &str = "test-registry-token";

pub struct TestApp {
    pub address: SocketAddr,
    pub client: Http,
    pub data_dir: tempfile::TempDir,
    pub shutdown: ShutdownHandle,
    /// The secret each proxy was given when it enrolled, as a proxy agent keeps it.
    pub keys: ProxyKeys,
    /// The server's task: it ends once the server has stopped and closed its store.
    server: Option<tokio::task::JoinHandle<proxyfleet::error::Result<()>>>,
    /// The clock the server's API reads: `advance` it instead of sleeping.
    pub clock: proxyfleet::clock::Clock,
    /// Every endpoint the server routes: (method, path template).
    pub endpoints: Vec<(String, String)>,
    /// The token of the setup link the start printed (no admin account existed).
    pub setup_token: Option<String>,
}

/// What a proxy agent remembers: the secret its enrolment returned. A name it has a secret
/// for heartbeats and unregisters with that secret; a new name enrols with the registry token.
#[derive(Clone, Default)]
pub struct ProxyKeys(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>);

impl ProxyKeys {
    /// The bearer token a proxy agent would send for `name`.
    pub fn token_for(&self, name: &str) -> String {
        self.secret(name)
            .unwrap_or_else(|| REGISTRY_TOKEN.to_string())
    }

    pub fn secret(&self, name: &str) -> Option<String> {
        self.0.lock().unwrap().get(name).cloned()
    }

    /// Keeps the secret an answer issued (its `X-Proxy-Secret` header), if any.
    pub fn remember(&self, name: &str, response: &Response) {
        if let Some(secret) = response.headers().get("x-proxy-secret") {
            let secret = secret.to_str().expect("ascii secret").to_string();
            self.0.lock().unwrap().insert(name.to_string(), secret);
        }
    }

    /// `POST /register` of proxy `name` (`form` holds its fields) to `base`, as its agent
    /// would. An error sending (the server killed) is the caller's to judge.
    pub async fn try_register(
        &self,
        client: &Http,
        base: &str,
        name: &str,
        form: &(impl serde::Serialize + ?Sized),
    ) -> reqwest_middleware::Result<Response> {
        let response = client
            .post(format!("{base}/register"))
            .bearer_auth(self.token_for(name))
            .form(form)
            .send()
            .await?;
        self.remember(name, &response);
        Ok(response)
    }

    pub async fn register(
        &self,
        client: &Http,
        base: &str,
        name: &str,
        form: &(impl serde::Serialize + ?Sized),
    ) -> Response {
        self.try_register(client, base, name, form)
            .await
            .expect("request")
    }

    /// `POST /unregister` of `name` to `base` with its secret.
    pub async fn unregister(&self, client: &Http, base: &str, name: &str) -> Response {
        client
            .post(format!("{base}/unregister"))
            .bearer_auth(self.token_for(name))
            .form(&[("name", name)])
            .send()
            .await
            .expect("request")
    }
}

/// A config for tests: port 0, its own data dir, known tokens, private IPs allowed.
pub fn test_config(data_dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        // tests/api/https.rs turns HTTPS on.
        https_listen: None,
        data_dir: data_dir.to_path_buf(),
        admin_token: Some(proxyfleet::config::Secret::new(ADMIN_TOKEN)),
        registry_token: Some(proxyfleet::config::Secret::new(REGISTRY_TOKEN)),
        allow_private_ips: true,
        edge_debounce_ms: 50,
        queue_backoff_base_ms: 50,
        // Rebalances only when a test asks, with a fixed seed.
        rebalance_interval_secs: 0,
        rebalance_seed: Some(42),
        // A build machine's disk may hold less than the default 256 MiB headroom; tests/api/
        // faults.rs sets its own on a small tmpfs.
        min_free_disk_mb: 16,
        // Every test talks from 127.0.0.1; tests/api/rate_limits.rs turns them on.
        rate_limits: proxyfleet::http::rate_limit::RateLimitSettings {
            enabled: false,
            ..Default::default()
        },
        ..Config::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(data_dir.path());
    adjust(&mut config);
    let clock = proxyfleet::clock::Clock::system();
    let app = Application::build_with_clock(config, clock.clone())
        .await
        .expect("app builds");
    let address = app.address();
    let shutdown = app.shutdown_handle();
    let endpoints = app
        .endpoints()
        .iter()
        .map(|(method, template)| (method.to_string(), template.to_string()))
        .collect();
    let setup_token = app.setup_token().map(str::to_string);
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: client(),
        data_dir,
        shutdown,
        keys: ProxyKeys::default(),
        server: Some(server),
        clock,
        endpoints,
        setup_token,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl TestApp {
    /// Stops the server and waits until it has: requests finished, jobs stopped, the store
    /// closed (its data directory may be opened again at once). Returns the data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.shutdown.trigger();
        let server = self.server.take().expect("the server runs until stopped");
        server
            .await
            .expect("the server task ends")
            .expect("the server stops cleanly");
        let placeholder = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.data_dir, placeholder)
    }

    /// Waits until the task queue has nothing ready or running: every effect of what the
    /// test did has happened, and nothing more is coming.
    pub async fn queue_idle(&self) {
        eventually(
            Duration::from_secs(30),
            "the task queue to be idle",
            || async {
                let counts = self.admin_json("/api/v1/admin/queue").await;
                (counts["ready"] == 0 && counts["leased"] == 0).then_some(())
            },
        )
        .await;
    }

    /// The `/metrics` page, as the admin reads it.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The sum of a metric's samples whose line starts with `prefix` (`/metrics`).
    pub async fn metric(&self, prefix: &str) -> u64 {
        let text = self.metrics_text().await;
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Runs of the Pro expiry sweeper so far.
    pub async fn pro_sweeps(&self) -> u64 {
        self.metric("proxyfleet_pro_sweeps_total{").await
    }

    /// Waits until `count` config long-polls wait on the server.
    pub async fn long_polls_waiting(&self, count: u64) {
        eventually(
            Duration::from_secs(10),
            "the long-polls to wait",
            || async {
                let waiting = self
                    .metric("proxyfleet_http_open{kind=\"long_polls\"}")
                    .await;
                (waiting >= count).then_some(())
            },
        )
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// Registers (enrols or heartbeats) as the proxy's agent would: its own secret once it
    /// has one, else the registry token.
    pub async fn register(&self, form: &[(&str, &str)]) -> Response {
        let name = form
            .iter()
            .find(|(k, _)| *k == "name")
            .map_or("", |(_, v)| *v);
        self.keys
            .register(
                &self.client,
                &format!("http://{}", self.address),
                name,
                form,
            )
            .await
    }

    pub async fn register_ok(&self, name: &str, port: u16) -> Value {
        let port = port.to_string();
        let response = self
            .register(&[("name", name), ("ip", "127.0.0.1"), ("port", &port)])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }

    pub async fn unregister(&self, name: &str) -> Response {
        self.keys
            .unregister(&self.client, &format!("http://{}", self.address), name)
            .await
    }

    /// A request with the given bearer token, or none.
    pub async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    pub async fn admin_get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request")
    }

    /// GET without a token, expecting 200 and JSON.
    pub async fn public_json(&self, path: &str) -> Value {
        let response = self.send_as(reqwest::Method::GET, path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("json")
    }

    pub async fn admin_json(&self, path: &str) -> Value {
        let response = self.admin_get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("json")
    }

    pub async fn proxy_names(&self) -> Vec<String> {
        proxy_names(&self.admin_json("/api/v1/admin/proxies").await)
    }
}

pub fn proxy_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["proxies"]
        .as_array()
        .expect("proxies array")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_string())
        .collect();
    names.sort();
    names
}

/// An HTTP client whose requests cannot hang a test forever.
pub fn client() -> Http {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    reqwest_middleware::ClientBuilder::new(http)
        .with(crate::conformance::Conformance)
        .build()
}

/// Asserts the error shape of docs/API.md and returns its code.
pub async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.expect("error body is JSON");
    let message = body["error"]["message"].as_str().expect("error.message");
    assert!(!message.is_empty());
    body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_string()
}

/// Polls `check` until it returns Some, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the `proxyfleet` command with `args` and `env`: (whether it succeeded, its stdout
/// then stderr).
pub fn proxyfleet(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_proxyfleet"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run proxyfleet");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// The real `proxyfleet` binary, serving on an ephemeral port.
pub struct ServerProcess {
    pub child: Child,
    pub address: SocketAddr,
}

impl ServerProcess {
    pub fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> ServerProcess {
        ServerProcess::start_logging(data_dir, extra_env, Stdio::inherit())
    }

    /// As `start`, with the server's log (stderr) sent to `logs`.
    pub fn start_logging(
        data_dir: &Path,
        extra_env: &[(&str, &str)],
        logs: Stdio,
    ) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_proxyfleet"));
        command.arg("serve");
        ServerProcess::spawn(command, data_dir, extra_env, logs)
    }

    /// As `start`, under `ulimit -n open_files` (soft and hard): the server cannot raise it.
    pub fn start_with_open_files(
        data_dir: &Path,
        extra_env: &[(&str, &str)],
        open_files: u32,
    ) -> ServerProcess {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(format!("ulimit -n {open_files} && exec \"$0\" serve"))
            .arg(env!("CARGO_BIN_EXE_proxyfleet"));
        ServerProcess::spawn(command, data_dir, extra_env, Stdio::inherit())
    }

    fn spawn(
        mut command: Command,
        data_dir: &Path,
        extra_env: &[(&str, &str)],
        logs: Stdio,
    ) -> ServerProcess {
        command
            .env("PROXYFLEET_LISTEN", "127.0.0.1:0")
            .env("PROXYFLEET_DATA_DIR", data_dir)
            .env("PROXYFLEET_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("PROXYFLEET_REGISTRY_TOKEN", REGISTRY_TOKEN)
            .env("PROXYFLEET_ALLOW_PRIVATE_IPS", "true")
            .env("PROXYFLEET_RATE_LIMITS__ENABLED", "false")
            .env("PROXYFLEET_HTTPS_LISTEN", "127.0.0.1:0")
            .env("PROXYFLEET_MIN_FREE_DISK_MB", "16")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(logs);
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start proxyfleet binary");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let address = loop {
            let line = lines
                .next()
                .expect("proxyfleet exited before listening")
                .expect("read stdout");
            if let Some(url) = line.strip_prefix("proxyfleet listening on http://") {
                break url.parse().expect("address");
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServerProcess { child, address }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// GET with the admin token; asserts 200 and returns the JSON.
    pub async fn admin_json(&self, path: &str) -> Value {
        self.admin_call(reqwest::Method::GET, path).await
    }

    /// POST (no body) with the admin token; asserts 200 and returns the JSON.
    pub async fn admin_post_json(&self, path: &str) -> Value {
        self.admin_call(reqwest::Method::POST, path).await
    }

    /// POST `body` as JSON with the admin token; asserts 200 and returns the JSON.
    pub async fn admin_post_body(&self, path: &str, body: &Value) -> Value {
        let response = client()
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.expect("json")
    }

    async fn admin_call(&self, method: reqwest::Method, path: &str) -> Value {
        let response = client()
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.expect("json")
    }

    /// Enrols (or heartbeats) proxy `name` at 127.0.0.1:`port` with the registry token.
    pub async fn enrol(&self, name: &str, port: u16) -> reqwest::Response {
        let port = port.to_string();
        client()
            .post(self.url("/register"))
            .bearer_auth(REGISTRY_TOKEN)
            .form(&[("name", name), ("ip", "127.0.0.1"), ("port", port.as_str())])
            .send()
            .await
            .expect("request")
    }

    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        self.child.wait().expect("wait")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path of a system program the test needs, or a clear failure naming the package.
pub fn require_program(name: &str, package: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/sbin",
        "/bin",
    ] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!("`{name}` is not installed: this test needs the Debian package `{package}` (the README's test command installs it)");
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl TestApp {
    pub async fn admin_post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Gives a user `days` of Pro as the admin, expecting 200.
    pub async fn gift_pro(&self, id: u64, days: u64) {
        let path = format!("/api/v1/admin/users/{id}/pro");
        let response = self
            .admin_post(&path, &serde_json::json!({ "days": days }))
            .await;
        assert_eq!(response.status(), StatusCode::OK, "POST {path}");
    }

    /// GET with a user's (or device's) token, expecting 200 and JSON.
    pub async fn user_json(&self, token: &str, path: &str) -> Value {
        let response = self.send_as(reqwest::Method::GET, path, Some(token)).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("json")
    }

    /// POSTs JSON with a user's (or device's) token.
    pub async fn user_post(&self, token: &str, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Registers (or heartbeats) a lab proxy with extra fields.
    pub async fn proxy(&self, name: &str, port: u16, extra: &[(&str, &str)]) {
        let port = port.to_string();
        let mut form = vec![("name", name), ("ip", "127.0.0.1"), ("port", port.as_str())];
        form.extend_from_slice(extra);
        let response = self.register(&form).await;
        assert_eq!(response.status(), StatusCode::OK, "register {name}");
    }

    /// Creates a user; returns (id, token, proxy names).
    pub async fn create_user(
        &self,
        email: &str,
        invited_by: Option<u64>,
    ) -> (u64, String, Vec<String>) {
        let response = self
            .admin_post(
                "/api/v1/admin/users",
                &serde_json::json!({ "email": email, "invited_by": invited_by }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "create {email}");
        let body: Value = response.json().await.expect("json");
        (
            body["id"].as_u64().expect("id"),
            body["token"].as_str().expect("token").to_string(),
            names_of(&body["proxies"]),
        )
    }

    /// An operator's move: gives user `user` exactly `proxies`, expecting 200.
    pub async fn set_proxies(&self, user: u64, proxies: &[&str]) {
        let response = self
            .client
            .put(self.url(&format!("/api/v1/admin/users/{user}/proxies")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "proxies": proxies }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "set proxies of {user}");
    }

    /// Blocks `proxy` in `country` as the operator's probes would: two probes there (weight
    /// 2 + 2 of 3) report it unreachable.
    pub async fn block_by_probes(&self, proxy: &str, country: &str) {
        for i in 0..2 {
            let probe = self
                .admin_post(
                    "/api/v1/admin/probes",
                    &serde_json::json!({ "name": format!("{country}-{i}"), "country": country }),
                )
                .await;
            assert_eq!(probe.status(), StatusCode::CREATED);
            let token = probe.json::<Value>().await.expect("json")["token"]
                .as_str()
                .expect("token")
                .to_string();
            let failed = serde_json::json!({ "reports": [{ "proxy": proxy, "reachable": false }] });
            let reported = self.user_post(&token, "/api/v1/reports", &failed).await;
            assert_eq!(reported.status(), StatusCode::OK);
        }
    }

    /// An admin clears a user's suspicion (expecting 200); returns the cleared record.
    pub async fn clear_suspicion(&self, id: u64) -> Value {
        let cleared = self
            .admin_post(
                &format!("/api/v1/admin/users/{id}/suspicion/clear"),
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(cleared.status(), StatusCode::OK);
        cleared.json().await.expect("json")
    }

    /// A user's proxy names, as the admin API sees them.
    pub async fn user_proxies(&self, id: u64) -> Vec<String> {
        let body = self.admin_json(&format!("/api/v1/admin/users/{id}")).await;
        body["user"]["proxies"]
            .as_array()
            .expect("proxies")
            .iter()
            .map(|p| p.as_str().expect("name").to_string())
            .collect()
    }

    pub async fn config(&self, token: &str) -> (StatusCode, Option<String>, Value) {
        let response = self
            .client
            .get(self.url("/api/v1/config"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string());
        let body = if status == StatusCode::OK {
            response.json().await.expect("json")
        } else {
            Value::Null
        };
        (status, etag, body)
    }

    pub async fn rebalance(&self, dry_run: bool) -> Value {
        let response = self
            .client
            .post(self.url(&format!("/api/v1/admin/rebalance?dry_run={dry_run}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }

    /// The store's invariants, as `GET /api/v1/admin/check` reports them.
    pub async fn assert_consistent(&self) {
        let check = self.admin_json("/api/v1/admin/check").await;
        assert_eq!(check["ok"], true, "{check}");
    }
}

/// Names from a list of proxy objects.
pub fn names_of(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_string())
        .collect()
}

/// Now, in Unix seconds (what the API's `*_at` and `until` fields use).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Verifies a config's signature with OpenSSL (Python's `cryptography`), an Ed25519
/// implementation independent of the server's, and prints the fields it signs.
pub fn verify_with_openssl(public_key: &str, signature: &str, body: &[u8]) -> Value {
    let script = r#"
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
key, signature, body = sys.argv[1], sys.argv[2], sys.stdin.buffer.read()
Ed25519PublicKey.from_public_bytes(base64.b64decode(key)).verify(base64.b64decode(signature), body)
print(json.dumps(json.loads(body)))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, public_key, signature])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(body).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the signature does not verify: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}
