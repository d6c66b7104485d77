//! Blocking awareness against the real server: clients (located by the real GeoIP database
//! through a trusted front) and probes report reachability; verdicts follow the thresholds;
//! a proxy blocked in a country leaves the configs of the users there, and only there.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::gateways::geoip_db;
use crate::helpers::{
    client, error_code, eventually, names_of, spawn_app_with, TestApp, ADMIN_TOKEN,
};

/// Addresses the DB-IP lite database places in Iran, and one in Germany.
pub(crate) const IRAN: [&str; 4] = ["2.176.0.1", "78.38.0.1", "5.160.0.1", "185.51.200.1"];
const GERMANY: &str = "46.4.0.1";

pub(crate) async fn located_app(adjust: impl FnOnce(&mut proxyfleet::config::Config)) -> TestApp {
    let db = geoip_db();
    spawn_app_with(move |c| {
        c.geoip_db = Some(db);
        // The tests speak through a trusted front that names the client's address.
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        adjust(c);
    })
    .await
}

/// `GET /api/v1/config` from `ip`; the status, ETag and body.
pub(crate) async fn config_from(
    app: &TestApp,
    token: &str,
    ip: &str,
) -> (StatusCode, String, Value) {
    let response = client()
        .get(app.url("/api/v1/config"))
        .bearer_auth(token)
        .header("x-forwarded-for", ip)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    (status, etag, response.json().await.unwrap())
}

/// The proxy names a config lists.
fn listed(config: &Value) -> Vec<String> {
    names_of(&config["proxies"])
}

async fn report_from(
    app: &TestApp,
    token: &str,
    ip: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = client()
        .post(app.url("/api/v1/reports"))
        .bearer_auth(token)
        .json(body);
    if let Some(ip) = ip {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

/// Reports `proxy` unreachable from `ip`, expecting 200; the answer.
async fn unreachable(app: &TestApp, token: &str, ip: &str, proxy: &str) -> Value {
    let body = json!({ "reports": [{ "proxy": proxy, "reachable": false, "error": "timeout" }] });
    let response = report_from(app, token, Some(ip), &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn verdict(app: &TestApp, proxy: &str, country: &str) -> Value {
    let all = app
        .admin_json(&format!("/api/v1/admin/proxies/{proxy}/blocking"))
        .await;
    all["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["country"] == country)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Users on `proxy`, each seen in Iran (their config fetched from there); returns tokens.
async fn iranian_users(app: &TestApp, proxy: &str, count: usize) -> Vec<(u64, String)> {
    let mut users = Vec::new();
    for i in 0..count {
        let (id, token, _) = app.create_user(&format!("ir{i}@example.org"), None).await;
        app.set_proxies(id, &[proxy]).await;
        let (status, _, config) = config_from(app, &token, IRAN[i % IRAN.len()]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(listed(&config).contains(&proxy.to_string()));
        users.push((id, token));
    }
    users
}

#[tokio::test]
async fn reports_become_a_verdict_only_past_the_thresholds_and_one_account_never_suffices() {
    let app = located_app(|_| {}).await;
    app.proxy("p1", 9_801, &[("role", "fallback")]).await;
    let users = iranian_users(&app, "p1", 3).await;
    app.proxy("other", 9_802, &[("role", "fallback")]).await;

    // One account, however often it reports: suspected, never blocked.
    for _ in 0..5 {
        let answer = unreachable(&app, &users[0].1, IRAN[0], "p1").await;
        assert_eq!(
            (answer["country"].clone(), answer["source"].clone()),
            (json!("IR"), json!("located"))
        );
    }
    let suspected = verdict(&app, "p1", "IR").await;
    assert_eq!(suspected["state"], "suspected", "{suspected}");
    assert_eq!(suspected["score"]["reporters"], 1);
    assert_eq!(suspected["reports"][0]["error"], "timeout");

    // A proxy the account was never given is not its to report.
    let not_mine = report_from(
        &app,
        &users[0].1,
        Some(IRAN[0]),
        &json!({ "reports": [{ "proxy": "other", "reachable": false }] }),
    )
    .await;
    let not_mine: Value = not_mine.json().await.unwrap();
    assert_eq!(not_mine["counted"], 0);
    assert_eq!(
        not_mine["ignored"],
        json!([{ "proxy": "other", "why": "not_given" }])
    );
    assert_eq!(verdict(&app, "other", "IR").await, Value::Null);

    // A second account: still suspected (weight 2 of 3); a third decides.
    unreachable(&app, &users[1].1, IRAN[1], "p1").await;
    assert_eq!(verdict(&app, "p1", "IR").await["state"], "suspected");
    let third = unreachable(&app, &users[2].1, IRAN[2], "p1").await;
    assert_eq!(
        third["changed"],
        json!([{ "proxy": "p1", "country": "IR", "from": "suspected", "to": "blocked" }])
    );
    let listed = app.admin_json("/api/v1/admin/blocking?state=blocked").await;
    assert_eq!(listed["verdicts"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["verdicts"][0]["proxy"], "p1");
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("proxyfleet_proxy_blocked{country=\"IR\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        verdict(&app, "p1", "DE").await,
        Value::Null,
        "blocked in Iran says nothing of Germany"
    );
}

#[tokio::test]
async fn bad_reports_are_refused_and_change_nothing() {
    let app = located_app(|_| {}).await;
    app.proxy("p1", 9_811, &[("role", "fallback")]).await;
    let users = iranian_users(&app, "p1", 1).await;
    let token = &users[0].1;
    let no_token = client()
        .post(app.url("/api/v1/reports"))
        .json(&json!({ "reports": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let entry = json!({ "proxy": "p1", "reachable": false });
    let too_many = json!({ "reports": vec![entry.clone(); 51] });
    let long_error =
        json!({ "reports": [{ "proxy": "p1", "reachable": false, "error": "x".repeat(201) }] });
    let unknown_field = json!({ "reports": [entry.clone()], "user": 1 });
    let bad_country = json!({ "country": "Iran", "reports": [entry.clone()] });
    for (body, ip, code) in [
        (&too_many, Some(IRAN[0]), "too_many_entries"),
        (&long_error, Some(IRAN[0]), "invalid_error"),
        (&bad_country, None, "invalid_country"),
        (
            &json!({ "reports": [entry.clone()] }),
            None,
            "country_unknown",
        ),
    ] {
        let response = report_from(&app, token, ip, body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{code}"
        );
        assert_eq!(error_code(response).await, code);
    }
    let refused = report_from(&app, token, Some(IRAN[0]), &unknown_field).await;
    assert!(refused.status().is_client_error());
    assert_eq!(
        verdict(&app, "p1", "IR").await,
        Value::Null,
        "nothing recorded"
    );

    // GeoIP cannot place loopback: a declared country counts, for less.
    let declared = report_from(
        &app,
        token,
        None,
        &json!({ "country": "ir", "reports": [entry] }),
    )
    .await;
    assert_eq!(declared.status(), StatusCode::OK);
    let declared: Value = declared.json().await.unwrap();
    assert_eq!(
        (declared["country"].clone(), declared["source"].clone()),
        (json!("IR"), json!("declared"))
    );
    assert_eq!(verdict(&app, "p1", "IR").await["score"]["weight"], 0.5);
}

#[tokio::test]
async fn a_blocked_proxy_leaves_the_configs_of_the_users_in_that_country_only() {
    let app = located_app(|_| {}).await;
    app.proxy("p1", 9_821, &[("role", "fallback")]).await;
    let users = iranian_users(&app, "p1", 3).await;
    let (german, german_token, _) = app.create_user("de@example.org", None).await;
    app.set_proxies(german, &["p1"]).await;
    assert!(listed(&config_from(&app, &german_token, GERMANY).await.2).contains(&"p1".into()));
    // Room elsewhere for the users who will leave p1.
    app.proxy("p2", 9_822, &[("role", "fallback")]).await;
    // Days on, they have all held p1 for long: none of them is on probation after its block.
    // The proxies heartbeat meanwhile.
    app.clock.advance(Duration::from_secs(2 * 86_400));
    app.proxy("p1", 9_821, &[("role", "fallback")]).await;
    app.proxy("p2", 9_822, &[("role", "fallback")]).await;

    // An Iranian user waits for its config to change.
    let (_, etag, _) = config_from(&app, &users[0].1, IRAN[0]).await;
    let waiting_token = users[0].1.clone();
    let url = app.url("/api/v1/config?wait=30");
    let long_poll = tokio::spawn(async move {
        let response = client()
            .get(url)
            .bearer_auth(waiting_token)
            .header("x-forwarded-for", IRAN[0])
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    });
    app.long_polls_waiting(1).await;

    // A probe in Iran (weight 2), then a user: blocked (2 + 1 >= 3, all failing).
    let probe = app
        .admin_post(
            "/api/v1/admin/probes",
            &json!({ "name": "tehran-1", "country": "IR" }),
        )
        .await;
    assert_eq!(probe.status(), StatusCode::CREATED);
    let probe: Value = probe.json().await.unwrap();
    let probe_token = probe["token"].as_str().unwrap();
    let by_probe = report_from(
        &app,
        probe_token,
        None,
        &json!({ "reports": [{ "proxy": "p1", "reachable": false }] }),
    )
    .await;
    assert_eq!(by_probe.status(), StatusCode::OK);
    let by_probe: Value = by_probe.json().await.unwrap();
    assert_eq!(by_probe["source"], "probe");
    assert_eq!(verdict(&app, "p1", "IR").await["state"], "suspected");
    unreachable(&app, &users[1].1, IRAN[1], "p1").await;
    assert_eq!(verdict(&app, "p1", "IR").await["state"], "blocked");

    // The long-poll wakes with a config without p1.
    let (status, woken) = tokio::time::timeout(Duration::from_secs(30), long_poll)
        .await
        .expect("the long-poll wakes")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!listed(&woken).contains(&"p1".into()), "{woken}");
    for (id, token) in &users {
        eventually(Duration::from_secs(30), "the user to leave p1", || async {
            (app.user_proxies(*id).await == vec!["p2"]).then_some(())
        })
        .await;
        let (_, _, config) = config_from(&app, token, IRAN[0]).await;
        assert!(!listed(&config).contains(&"p1".into()), "{config}");
        let detail = app.admin_json(&format!("/api/v1/admin/users/{id}")).await;
        assert!(
            detail["history"]
                .to_string()
                .contains("proxy p1 is blocked in IR"),
            "{detail}"
        );
    }
    // Germany keeps it.
    assert_eq!(app.user_proxies(german).await, vec!["p1"]);
    // The registry's history shows the block beside arrivals and departures.
    let events = app
        .admin_json("/api/v1/admin/registry/events?name=p1")
        .await;
    let newest = &events["events"][0];
    assert_eq!(
        (&newest["kind"], &newest["country"]),
        (&json!("blocked"), &json!("IR")),
        "{events}"
    );
    assert!(listed(&config_from(&app, &german_token, GERMANY).await.2).contains(&"p1".into()));

    // A revoked probe's token stops working.
    let id = probe["id"].as_u64().unwrap();
    let revoked = app
        .send_as(
            reqwest::Method::DELETE,
            &format!("/api/v1/admin/probes/{id}"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let refused = report_from(
        &app,
        probe_token,
        None,
        &json!({ "reports": [{ "proxy": "p2", "reachable": false }] }),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let probes = app.admin_json("/api/v1/admin/probes").await;
    assert!(probes["probes"][0]["revoked_at"].is_u64(), "{probes}");
    assert!(
        probes["probes"][0].get("token").is_none(),
        "shown once only"
    );
    app.assert_consistent().await;
}

/// Users `names` on `proxy`, seen in Iran; returns (id, token) each.
async fn seen_in_iran(app: &TestApp, proxy: &str, names: &[&str]) -> Vec<(u64, String)> {
    let mut users = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (id, token, _) = app.create_user(&format!("{name}@example.org"), None).await;
        app.set_proxies(id, &[proxy]).await;
        let (status, _, _) = config_from(app, &token, IRAN[i % IRAN.len()]).await;
        assert_eq!(status, StatusCode::OK);
        users.push((id, token));
    }
    users
}

/// Blocks `proxy` in Iran: a probe there and one user who was given it report failures.
async fn block_in_iran(app: &TestApp, probe_token: &str, user_token: &str, proxy: &str) {
    let failed = json!({ "reports": [{ "proxy": proxy, "reachable": false }] });
    let by_probe = report_from(app, probe_token, None, &failed).await;
    assert_eq!(by_probe.status(), StatusCode::OK);
    let answer = unreachable(app, user_token, IRAN[3], proxy).await;
    let now = verdict(app, proxy, "IR").await;
    assert_eq!(now["state"], "blocked", "{now} after {answer}");
    app.queue_idle().await;
}

#[tokio::test]
async fn the_user_behind_two_blocks_is_quarantined_and_the_others_are_not() {
    let app = located_app(|_| {}).await;
    let probe = app
        .admin_post(
            "/api/v1/admin/probes",
            &json!({ "name": "ir", "country": "IR" }),
        )
        .await;
    let probe: Value = probe.json().await.unwrap();
    let probe_token = probe["token"].as_str().unwrap().to_string();

    // The agent shares "first" with three users and "second" with three others (each group
    // made while only its proxy takes users, so nobody else was ever given it).
    app.proxy("first", 9_831, &[("role", "fallback"), ("capacity", "4")])
        .await;
    let first = seen_in_iran(&app, "first", &["agent", "h1", "h2", "h3"]).await;
    let (agent, agent_token) = first[0].clone();
    // Full with its three: the users who leave "first" go elsewhere.
    app.proxy("second", 9_832, &[("role", "fallback"), ("capacity", "3")])
        .await;
    let second = seen_in_iran(&app, "second", &["n1", "n2", "n3"]).await;
    app.proxy("spare", 9_833, &[("role", "fallback"), ("capacity", "100")])
        .await;
    // Two days on: everyone has held its proxy for long, so each block's blame is shared
    // evenly among those who had it (a recent one would take most of it).
    app.clock.advance(Duration::from_secs(2 * 86_400));
    app.proxy("first", 9_831, &[("role", "fallback"), ("capacity", "4")])
        .await;
    app.proxy("second", 9_832, &[("role", "fallback"), ("capacity", "3")])
        .await;
    app.proxy("spare", 9_833, &[("role", "fallback"), ("capacity", "100")])
        .await;
    block_in_iran(&app, &probe_token, &first[1].1, "first").await;
    let after_one = app.admin_json("/api/v1/admin/suspects").await;
    assert_eq!(
        after_one["suspects"].as_array().unwrap().len(),
        4,
        "{after_one}"
    );
    assert!(after_one["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["score"] == 0.25 && s["quarantined"] == false));

    app.set_proxies(agent, &["second"]).await;
    block_in_iran(&app, &probe_token, &second[0].1, "second").await;

    // The agent was given "second" just before its block: it weighs 1 against 0.1 for each
    // of the three who had it for days, so 1/4 + 1/1.3, past 1/3: quarantined; every other
    // user was behind one block only, for 1/4 or 0.1/1.3.
    let suspects = app.admin_json("/api/v1/admin/suspects").await;
    let ranked = suspects["suspects"].as_array().unwrap();
    assert_eq!(ranked[0]["user"], agent, "{suspects}");
    let score = ranked[0]["score"].as_f64().unwrap();
    assert!((score - (0.25 + 1.0 / 1.3)).abs() < 1e-9, "{score}");
    assert_eq!(ranked[0]["quarantined"], true);
    let behind: Vec<&str> = ranked[0]["blames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["proxy"].as_str().unwrap())
        .collect();
    assert_eq!(behind, ["first", "second"]);
    assert!(ranked[1..].iter().all(|s| s["quarantined"] == false
        && [0.25, 0.1 / 1.3]
            .iter()
            .any(|want| (s["score"].as_f64().unwrap() - want).abs() < 1e-9)));
    let detail = app
        .admin_json(&format!("/api/v1/admin/users/{agent}"))
        .await;
    assert!(
        detail["suspicion"]["why"]
            .as_str()
            .unwrap()
            .starts_with("quarantined"),
        "{detail}"
    );
    assert_eq!(detail["country"], "IR");

    // Quarantined, and on probation: it lost the blocked proxy and got no other, and it
    // cannot invite; the honest users of "second", who had it for long, were placed again.
    assert!(detail["trust"]["probation_until"].is_u64(), "{detail}");
    assert_eq!(app.user_proxies(agent).await, Vec::<String>::new());
    for (id, _) in &second {
        assert_eq!(app.user_proxies(*id).await, vec!["spare"]);
    }
    let friend = json!({ "email": "friend@example.org" });
    let invite_a_friend = || app.user_post(&agent_token, "/api/v1/invitations", &friend);
    let invite = invite_a_friend().await;
    assert_eq!(invite.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(invite).await, "user_quarantined");

    // An admin clears it: the score is zero, it is placed again and may invite.
    let cleared = app.clear_suspicion(agent).await;
    assert_eq!(
        (cleared["score"].clone(), cleared["quarantined"].clone()),
        (json!(0.0), json!(false))
    );
    eventually(
        Duration::from_secs(30),
        "the agent to be placed again",
        || async { (app.user_proxies(agent).await == vec!["spare"]).then_some(()) },
    )
    .await;
    assert_eq!(invite_a_friend().await.status(), StatusCode::CREATED);
    app.assert_consistent().await;
}

#[tokio::test]
async fn the_mirror_carries_blocks_and_an_edge_serves_the_config_of_the_country() {
    let redis = crate::redis_support::RedisServer::start();
    let url = redis.url();
    let app = located_app(move |c| c.redis_url = Some(url)).await;
    app.proxy("p1", 9_841, &[("role", "fallback")]).await;
    let users = iranian_users(&app, "p1", 1).await;
    let (german, german_token, _) = app.create_user("de@example.org", None).await;
    app.set_proxies(german, &["p1"]).await;
    config_from(&app, &german_token, GERMANY).await;
    app.proxy("p2", 9_842, &[("role", "fallback")]).await;
    app.block_by_probes("p1", "IR").await;
    assert_eq!(verdict(&app, "p1", "IR").await["state"], "blocked");
    app.queue_idle().await;
    crate::redis_support::caught_up(&app.url(""), Duration::from_secs(30)).await;
    let mut conn = redis.connection().await;
    let blocked = crate::redis_support::members(&mut conn, "proxyfleet:blocked:IR").await;
    assert_eq!(blocked.into_iter().collect::<Vec<_>>(), ["p1"]);

    // The edge serves each user the config of where it was last seen.
    let edge = crate::edge::start_edge(&redis).await;
    let from_edge = |token: String| {
        let url = format!("{}/api/v1/config", edge.base);
        async move {
            let response = client().get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            listed(&response.json::<Value>().await.unwrap())
        }
    };
    assert!(!from_edge(users[0].1.clone())
        .await
        .contains(&"p1".to_string()));
    assert!(from_edge(german_token.clone())
        .await
        .contains(&"p1".to_string()));
    crate::redis_support::assert_equals_a_fresh_copy(&app.url(""), &redis).await;
}
