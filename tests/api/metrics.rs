//! `GET /metrics`: Prometheus text with requests by route template (never a raw path), the
//! fleet's figures and the mirror's gauges; only for the admin.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{require_program, spawn_app, ADMIN_TOKEN};

/// The value of the sample named `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            let (series, _) = line.rsplit_once(' ').unwrap_or((line, ""));
            let bare = series.split('{').next() == Some(name);
            bare && labels.iter().all(|label| series.contains(label))
        })
        .and_then(|line| line.rsplit_once(' ')?.1.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_by_template_and_show_the_fleet() {
    let app = spawn_app().await;
    app.register_ok("alpha", 9001).await;
    let (id, token, _) = app.create_user("ana@example.org", None).await;
    app.gift_pro(id, 30).await;
    app.user_json(&token, "/api/v1/config").await;
    let user = app.admin_get(&format!("/api/v1/admin/users/{id}")).await;
    assert_eq!(user.status(), StatusCode::OK);
    let probe = app
        .client
        .get(app.url("/wp-login.php"))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), StatusCode::NOT_FOUND);
    let _ = app
        .user_post(
            &token,
            "/api/v1/referrals/redeem",
            &json!({ "code": "NOPE" }),
        )
        .await;

    app.rebalance(true).await;

    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();

    // Every sample line is `name{labels} value` with a number.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (_, value) = line.rsplit_once(' ').expect(line);
        assert!(value.parse::<f64>().is_ok(), "not a sample: {line}");
    }
    // Prometheus's own linter finds nothing (names, units, help texts, types).
    let linted = {
        use std::io::Write;
        let mut promtool = std::process::Command::new(require_program("promtool", "prometheus"))
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run promtool");
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        promtool.wait_with_output().unwrap()
    };
    assert!(
        linted.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&linted.stdout),
        String::from_utf8_lossy(&linted.stderr)
    );
    // promtool's naming rules: a counter's name ends in `_total`, and only a counter's.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line.split_whitespace().skip(2);
        let (name, kind) = (words.next().unwrap(), words.next().unwrap());
        assert_eq!(
            name.ends_with("_total"),
            kind == "counter",
            "{name} is a {kind}"
        );
    }
    let requests = "proxyfleet_http_requests_total";
    let register = [
        r#"route="/register""#,
        r#"method="POST""#,
        r#"status="200""#,
    ];
    assert_eq!(sample(&text, requests, &register), Some(1.0));
    let by_id = [r#"route="/api/v1/admin/users/{id}""#, r#"status="200""#];
    assert_eq!(sample(&text, requests, &by_id), Some(1.0));
    let unmatched = [r#"route="unmatched""#, r#"status="404""#];
    assert_eq!(sample(&text, requests, &unmatched), Some(1.0));
    assert!(!text.contains("wp-login"), "raw paths never become labels");
    assert!(
        !text.contains(&format!("/users/{id}\"")),
        "user ids never become labels"
    );
    let latency = "proxyfleet_http_request_duration_seconds_count";
    assert_eq!(
        sample(&text, latency, &[r#"route="/api/v1/config""#]),
        Some(1.0)
    );
    assert!(text.contains("proxyfleet_http_request_duration_seconds_bucket{"));

    let up = [r#"role="fallback""#, r#"state="up""#];
    assert_eq!(sample(&text, "proxyfleet_proxies", &up), Some(1.0));
    assert_eq!(
        sample(&text, "proxyfleet_users", &[r#"tier="all""#]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "proxyfleet_users", &[r#"tier="pro""#]),
        Some(1.0)
    );
    assert!(sample(&text, "proxyfleet_mirror_lag_changes", &[]).is_some());
    let dry_run = [r#"trigger="manual""#, r#"dry_run="true""#];
    assert_eq!(
        sample(&text, "proxyfleet_rebalance_runs_total", &dry_run),
        Some(1.0)
    );
}
