//! What the panel's proxy page and dashboard read: the users of one proxy a page at a time, the
//! tasks an operator's action queued with their real outcome (a retire hook that fails ends as a
//! dead letter, not as "done"), and the dashboard's "needs attention" list naming each proxy
//! down, over capacity or blocked with the page to act on it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, spawn_app_with, TestApp};

fn attention_of<'a>(summary: &'a Value, kind: &str) -> Vec<&'a Value> {
    summary["attention"]
        .as_array()
        .expect("attention")
        .iter()
        .filter(|a| a["kind"] == kind)
        .collect()
}

/// The kinds of the tasks an action's answer names, in order.
fn task_kinds(answer: &Value) -> Vec<&str> {
    answer["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["kind"].as_str().expect("kind"))
        .collect()
}

async fn users_page(app: &TestApp, query: &str) -> Value {
    app.admin_json(&format!("/api/v1/admin/proxies/p1/users{query}"))
        .await
}

#[tokio::test]
async fn the_users_of_a_proxy_come_a_page_at_a_time_and_only_theirs() {
    let app = spawn_app_with(|c| c.fallbacks_per_user = 1).await;
    app.proxy("p1", 9001, &[]).await;
    let mut on_p1 = Vec::new();
    for i in 0..3 {
        on_p1.push(app.create_user(&format!("u{i}@example.org"), None).await.0);
    }
    // Another proxy's user is not listed.
    app.proxy("p2", 9002, &[("clients", "0")]).await;
    let (other, _, _) = app.create_user("other@example.org", None).await;
    app.set_proxies(other, &["p2"]).await;

    let first = users_page(&app, "?limit=2").await;
    assert_eq!(first["total"], 3, "{first}");
    let ids: Vec<u64> = first["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, on_p1[..2]);
    assert_eq!(first["users"][0]["email"], "u0@example.org");
    assert_eq!(first["users"][0]["status"], "active");
    assert_eq!(first["users"][0]["pro"], false);
    assert_eq!(first["next_after"], on_p1[1]);
    let rest = users_page(&app, &format!("?limit=2&after={}", on_p1[1])).await;
    assert_eq!(rest["users"].as_array().unwrap().len(), 1);
    assert_eq!(rest["users"][0]["id"], on_p1[2]);
    assert!(rest["next_after"].is_null(), "{rest}");

    // One at a time, the three and nothing else; an exact page has no next.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = users_page(&app, &format!("?limit=1{after}")).await;
        seen.extend(
            page["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_u64().unwrap()),
        );
        match page["next_after"].as_u64() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, on_p1);
    let exact = users_page(&app, "?limit=3").await;
    assert!(exact["next_after"].is_null(), "{exact}");

    // A proxy nobody holds, or that never was, has an empty list; a malformed name is refused.
    let nobody = app.admin_json("/api/v1/admin/proxies/ghost/users").await;
    assert_eq!(
        (
            nobody["total"].as_u64(),
            nobody["users"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    for bad in [
        "/api/v1/admin/proxies/NOT_A_NAME/users",
        "/api/v1/admin/proxies/p1/users?limit=x",
        "/api/v1/admin/proxies/p1/users?colour=red",
    ] {
        let refused = app.admin_get(bad).await;
        assert!(
            refused.status().is_client_error(),
            "{bad}: {}",
            refused.status()
        );
        let body: Value = refused.json().await.expect("the JSON error shape");
        assert!(body["error"]["code"].is_string(), "{bad}: {body}");
    }
    // A huge limit is held to 500.
    let capped = users_page(&app, "?limit=100000").await;
    assert_eq!(capped["users"].as_array().unwrap().len(), 3);
    let anonymous = app
        .client
        .get(app.url("/api/v1/admin/proxies/p1/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_retire_whose_hook_keeps_failing_is_reported_failed_not_done() {
    let app = spawn_app_with(|c| {
        c.retire_command = Some("echo 'no such droplet' >&2; exit 3".into());
        c.queue_max_attempts = 2;
        c.queue_backoff_base_ms = 20;
    })
    .await;
    app.proxy("p1", 9001, &[]).await;
    app.create_user("held@example.org", None).await;

    let answer = app
        .admin_post(
            "/api/v1/admin/proxies/p1/action",
            &json!({ "action": "retire" }),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["role"], "retired");
    let kinds = task_kinds(&answer);
    assert_eq!(kinds, ["fleet.proxy_changed", "fleet.retire"], "{answer}");
    let retire_id = answer["tasks"][1]["id"].as_u64().unwrap();

    // The answer said only that the role changed; the task tells the outcome: dead, with why.
    let dead = eventually(
        Duration::from_secs(20),
        "the retire hook's last try",
        || async {
            let task = app
                .admin_json(&format!("/api/v1/admin/queue/tasks/{retire_id}"))
                .await;
            (task["state"] == "dead").then_some(task)
        },
    )
    .await;
    assert_eq!(dead["attempts"], 2);
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .contains("no such droplet"),
        "{dead}"
    );
    app.queue_idle().await;
    let tasks = app.admin_json("/api/v1/admin/proxies/p1/tasks").await;
    let listed: Vec<(&str, &str)> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["kind"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    assert!(listed.contains(&("fleet.retire", "dead")), "{tasks}");
    assert!(listed.contains(&("fleet.proxy_changed", "done")), "{tasks}");
    assert!(
        tasks["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["key"].as_str().unwrap().contains(":p1:")),
        "only p1's tasks: {tasks}"
    );
    let one = app
        .admin_json("/api/v1/admin/proxies/p1/tasks?limit=1")
        .await;
    assert_eq!(one["tasks"].as_array().unwrap().len(), 1);
    // Another proxy's page lists none of them; a bad name is refused.
    app.proxy("p2", 9002, &[]).await;
    let none = app.admin_json("/api/v1/admin/proxies/p2/tasks").await;
    assert!(
        none["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["key"].as_str().unwrap().contains(":p2:")),
        "{none}"
    );
    let bad = app.admin_get("/api/v1/admin/proxies/p%20/tasks").await;
    assert!(bad.status().is_client_error());

    // The dashboard says so, and where to act.
    let summary = app.admin_json("/api/v1/admin/summary").await;
    let dead_letters = attention_of(&summary, "dead_letters");
    assert_eq!(dead_letters.len(), 1, "{summary}");
    assert_eq!(dead_letters[0]["link"], "#/queues");

    // Without a retire command there is no hook task to report.
    let quiet = spawn_app().await;
    quiet.proxy("p1", 9001, &[]).await;
    let answer: Value = quiet
        .admin_post(
            "/api/v1/admin/proxies/p1/action",
            &json!({ "action": "retire" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let kinds = task_kinds(&answer);
    assert_eq!(kinds, ["fleet.proxy_changed"], "{answer}");
    // A role set for good names the task that moves the users off.
    let gateway: Value = quiet
        .admin_post(
            "/api/v1/admin/proxies/p1/role",
            &json!({ "role": "gateway" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(gateway["role"], "gateway");
    assert_eq!(
        gateway["tasks"][0]["kind"], "fleet.proxy_changed",
        "{gateway}"
    );
}

#[tokio::test]
async fn the_dashboard_names_each_proxy_that_needs_the_operator_and_where_to_act() {
    let app = spawn_app().await;
    app.proxy("calm", 9001, &[("clients", "10"), ("capacity", "100")])
        .await;
    app.proxy("hot1", 9002, &[("clients", "300"), ("capacity", "200")])
        .await;
    app.proxy("gone1", 9003, &[]).await;
    app.proxy("banned", 9004, &[]).await;
    assert_eq!(app.unregister("gone1").await.status(), StatusCode::OK);
    app.block_by_probes("banned", "IR").await;

    let summary = app.admin_json("/api/v1/admin/summary").await;
    let down = attention_of(&summary, "proxy_down");
    assert_eq!(down.len(), 1, "{summary}");
    assert_eq!(down[0]["link"], "#/proxies/gone1");
    assert!(
        down[0]["text"]
            .as_str()
            .unwrap()
            .contains("unregistered itself"),
        "{summary}"
    );
    let listed = &summary["proxies_down"]["proxies"];
    assert_eq!(listed[0]["name"], "gone1");
    assert_eq!(listed[0]["how"], "unregistered");
    assert_eq!(listed[0]["port"], 9003);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let over = attention_of(&summary, "over_capacity");
    assert_eq!(over.len(), 1, "{summary}");
    assert_eq!(over[0]["link"], "#/proxies/hot1");
    assert!(
        over[0]["text"].as_str().unwrap().contains("300"),
        "{summary}"
    );

    let blocked = attention_of(&summary, "blocked");
    assert_eq!(blocked.len(), 1, "{summary}");
    assert_eq!(blocked[0]["link"], "#/proxies/banned");
    assert!(blocked[0]["text"].as_str().unwrap().contains("IR"));

    // The test server writes backups unencrypted: said, with the settings page.
    let backups = attention_of(&summary, "backups");
    assert_eq!(backups[0]["link"], "#/settings");
    // `warnings` carries the same texts.
    let texts: Vec<&Value> = summary["attention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["text"])
        .collect();
    let warnings: Vec<&Value> = summary["warnings"].as_array().unwrap().iter().collect();
    assert_eq!(texts, warnings);

    // Back under capacity and registered again: no longer named.
    app.proxy("hot1", 9002, &[("clients", "100"), ("capacity", "200")])
        .await;
    app.proxy("gone1", 9003, &[]).await;
    let summary = app.admin_json("/api/v1/admin/summary").await;
    assert!(
        attention_of(&summary, "over_capacity").is_empty(),
        "{summary}"
    );
    assert!(attention_of(&summary, "proxy_down").is_empty(), "{summary}");
    assert_eq!(summary["proxies_down"]["proxies"], json!([]));
}

#[tokio::test]
async fn many_proxies_down_are_named_five_and_counted_beyond() {
    let app = spawn_app().await;
    for i in 0..7 {
        app.proxy(&format!("d{i}"), 9000 + i, &[]).await;
    }
    for i in 0..7 {
        assert_eq!(
            app.unregister(&format!("d{i}")).await.status(),
            StatusCode::OK
        );
    }
    let summary = app.admin_json("/api/v1/admin/summary").await;
    let down = attention_of(&summary, "proxy_down");
    assert_eq!(
        down.len(),
        6,
        "five named, one line for the rest: {summary}"
    );
    // Most recently gone first.
    assert_eq!(down[0]["link"], "#/proxies/d6");
    assert!(
        down[5]["text"]
            .as_str()
            .unwrap()
            .starts_with("2 more proxies"),
        "{summary}"
    );
    assert_eq!(
        summary["proxies_down"]["proxies"].as_array().unwrap().len(),
        7
    );
}
