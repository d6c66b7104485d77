//! `proxyfleet check`: the store's invariants verified offline, after real traffic and after
//! a kill -9; a broken index is reported (exit 1) and nothing is changed.

use std::process::Command;

use proxyfleet::store::codec::pair_key;
use proxyfleet::store::{Store, TreeId};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{client, ServerProcess, ADMIN_TOKEN, REGISTRY_TOKEN};

pub fn run_check(data: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_proxyfleet"))
        .arg("check")
        .env("PROXYFLEET_DATA_DIR", data)
        .output()
        .expect("run proxyfleet check");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[tokio::test]
async fn check_passes_after_traffic_and_a_kill_and_reports_a_broken_index() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let http = client();
    for (i, name) in ["alpha", "beta"].iter().enumerate() {
        let port = (9000 + i).to_string();
        let response = http
            .post(server.url("/register"))
            .bearer_auth(REGISTRY_TOKEN)
            .form(&[
                ("name", *name),
                ("ip", "127.0.0.1"),
                ("port", port.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    for i in 0..20 {
        let response = http
            .post(server.url("/api/v1/admin/users"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "email": format!("u{i}@example.org") }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    server.kill9();

    let (ok, text) = run_check(data.path());
    assert!(ok, "{text}");
    assert!(
        text.contains("ok: the link indexes and the task queue are consistent"),
        "{text}"
    );

    // A schedule entry that names no task: reported, exit 1, and left as it was.
    {
        let store = Store::open(data.path()).unwrap();
        store
            .put(TreeId::TaskSchedule, pair_key(1, 999_999), &())
            .unwrap();
        store.close().unwrap();
    }
    let (ok, text) = run_check(data.path());
    assert!(!ok, "{text}");
    assert!(
        text.contains("a schedule entry names no task (Some(999999))"),
        "{text}"
    );
    assert!(text.contains("1 problem(s) found"), "{text}");
    let (again, _) = run_check(data.path());
    assert!(!again, "check changed nothing");
}

#[test]
fn check_refuses_a_directory_without_a_store_and_makes_none() {
    let root = tempfile::tempdir().unwrap();
    let wrong = root.path().join("not-the-data-dir");
    let (ok, text) = run_check(&wrong);
    assert!(!ok, "{text}");
    assert!(text.contains("holds no proxyfleet store"), "{text}");
    assert!(!wrong.exists(), "no empty store made there");
}
