//! No secret reaches the log: the real binary at trace level with JSON logs, driven through
//! every flow that handles a token, password, code or key (registry, admin, users, devices,
//! invitations, referrals, panel login, Stripe webhook, SMTP with a password that fails, the
//! backup cookie), then its whole log is searched for each of them.

use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::billing::signed_webhook;
use crate::helpers::{client, unix_now, ServerProcess, ADMIN_TOKEN, REGISTRY_TOKEN};

const WEBHOOK_SECRET: &str = "whsec_logsecret0123456789";
const SMTP_PASSWORD: &str = "smtpPassw0rdNeverLogged";
const PANEL_PASSWORD: &str = "panel passphrase never logged";

/// Sends the request and returns the string field `name` of its JSON answer.
async fn field(request: reqwest_middleware::RequestBuilder, name: &str) -> String {
    let answer: Value = request.send().await.unwrap().json().await.unwrap();
    answer[name]
        .as_str()
        .unwrap_or_else(|| panic!("no `{name}` in {answer}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_password_or_key_appears_in_the_logs() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let log_path = root.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let smtp = format!("smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:9");
    let server = ServerProcess::start_logging(
        &data,
        &[
            ("RUST_LOG", "trace"),
            ("PROXYFLEET_LOG_FORMAT", "json"),
            ("PROXYFLEET_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("PROXYFLEET_SMTP_URL", &smtp),
            ("PROXYFLEET_QUEUE_BACKOFF_BASE_MS", "50"),
        ],
        Stdio::from(log),
    );
    let http = client();
    let mut secrets: Vec<String> = vec![
        ADMIN_TOKEN.into(),
        REGISTRY_TOKEN.into(),
        WEBHOOK_SECRET.into(),
        SMTP_PASSWORD.into(),
        PANEL_PASSWORD.into(),
    ];
    let post = |path: &str, token: &str, body: Value| {
        http.post(server.url(path)).bearer_auth(token).json(&body)
    };

    let registered = server.enrol("alpha", 9001).await;
    assert_eq!(registered.status(), StatusCode::OK);
    // The proxy's own secret is a secret too: never logged.
    let enrolled: Value = registered.json().await.unwrap();
    let proxy_secret = enrolled["proxy_secret"].as_str().expect("proxy_secret");
    secrets.push(proxy_secret.to_string());
    let user = json!({ "email": "ana@example.org" });
    let ana = field(post("/api/v1/admin/users", ADMIN_TOKEN, user), "token").await;
    secrets.push(ana.clone());
    let config = http
        .get(server.url("/api/v1/config"))
        .bearer_auth(&ana)
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), StatusCode::OK);

    // A device, an invitation (accepted: a new user's token), a referral code redeemed.
    let phone = json!({ "name": "phone" });
    secrets.push(field(post("/api/v1/devices", &ana, phone), "token").await);
    let invitee = json!({ "email": "bob@example.org" });
    let code = field(post("/api/v1/invitations", &ana, invitee), "code").await;
    secrets.push(code.clone());
    let accept = http.post(server.url(&format!("/api/v1/invitations/{code}/accept")));
    let bob = field(accept, "token").await;
    secrets.push(bob.clone());
    let referral_code = field(
        http.get(server.url("/api/v1/referrals")).bearer_auth(&ana),
        "code",
    )
    .await;
    let redeemed = post(
        "/api/v1/referrals/redeem",
        &bob,
        json!({ "code": referral_code }),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(redeemed.status(), StatusCode::OK);

    // The panel: an account, a login (cookie and CSRF token), a logout.
    let account = post(
        "/admin/api/accounts",
        ADMIN_TOKEN,
        json!({ "username": "ops", "password": PANEL_PASSWORD }),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(account.status(), StatusCode::CREATED);
    let login = http
        .post(server.url("/admin/api/login"))
        .json(&json!({ "username": "ops", "password": PANEL_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    let session_value = cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value.to_string())
        .unwrap();
    let csrf = login.json::<Value>().await.unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.push(session_value.clone());
    secrets.push(csrf.clone());
    let logout = http
        .post(server.url("/admin/api/logout"))
        .header("cookie", format!("pf_admin={session_value}"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    // Wrong credentials are logged as failures, never as what was tried.
    let wrong = "pfu_wrongtokenthatmustnotbelogged";
    secrets.push(wrong.into());
    let refused = http
        .get(server.url("/api/v1/config"))
        .bearer_auth(wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // A signed Stripe event (its signature is derived from the secret).
    let body = serde_json::to_vec(&json!({
        "id": "evt_logs", "object": "event", "type": "customer.created",
        "created": unix_now(), "data": { "object": { "id": "cus_1", "object": "customer" } },
    }))
    .unwrap();
    let url = server.url("/api/v1/stripe/webhook");
    let webhook = signed_webhook(&http, url, WEBHOOK_SECRET, body)
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status(), StatusCode::OK);

    // The backup cookie, used by the CLI against the running server.
    let out = root.path().join("b.pfbak");
    let backup = Command::new(env!("CARGO_BIN_EXE_proxyfleet"))
        .args(["backup", "--out", out.to_str().unwrap()])
        .env("PROXYFLEET_DATA_DIR", &data)
        .env("PROXYFLEET_LISTEN", server.address.to_string())
        .output()
        .unwrap();
    assert!(backup.status.success());
    let cookie = std::fs::read_to_string(data.join("control.cookie")).unwrap();
    secrets.push(cookie.trim().to_string());

    // The invitation mail fails against the closed SMTP port and is retried (and logged).
    crate::helpers::eventually(
        std::time::Duration::from_secs(20),
        "the mail task to fail twice",
        || async {
            let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
            let failures = logs
                .lines()
                .filter(|l| l.contains("\"message\":\"task failed\"") && l.contains("mail.send"))
                .count();
            (failures >= 2).then_some(())
        },
    )
    .await;
    let status = server.terminate();
    let logs = std::fs::read_to_string(&log_path).unwrap();
    let tail: Vec<&str> = logs.lines().rev().take(20).collect();
    assert!(
        status.success(),
        "SIGTERM ended in {status}; last log lines: {tail:#?}"
    );

    let lines: Vec<&str> = logs.lines().collect();
    assert!(
        lines.len() > 100,
        "trace logging produced {} lines",
        lines.len()
    );
    for line in &lines {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"message\":\"task failed\"") && l.contains("mail.send")),
        "the failing mail delivery (with its SMTP error) is in the log"
    );
    for secret in &secrets {
        assert!(!secret.is_empty());
        let leaked: Vec<&&str> = lines
            .iter()
            .filter(|l| l.contains(secret.as_str()))
            .collect();
        assert!(
            leaked.is_empty(),
            "{secret:?} is in the log: {:?}",
            leaked.first()
        );
    }
}

/// Every directory under `root` is 0700 and every file 0600; returns how many were checked.
fn assert_private(root: &std::path::Path) -> usize {
    use std::os::unix::fs::PermissionsExt;
    let mut checked = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        checked += 1;
    }
    checked
}

#[tokio::test]
async fn the_store_backups_and_keys_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let backups = root.path().join("data-backups");
    // A store as an older release left it: world-readable.
    let server = ServerProcess::start(&data, &[]);
    let http = client();
    let online = http
        .get(server.url("/api/v1/admin/backup"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(online.status(), StatusCode::OK);
    drop(server);
    let status = Command::new("chmod")
        .args(["-R", "go+rX"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(status.success());
    let loose = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(loose, 0o755);

    // A start under a permissive umask tightens it all, and writes private files.
    let server = ServerProcess::start(&data, &[("PROXYFLEET_BACKUP_INTERVAL_SECS", "1")]);
    // The scheduled backup (every second here) lands 0600 in a 0700 directory.
    crate::helpers::eventually(
        std::time::Duration::from_secs(30),
        "a scheduled backup",
        || {
            let backups = backups.clone();
            async move {
                let found = std::fs::read_dir(&backups).ok()?.flatten().count();
                (found > 0).then_some(())
            }
        },
    )
    .await;
    // The CLI's own backup, with the server running, is private too.
    let out = root.path().join("data-backups").join("by-hand.pfbak");
    let made = Command::new(env!("CARGO_BIN_EXE_proxyfleet"))
        .args(["backup", "--out"])
        .arg(&out)
        .env("PROXYFLEET_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    drop(server);
    assert!(assert_private(&data) > 5);
    assert!(assert_private(&backups) >= 2);
    assert!(
        data.join("tls").is_dir(),
        "the self-signed pair is under the data dir"
    );
}

#[tokio::test]
async fn text_logs_off_a_terminal_carry_no_colour_codes() {
    // journald and log files keep whatever bytes they get: escape codes only on a terminal.
    let root = tempfile::tempdir().unwrap();
    let log_path = root.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = ServerProcess::start_logging(
        &root.path().join("data"),
        &[("RUST_LOG", "info")],
        Stdio::from(log),
    );
    // A request the server logs at info (its access log), so there are lines to read.
    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let logs = crate::helpers::eventually(
        std::time::Duration::from_secs(30),
        "the start-up lines in the log",
        || async {
            let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
            (logs.lines().count() >= 2).then_some(logs)
        },
    )
    .await;
    assert!(logs.contains("INFO") || logs.contains("WARN"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "colour codes in: {logs}");
    drop(server);
}
