//! Admin accounts an owner can defend: a login flood costs a few counted audit entries,
//! accounts can be disabled, enabled, reset and removed (from the API, the panel's session
//! and the CLI, with the server running or stopped), and a session cannot lock everyone out.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::admin::{create_account, login, sign_in, ADMIN_PASSWORD, ADMIN_USER};
use crate::helpers::{error_code, spawn_app_with, ServerProcess, ADMIN_TOKEN};

#[tokio::test]
async fn a_flood_of_huge_usernames_costs_one_counted_entry_per_minute() {
    let app = spawn_app_with(|c| c.admin_login_burst = 5).await;
    create_account(&app).await;
    let huge = format!("{}\u{202e}evil", "x".repeat(3_900));
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..300 {
        let response = app
            .client
            .post(app.url("/admin/api/login"))
            .json(&json!({ "username": huge, "password": "guess guess guess" }))
            .send()
            .await
            .unwrap();
        *answers.entry(response.status().as_u16()).or_insert(0) += 1;
    }
    assert_eq!(answers.get(&401), Some(&6), "{answers:?}");
    assert_eq!(answers.get(&429), Some(&294), "{answers:?}");

    let audit = app.admin_json("/admin/api/audit?q=login_failed").await;
    let entries = audit["entries"].as_array().unwrap();
    assert!((1..=2).contains(&entries.len()), "one per minute: {audit}");
    let counted: u64 = entries.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 300);
    for entry in entries {
        let actor = entry["actor"].as_str().unwrap();
        assert_eq!(actor.chars().count(), 64, "cut to 64 printable characters");
        assert!(!actor.contains('\u{202e}'));
    }
    // The owner, from the same address, is slowed down but not locked out.
    let owner = login(&app, ADMIN_PASSWORD).await;
    assert_eq!(owner.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = owner.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait <= 15 * 60, "capped: {wait}");
}

async fn act(app: &crate::helpers::TestApp, name: &str, action: &str) -> reqwest::Response {
    app.admin_post(&format!("/admin/api/accounts/{name}/{action}"), &json!({}))
        .await
}

#[tokio::test]
async fn accounts_are_disabled_enabled_reset_and_removed_and_each_ends_their_sessions() {
    let app = spawn_app_with(|c| c.admin_login_burst = 50).await;
    create_account(&app).await;

    // Names of system actors are refused.
    for reserved in ["admin-token", "system", "admin-cli"] {
        let taken = app
            .admin_post(
                "/admin/api/accounts",
                &json!({ "username": reserved, "password": ADMIN_PASSWORD }),
            )
            .await;
        assert_eq!(error_code(taken).await, "reserved_username");
    }

    // The only enabled account cannot disable or remove itself from a session.
    let session = sign_in(&app).await;
    for action in ["disable", "remove"] {
        let refused = session
            .post(
                &app,
                &format!("/admin/api/accounts/{ADMIN_USER}/{action}"),
                json!({}),
            )
            .await;
        assert_eq!(refused.status(), StatusCode::CONFLICT);
        assert_eq!(error_code(refused).await, "last_account");
    }

    // Disabled: its session ends, it cannot sign in; enabled again, it can.
    assert_eq!(
        act(&app, ADMIN_USER, "disable").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        session.get(&app, "/admin/api/session").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, ADMIN_PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let listed = app.admin_json("/admin/api/accounts").await;
    assert_eq!(listed["accounts"][0]["disabled"], true, "{listed}");
    assert_eq!(
        act(&app, ADMIN_USER, "enable").await.status(),
        StatusCode::OK
    );
    let session = sign_in(&app).await;

    // A new password, shown once; the old one and the old sessions are void.
    let reset: Value = act(&app, ADMIN_USER, "reset-password")
        .await
        .json()
        .await
        .unwrap();
    let password = reset["password"].as_str().unwrap().to_string();
    assert_eq!(
        session.get(&app, "/admin/api/session").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, ADMIN_PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login(&app, &password).await.status(), StatusCode::OK);

    // Unknown actions and accounts.
    assert_eq!(
        act(&app, ADMIN_USER, "promote").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        act(&app, "nobody", "disable").await.status(),
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        act(&app, ADMIN_USER, "remove").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        login(&app, &password).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let listed = app.admin_json("/admin/api/accounts").await;
    assert_eq!(listed["accounts"], json!([]));

    // Each action is in the audit trail, with who did it.
    let audit = app.admin_json("/admin/api/audit?q=accounts").await;
    let actions: Vec<String> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        actions.contains(&format!(
            "admin-token POST /admin/api/accounts/{ADMIN_USER}/disable"
        )),
        "{actions:?}"
    );
}

fn cli(data_dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_proxyfleet"))
        .arg("admin")
        .args(args)
        .env("PROXYFLEET_DATA_DIR", data_dir)
        .output()
        .expect("run proxyfleet admin");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[tokio::test]
async fn the_cli_manages_accounts_with_the_server_running_or_stopped() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");

    // A directory with no store is refused, and left without one.
    let (ok, text) = cli(&data, &["list"]);
    assert!(!ok && text.contains("holds no proxyfleet store"), "{text}");
    assert!(!data.exists());

    let (ok, text) = cli(&data, &["create", "--username", "ops"]);
    assert!(!ok && text.contains("holds no proxyfleet store"), "{text}");
    assert!(!data.exists(), "nothing made without --create-store");
    let (ok, text) = cli(&data, &["create", "--username", "ops", "--create-store"]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("data directory: {}", data.display())),
        "{text}"
    );
    let (ok, text) = cli(&data, &["create", "--username", "backup-ops"]);
    assert!(ok, "{text}");

    // Stopped: the store is opened here.
    let (ok, text) = cli(&data, &["disable", "backup-ops"]);
    assert!(ok, "{text}");
    let absolute = std::fs::canonicalize(&data).unwrap();
    assert!(
        text.contains(&format!("data directory: {}", absolute.display())),
        "{text}"
    );
    let (ok, text) = cli(&data, &["list"]);
    assert!(
        ok && text.contains("backup-ops\tdisabled") && text.contains("ops\tenabled"),
        "{text}"
    );

    // Running: the command asks the server with its control cookie. The store the CLI made
    // is of the current format: the first start migrates nothing (no pre-migration backup).
    let server = ServerProcess::start(&data, &[]);
    let backups = data.with_file_name("data-backups");
    let taken: Vec<String> = std::fs::read_dir(&backups)
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !taken.iter().any(|name| name.starts_with("pre-migration")),
        "{taken:?}"
    );
    let (ok, text) = cli(&data, &["enable", "backup-ops"]);
    assert!(ok, "{text}");
    let (ok, text) = cli(&data, &["reset-password", "ops"]);
    assert!(ok, "{text}");
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("new password (shown once, only its argon2 hash is stored): "))
        .expect("a new password")
        .to_string();
    let http = reqwest::Client::new();
    let signed_in = http
        .post(server.url("/admin/api/login"))
        .json(&json!({ "username": "ops", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    let listed: Value = http
        .get(server.url("/admin/api/accounts"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["accounts"][0]["disabled"], false, "{listed}");
    let (ok, text) = cli(&data, &["remove", "backup-ops"]);
    assert!(ok, "{text}");
    let (ok, text) = cli(&data, &["list"]);
    assert!(
        ok && !text.contains("backup-ops") && text.contains("ops\tenabled"),
        "{text}"
    );
    let (ok, text) = cli(&data, &["disable", "nobody"]);
    assert!(!ok && text.contains("404"), "{text}");
    drop(server);
}

#[tokio::test]
async fn the_trail_records_what_each_mutation_asked_with_secrets_masked() {
    let app = spawn_app_with(|c| c.admin_login_burst = 50).await;
    let created = app
        .admin_post(
            "/admin/api/accounts",
            &json!({ "username": "second", "password": "a long enough password" }),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    app.create_user("someone@example.org", None).await;
    // A body over the read-ahead bound still reaches its route whole; the trail gives its
    // query only.
    let huge = app
        .admin_post(
            "/api/v1/admin/users?why=huge",
            &json!({ "email": format!("{}@example.org", "x".repeat(20_000)) }),
        )
        .await;
    assert_eq!(huge.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let audit = app.admin_json("/admin/api/audit").await;
    let entries = audit["entries"].as_array().unwrap();
    let params_of = |action: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| e["params"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let account = params_of("POST /admin/api/accounts");
    assert_eq!(account.len(), 1, "{audit}");
    assert!(account[0].contains(r#""username":"second""#), "{audit}");
    assert!(account[0].contains(r#""password":"***""#), "{audit}");
    assert!(!audit.to_string().contains("a long enough password"));
    let users = params_of("POST /api/v1/admin/users");
    assert_eq!(users.len(), 2, "{audit}");
    assert!(
        users
            .iter()
            .any(|p| p.contains(r#""email":"someone@example.org""#)),
        "{audit}"
    );
    assert!(users.iter().any(|p| p == "why=huge"), "{audit}");
}
