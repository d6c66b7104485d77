//! The README's examples, run as written: the `curl` commands of "Using it" are read from
//! README.md and run by `sh` against a real server, with the tokens they name in their
//! environment. Only the address changes (the README's `127.0.0.1:8080` is this test's server);
//! curl's options for reading the answer come from a `.curlrc` (`CURL_HOME`), not from editing
//! the commands. On a fresh server the first registration is refused as the README says, and
//! with the setting the README names, every example succeeds.

use std::path::Path;

use serde_json::Value;

use crate::helpers::{spawn_app_with, TestApp, ADMIN_TOKEN, REGISTRY_TOKEN};

/// The README's shell examples under `section`: indented lines starting with `curl`, with their
/// backslash continuations joined.
fn examples(section: &str) -> Vec<String> {
    let readme = std::fs::read_to_string("README.md").expect("README.md");
    let start = readme.find(section).expect("the section");
    let body = &readme[start + section.len()..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let mut commands = Vec::new();
    let mut lines = body.lines();
    while let Some(line) = lines.next() {
        let Some(command) = line.strip_prefix("    curl ") else {
            continue;
        };
        let mut command = format!("curl {command}");
        while command.trim_end().ends_with('\\') {
            let next = lines.next().expect("a continued line");
            command = format!("{}\n{next}", command.trim_end());
        }
        commands.push(command);
    }
    commands
}

/// Runs `command` as the README gives it, against `app`; returns (HTTP status, body). Awaited,
/// not blocking: the server answers on this test's own runtime.
async fn run(app: &TestApp, curlrc: &Path, command: &str, env: &[(&str, &str)]) -> (u16, String) {
    let command = command.replace("http://127.0.0.1:8080", &app.url(""));
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env("CURL_HOME", curlrc)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("sh runs");
    assert!(output.status.success(), "{command}: {output:?}");
    let text = String::from_utf8(output.stdout).expect("text");
    let (body, status) = text
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", text.trim()));
    (
        status.parse().expect("the status curl wrote"),
        body.to_string(),
    )
}

#[tokio::test]
async fn the_readme_examples_work_as_written() {
    let commands = examples("## Using it");
    assert_eq!(commands.len(), 5, "{commands:#?}");
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".curlrc"),
        "silent\nshow-error\nwrite-out = \"\\n%{http_code}\"\n",
    )
    .unwrap();
    let tokens = [
        ("REGISTRY_TOKEN", REGISTRY_TOKEN),
        ("ADMIN_TOKEN", ADMIN_TOKEN),
    ];

    // A fresh server refuses the documentation address, and says which setting allows it.
    let fresh = spawn_app_with(|c| c.allow_private_ips = false).await;
    let (status, body) = run(&fresh, home.path(), &commands[0], &tokens).await;
    assert_eq!(status, 422, "{body}");
    let error: Value = serde_json::from_str(&body).expect("the JSON error shape");
    assert_eq!(error["error"]["code"], "private_ip");
    assert!(body.contains("PROXYFLEET_ALLOW_PRIVATE_IPS"), "{body}");

    // With it (a lab fleet), each example does what the README says.
    let app = spawn_app_with(|c| c.allow_private_ips = true).await;
    let (status, body) = run(&app, home.path(), &commands[0], &tokens).await;
    assert_eq!(status, 200, "{body}");
    let enrolled: Value = serde_json::from_str(&body).unwrap();
    let secret = enrolled["proxy_secret"]
        .as_str()
        .expect("the proxy's secret, once");
    assert!(secret.starts_with("pfp_"), "{body}");
    let with_secret = [tokens[0], tokens[1], ("PROXY_SECRET", secret)];
    let (status, body) = run(&app, home.path(), &commands[1], &with_secret).await;
    assert_eq!(status, 200, "the heartbeat: {body}");
    let listed: Value =
        serde_json::from_str(&run(&app, home.path(), &commands[3], &with_secret).await.1).unwrap();
    assert_eq!(listed["proxies"][0]["name"], "fl1", "{listed}");
    assert_eq!(listed["proxies"][0]["clients"], 15, "{listed}");
    let (status, vcl) = run(&app, home.path(), &commands[4], &with_secret).await;
    assert_eq!(status, 200);
    assert!(vcl.contains("vcl 4."), "{vcl}");
    let (status, body) = run(&app, home.path(), &commands[2], &with_secret).await;
    assert_eq!(status, 200, "the goodbye: {body}");
    let listed: Value =
        serde_json::from_str(&run(&app, home.path(), &commands[3], &with_secret).await.1).unwrap();
    assert_eq!(listed["proxies"], serde_json::json!([]), "{listed}");
}
