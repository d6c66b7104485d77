//! The rebalancer over HTTP: overload, dry run, hysteresis, drain, long-poll, and the link
//! indexes under concurrent change.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{names_of, spawn_app_with, TestApp};

/// The scenario: limit 5, ten users on p1 which reports 10 clients, standby p2. The
/// users joined while p1 said it could carry 10 (no proxy is filled past its limit); then it
/// says 5.
pub(crate) async fn overloaded_fleet(app: &TestApp) -> Vec<(u64, String)> {
    app.proxy("p1", 9001, &[("clients", "0"), ("capacity", "10")])
        .await;
    let mut users = Vec::new();
    for i in 0..10 {
        let (id, token, proxies) = app.create_user(&format!("u{i}@example.org"), None).await;
        assert_eq!(proxies, vec!["p1"]);
        users.push((id, token));
    }
    app.proxy("p2", 9002, &[("role", "standby")]).await;
    app.proxy("p1", 9001, &[("clients", "10"), ("capacity", "5")])
        .await;
    users
}

async fn configs(app: &TestApp, users: &[(u64, String)]) -> BTreeMap<u64, Value> {
    let mut all = BTreeMap::new();
    for (id, token) in users {
        let (status, _, config) = app.config(token).await;
        assert_eq!(status, StatusCode::OK);
        all.insert(*id, config);
    }
    all
}

#[tokio::test]
async fn an_overloaded_proxy_hands_its_excess_to_a_promoted_standby() {
    let app = spawn_app_with(|c| c.max_clients = 5).await;
    let users = overloaded_fleet(&app).await;
    let before = configs(&app, &users).await;

    let plan = app.rebalance(false).await;
    assert_eq!(plan["dry_run"], false);
    assert_eq!(plan["moves"].as_array().unwrap().len(), 5);
    assert_eq!(plan["promoted"][0]["proxy"], "p2");
    assert!(plan["promoted"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("headroom"));
    let moved: Vec<u64> = plan["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_u64().unwrap())
        .collect();
    for m in plan["moves"].as_array().unwrap() {
        assert_eq!(
            (m["from"].as_str(), m["to"].as_str()),
            (Some("p1"), Some("p2"))
        );
        assert!(m["reason"].as_str().unwrap().contains("p1"));
    }

    let after = configs(&app, &users).await;
    for (id, config) in &after {
        if moved.contains(id) {
            assert_eq!(names_of(&config["proxies"]), vec!["p2"], "user {id} moved");
            assert_ne!(config["version"], before[id]["version"]);
        } else {
            assert_eq!(config, &before[id], "user {id} is untouched");
        }
    }
    assert_eq!(
        app.admin_json("/api/v1/admin/proxies/p2").await["role"],
        "fallback"
    );
    let plans = app.admin_json("/api/v1/admin/rebalance/plans").await;
    assert_eq!(plans["plans"][0]["id"], plan["id"]);
    app.assert_consistent().await;

    // Once p1 reports its new load, a second run has nothing to do.
    app.proxy("p1", 9001, &[("clients", "5")]).await;
    assert!(app.rebalance(false).await["moves"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let app = spawn_app_with(|c| c.max_clients = 5).await;
    let users = overloaded_fleet(&app).await;
    let before = configs(&app, &users).await;
    let plan = app.rebalance(true).await;
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["moves"].as_array().unwrap().len(), 5);
    assert_eq!(configs(&app, &users).await, before);
    assert_eq!(
        app.admin_json("/api/v1/admin/proxies/p2").await["role"],
        "standby"
    );
    // Only the plan itself is kept, as a dry run to review.
    let plans = app.admin_json("/api/v1/admin/rebalance/plans").await;
    assert_eq!(plans["plans"], json!([plan]));
}

#[tokio::test]
async fn a_load_spike_does_not_move_anyone_in_periodic_runs() {
    let app = spawn_app_with(|c| {
        c.max_clients = 5;
        c.rebalance_interval_secs = 1;
        c.rebalance_hysteresis_secs = 3600;
    })
    .await;
    let users = overloaded_fleet(&app).await;
    let before = configs(&app, &users).await;
    // Wait for at least two periodic runs to have looked at the spike.
    let plans =
        crate::helpers::eventually(Duration::from_secs(15), "two periodic runs", || async {
            let plans = app.admin_json("/api/v1/admin/rebalance/plans").await;
            (plans["plans"].as_array().unwrap().len() >= 2).then_some(plans)
        })
        .await;
    for plan in plans["plans"].as_array().unwrap() {
        assert_eq!(plan["trigger"], "periodic");
        assert!(plan["moves"].as_array().unwrap().is_empty());
    }
    assert_eq!(configs(&app, &users).await, before);
}

#[tokio::test]
async fn an_idle_proxy_is_drained_to_standby() {
    let app = spawn_app_with(|c| {
        c.max_clients = 100;
        c.drain_after_secs = 0;
        c.min_fallback_proxies = 1;
    })
    .await;
    app.proxy("idle", 9001, &[("clients", "50")]).await;
    let (a, token_a, _) = app.create_user("a@example.org", None).await;
    let (b, _, _) = app.create_user("b@example.org", None).await;
    assert_eq!(app.user_proxies(a).await, vec!["idle"]);
    app.proxy("busy", 9002, &[("clients", "40")]).await;
    app.proxy("idle", 9001, &[("clients", "1")]).await; // under 10% of 100

    let plan = app.rebalance(false).await;
    assert_eq!(plan["retired"][0]["proxy"], "idle");
    assert_eq!(plan["retired"][0]["action"], "standby");
    assert_eq!(
        app.admin_json("/api/v1/admin/proxies/idle").await["role"],
        "standby"
    );
    assert_eq!(app.user_proxies(a).await, vec!["busy"]);
    assert_eq!(app.user_proxies(b).await, vec!["busy"]);
    assert_eq!(
        names_of(&app.config(&token_a).await.2["proxies"]),
        vec!["busy"]
    );
    // A heartbeat does not undo the drain (the role is pinned), and the minimum holds.
    app.proxy("idle", 9001, &[("clients", "0"), ("role", "fallback")])
        .await;
    assert_eq!(
        app.admin_json("/api/v1/admin/proxies/idle").await["role"],
        "standby"
    );
    app.proxy("busy", 9002, &[("clients", "0")]).await;
    assert!(
        app.rebalance(false).await["retired"]
            .as_array()
            .unwrap()
            .is_empty(),
        "never below the minimum"
    );
    app.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_returns_as_soon_as_the_user_is_moved() {
    let app = spawn_app_with(|c| c.max_clients = 1).await;
    app.proxy("p1", 9001, &[("clients", "0")]).await;
    let (_, token, _) = app.create_user("waiter@example.org", None).await;
    app.proxy("p2", 9002, &[("capacity", "10")]).await;
    let (_, etag, config) = app.config(&token).await;
    assert_eq!(names_of(&config["proxies"]), vec!["p1"]);

    let poll = {
        let client = app.client.clone();
        let url = app.url("/api/v1/config?wait=30");
        let token = token.clone();
        let etag = etag.unwrap();
        tokio::spawn(async move {
            let response = client
                .get(url)
                .bearer_auth(token)
                .header("if-none-match", etag)
                .send()
                .await
                .unwrap();
            (
                response.status(),
                Instant::now(),
                response.json::<Value>().await.unwrap(),
            )
        })
    };
    app.long_polls_waiting(1).await;
    assert!(!poll.is_finished(), "the poll waits while nothing changes");
    app.proxy("p1", 9001, &[("clients", "2")]).await;
    let moved_at = Instant::now();
    let plan = app.rebalance(false).await;
    assert_eq!(plan["moves"].as_array().unwrap().len(), 1);
    let (status, answered_at, config) = poll.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names_of(&config["proxies"]), vec!["p2"]);
    let latency = answered_at.duration_since(moved_at);
    // Woken by the move, not by the 30 s deadline.
    assert!(
        latency < Duration::from_secs(29),
        "the poll ran to its deadline"
    );
    println!("long-poll answered {latency:?} after the rebalance request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invitations_departures_and_rebalances_keep_the_indexes_in_agreement() {
    let app = spawn_app_with(|c| {
        c.max_clients = 3;
        c.fallbacks_per_user = 2;
        c.rebalance_cooldown_secs = 0;
        // One host invites all 24.
        c.invitations_per_period = 24;
    })
    .await;
    for (i, name) in ["pa", "pb", "pc", "pd"].iter().enumerate() {
        app.proxy(
            name,
            9000 + i as u16,
            &[("clients", "0"), ("capacity", "3")],
        )
        .await;
    }
    let (_, host_token, _) = app.create_user("host@example.org", None).await;
    let mut jobs = Vec::new();
    for i in 0..24 {
        let client = app.client.clone();
        let base = app.url("");
        let host_token = host_token.clone();
        jobs.push(tokio::spawn(async move {
            let invited = client
                .post(format!("{base}/api/v1/invitations"))
                .bearer_auth(&host_token)
                .json(&json!({ "email": format!("g{i}@example.org") }))
                .send()
                .await
                .unwrap();
            assert_eq!(invited.status(), StatusCode::CREATED);
            let code = invited.json::<Value>().await.unwrap()["code"]
                .as_str()
                .unwrap()
                .to_string();
            for _ in 0..2 {
                let accepted = client
                    .post(format!("{base}/api/v1/invitations/{code}/accept"))
                    .send()
                    .await
                    .unwrap();
                assert!(accepted.status().is_success());
            }
        }));
    }
    for round in 0..6 {
        let client = app.client.clone();
        let base = app.url("");
        let keys = app.keys.clone();
        jobs.push(tokio::spawn(async move {
            let name = ["pa", "pb", "pc", "pd"][round % 4];
            // Overload one proxy, then make another leave and come back.
            let form = [
                ("name", name),
                ("ip", "127.0.0.1"),
                ("port", "9100"),
                ("clients", "9"),
                ("capacity", "3"),
            ];
            keys.register(&client, &base, name, &form).await;
            let other = ["pa", "pb", "pc", "pd"][(round + 1) % 4];
            keys.unregister(&client, &base, other).await;
            let rebalanced = client
                .post(format!("{base}/api/v1/admin/rebalance?dry_run=false"))
                .bearer_auth(crate::helpers::ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(rebalanced.status(), StatusCode::OK);
            let form = [
                ("name", other),
                ("ip", "127.0.0.1"),
                ("port", "9101"),
                ("clients", "0"),
                ("capacity", "3"),
            ];
            keys.register(&client, &base, other, &form).await;
        }));
    }
    for job in jobs {
        job.await.unwrap();
    }
    // Let the queued proxy_changed tasks finish, then check.
    crate::helpers::eventually(Duration::from_secs(15), "the queue to drain", || async {
        let counts = app.admin_json("/api/v1/admin/queue").await;
        (counts["ready"] == 0 && counts["leased"] == 0).then_some(())
    })
    .await;
    app.assert_consistent().await;
    let users = app.admin_json("/api/v1/admin/users?limit=500").await;
    assert_eq!(
        users["users"].as_array().unwrap().len(),
        25,
        "one user per invitation, plus the host"
    );
}

#[tokio::test]
async fn without_any_room_the_provisioning_hook_runs_once() {
    let marker = tempfile::tempdir().unwrap();
    let log = marker.path().join("provisioned");
    let command = format!("echo \"$PROXYFLEET_REASON\" >> {}", log.display());
    let app = spawn_app_with(|c| {
        c.max_clients = 5;
        c.provision_command = Some(command);
    })
    .await;
    // Seven users joined while p1 could carry seven; now it can carry five.
    app.proxy("p1", 9001, &[("clients", "0"), ("capacity", "7")])
        .await;
    for i in 0..7 {
        app.create_user(&format!("u{i}@example.org"), None).await;
    }
    app.proxy("p1", 9001, &[("clients", "7"), ("capacity", "5")])
        .await;
    let plan = app.rebalance(false).await;
    assert!(plan["moves"].as_array().unwrap().is_empty());
    assert_eq!(plan["unplaced"], 2);
    assert!(plan["provisioned"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("p1"));
    let written =
        crate::helpers::eventually(Duration::from_secs(10), "the hook to run", || async {
            // The hook appends a whole line: wait for it, not just for the file.
            std::fs::read_to_string(&log)
                .ok()
                .filter(|text| text.ends_with('\n'))
        })
        .await;
    assert!(
        written.contains("p1 carries 2 clients over its limit of 5"),
        "{written}"
    );
    // While we wait for the new proxy, the next run does not ask again.
    assert!(app.rebalance(false).await["provisioned"]
        .as_array()
        .unwrap()
        .is_empty());
    // It registers itself; the run after that moves users onto it.
    app.proxy("fresh", 9003, &[("clients", "0")]).await;
    assert_eq!(
        app.rebalance(false).await["moves"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// `POST /api/v1/admin/proxies/{name}/action`: the response, asserted 200, as JSON.
async fn act(app: &TestApp, proxy: &str, action: &str) -> Value {
    let path = format!("/api/v1/admin/proxies/{proxy}/action");
    let response = app.admin_post(&path, &json!({ "action": action })).await;
    assert_eq!(response.status(), StatusCode::OK, "{action} {proxy}");
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_drained_or_retired_proxy_stays_out_of_service_until_an_operator_returns_it() {
    for (action, role, back, role_back) in [
        ("drain", "drained", "undrain", "fallback"),
        ("retire", "retired", "reactivate", "standby"),
    ] {
        // p1 holds ten users and reports 10 clients against a limit of 5; p2 is the only
        // other proxy, and the operator takes it out of service.
        let app = spawn_app_with(|c| c.max_clients = 5).await;
        overloaded_fleet(&app).await;
        assert_eq!(act(&app, "p2", action).await["role"], role);

        let plan = app.rebalance(false).await;
        assert_eq!(plan["promoted"], json!([]), "{action}: not promoted");
        assert_eq!(plan["moves"], json!([]), "{action}: nobody moved onto it");
        assert_eq!(
            plan["unplaced"], 5,
            "{action}: the excess has nowhere to go"
        );
        let p2 = || app.admin_json("/api/v1/admin/proxies/p2");
        assert_eq!(p2().await["role"], role);
        // Its own heartbeat claiming a role, or a new user, does not bring it back.
        app.proxy("p2", 9002, &[("role", "fallback")]).await;
        assert_eq!(p2().await["role"], role);
        let (waiting, _, proxies) = app
            .create_user(&format!("{action}@example.org"), None)
            .await;
        assert!(
            proxies.is_empty(),
            "{action}: no room, not even p2: {proxies:?}"
        );

        // Only the operator's action for that state returns it.
        let wrong = if action == "drain" {
            "reactivate"
        } else {
            "undrain"
        };
        let path = "/api/v1/admin/proxies/p2/action";
        let refused = app.admin_post(path, &json!({ "action": wrong })).await;
        assert_eq!(refused.status(), StatusCode::CONFLICT);
        let error: Value = refused.json().await.unwrap();
        assert_eq!(error["error"]["code"], "wrong_role", "{error}");
        assert_eq!(act(&app, "p2", back).await["role"], role_back);
        app.queue_idle().await;
        // Undrained, p2 is a fallback again: the user waiting for one takes a slot at once.
        // Reactivated, it is a standby: the rebalancer promotes it when p1 needs relief.
        let (placed, relieved) = if back == "undrain" { (1, 4) } else { (0, 5) };
        assert_eq!(app.user_proxies(waiting).await.len(), placed, "{action}");
        let plan = app.rebalance(false).await;
        let off_p1 = plan["moves"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["from"] == "p1" && m["to"] == "p2")
            .count();
        assert_eq!(off_p1, relieved, "{action}: {plan}");
        app.assert_consistent().await;
    }
}

#[tokio::test]
async fn a_stale_load_report_moves_its_excess_once_across_runs() {
    // The numbers: ten users on p1, which reports 14 clients against a limit of 10.
    let app = spawn_app_with(|c| {
        c.max_clients = 10;
        c.fallbacks_per_user = 1;
    })
    .await;
    app.proxy("p1", 9001, &[("clients", "0")]).await;
    for i in 0..10 {
        let (_, _, proxies) = app.create_user(&format!("u{i}@example.org"), None).await;
        assert_eq!(proxies, vec!["p1"]);
    }
    app.proxy("p2", 9002, &[("clients", "0")]).await;
    app.proxy("p1", 9001, &[("clients", "14")]).await;
    let off_p1 = |plan: &Value| {
        plan["moves"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["from"] == "p1")
            .count()
    };
    let mut moved = 0;
    for _ in 0..3 {
        // p1 has not reported since: its 14 still stand.
        moved += off_p1(&app.rebalance(false).await);
    }
    assert_eq!(moved, 4, "14 - 10 users, once");
    // A dry run sees the same: nothing left to move.
    assert_eq!(off_p1(&app.rebalance(true).await), 0);

    // p1 reports after the moves: that report is taken as it is (6 users, 12 clients: 2 over),
    // and p2's report of its 4 new users replaces the correction made for it.
    app.clock.advance(Duration::from_secs(1));
    app.proxy("p1", 9001, &[("clients", "12")]).await;
    app.proxy("p2", 9002, &[("clients", "4")]).await;
    assert_eq!(off_p1(&app.rebalance(false).await), 2);
    assert_eq!(off_p1(&app.rebalance(false).await), 0);
    app.assert_consistent().await;
}

/// (user, from, to) of every move of a plan.
fn moves_of(plan: &Value) -> Vec<(u64, Value, Value)> {
    plan["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user"].as_u64().unwrap(),
                m["from"].clone(),
                m["to"].clone(),
            )
        })
        .collect()
}

async fn dry_run_seeded(app: &TestApp, seed: u64) -> Value {
    let path = format!("/api/v1/admin/rebalance?dry_run=true&seed={seed}");
    let response = app.admin_post(&path, &json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_reviewed_dry_run_is_applied_exactly_once_or_refused_when_the_fleet_changed() {
    let app = spawn_app_with(|c| c.max_clients = 5).await;
    overloaded_fleet(&app).await;
    // Three dry runs with nothing changed plan the same five moves.
    let reviewed = app.rebalance(true).await;
    assert_eq!(moves_of(&reviewed).len(), 5);
    for _ in 0..2 {
        assert_eq!(moves_of(&app.rebalance(true).await), moves_of(&reviewed));
    }
    // A seed given makes its own choice reproducible.
    let seeded = moves_of(&dry_run_seeded(&app, 7).await);
    assert_eq!(moves_of(&dry_run_seeded(&app, 7).await), seeded);

    // Applying the reviewed dry run carries out exactly its moves.
    let path = format!("/api/v1/admin/rebalance/plans/{}/apply", reviewed["id"]);
    let response = app.admin_post(&path, &json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let applied: Value = response.json().await.unwrap();
    assert_eq!(applied["dry_run"], false);
    assert_eq!(moves_of(&applied), moves_of(&reviewed));
    assert_eq!(applied["promoted"][0]["proxy"], "p2");
    for (user, _, _) in moves_of(&reviewed) {
        let user = app.admin_json(&format!("/api/v1/admin/users/{user}")).await;
        assert_eq!(user["user"]["proxies"], json!(["p2"]), "{user}");
    }
    // Once: the dry run is gone, and a real plan is not a dry run to apply.
    let again = app.admin_post(&path, &json!({})).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let real = format!("/api/v1/admin/rebalance/plans/{}/apply", applied["id"]);
    let refused = app.admin_post(&real, &json!({})).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "plan_applied");
    app.assert_consistent().await;
}

#[tokio::test]
async fn a_dry_run_whose_target_left_is_refused_as_stale_and_changes_nothing() {
    let app = spawn_app_with(|c| c.max_clients = 5).await;
    let users = overloaded_fleet(&app).await;
    let reviewed = app.rebalance(true).await;
    assert_eq!(moves_of(&reviewed).len(), 5);
    assert_eq!(app.unregister("p2").await.status(), StatusCode::OK);
    let before = configs(&app, &users).await;
    let path = format!("/api/v1/admin/rebalance/plans/{}/apply", reviewed["id"]);
    let response = app.admin_post(&path, &json!({})).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "plan_stale", "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("p2 to promote is gone"), "{message}");
    assert_eq!(configs(&app, &users).await, before, "nothing moved");
}
