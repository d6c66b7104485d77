//! schemathesis (PyPI) against the served OpenAPI file: generated requests for every
//! operation, with each kind of credential, and not one may get a 5xx. The user's pass leaves
//! out `POST /api/v1/pro/purchase`: without Stripe it answers 503 by design (it is covered
//! against localstripe and a failing Stripe in `purchase.rs` and `faults.rs`).

use std::process::Command;

use crate::helpers::{client, ServerProcess, ADMIN_TOKEN, REGISTRY_TOKEN};

fn schemathesis(server: &ServerProcess, token: &str, paths: Option<&str>) {
    let spec = server.url("/api/v1/openapi.json");
    let mut command = Command::new("python3");
    command
        .args([
            "-c",
            "from schemathesis.cli import schemathesis; schemathesis()",
        ])
        .args(["run", &spec, "--url", &server.url("")])
        .args(["--checks", "not_a_server_error", "--max-examples", "10"])
        .arg("--generation-deterministic")
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--exclude-path", "/api/v1/pro/purchase"]);
    if let Some(regex) = paths {
        command.args(["--include-path-regex", regex]);
    }
    let output = command.output().expect("run python3");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        !text.contains("No module named"),
        "schemathesis is not installed (the README's test command installs it from PyPI):\n{text}"
    );
    assert!(
        output.status.success(),
        "schemathesis found a failure:\n{text}"
    );
    let summary = text
        .lines()
        .find(|line| line.contains("generated,"))
        .unwrap_or_else(|| panic!("no summary:\n{text}"));
    eprintln!(
        "schemathesis ({}): {}",
        paths.unwrap_or("every path"),
        summary.trim()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_for_every_operation_never_get_a_server_error() {
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("PROXYFLEET_STRIPE_WEBHOOK_SECRET", "whsec_schemathesis"),
        // Long polls end at once, so no generated `wait` holds a request.
        ("PROXYFLEET_CONFIG_WAIT_MAX_SECS", "1"),
    ];
    let server = ServerProcess::start(data.path(), &env);
    let created: serde_json::Value = client()
        .post(server.url("/api/v1/admin/users"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "email": "generated@example.org" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_token = created["token"].as_str().expect("a user token").to_string();
    let server_ref = &server;
    tokio::task::block_in_place(|| {
        schemathesis(server_ref, ADMIN_TOKEN, None);
        schemathesis(server_ref, REGISTRY_TOKEN, Some("^/(register|unregister)$"));
        schemathesis(
            server_ref,
            &user_token,
            Some("^/api/v1/(config|devices|invitations|pro|referrals)"),
        );
        // A hostile caller on the admin side: a made-up token, every admin operation.
        schemathesis(
            server_ref,
            "not-a-token-of-this-server",
            Some("^/(admin/api|api/v1/admin)/"),
        );
    });
    server.kill9();
}
