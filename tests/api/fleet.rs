//! Users, the trust graph, invitations and fallback assignment.

use std::time::Duration;

use proxyfleet::config::AssignmentPolicy;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{error_code, eventually, names_of, spawn_app, spawn_app_with, TestApp};

async fn invite_and_accept(app: &TestApp, inviter_token: &str, email: &str) -> Value {
    let response = app
        .client
        .post(app.url("/api/v1/invitations"))
        .bearer_auth(inviter_token)
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let code = response.json::<Value>().await.unwrap()["code"]
        .as_str()
        .unwrap()
        .to_string();
    let accepted = app
        .client
        .post(app.url(&format!("/api/v1/invitations/{code}/accept")))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::CREATED);
    accepted.json().await.unwrap()
}

#[tokio::test]
async fn trust_policy_reaches_the_closest_ancestor_with_a_proxy() {
    // Invitees start one level below their inviters (a fleet whose invitations vouch), so
    // invitees invite in turn.
    let app = spawn_app_with(|c| c.trust.invitee_max_level = 3).await;
    app.proxy("pa", 9001, &[("capacity", "1000")]).await;
    // Four levels: root -> one -> two -> (the invitee).
    let (root, _, root_proxies) = app.create_user("root@example.org", None).await;
    assert_eq!(root_proxies, vec!["pa"]);
    let (one, _, _) = app.create_user("one@example.org", Some(root)).await;
    let (two, two_token, _) = app.create_user("two@example.org", Some(one)).await;
    // The inviter and its parent lose their proxies; a roomier proxy appears.
    app.set_proxies(one, &[]).await;
    app.set_proxies(two, &[]).await;
    app.proxy("pz", 9002, &[("capacity", "100000")]).await;

    let invitee = invite_and_accept(&app, &two_token, "three@example.org").await;
    assert_eq!(
        names_of(&invitee["proxies"]),
        vec!["pa"],
        "the root's proxy, not the least loaded pz"
    );
    assert_eq!(invitee["invited_by"], two);
    let token = invitee["token"].as_str().unwrap();
    let (status, _, config) = app.config(token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names_of(&config["proxies"]), vec!["pa"]);

    // With nobody up the chain holding a proxy, the best for the invitee's trust level: two
    // is at level 2 (root 4, one 3), so its invitee is at 1, and pa, which level 1 already
    // knows, comes before the fresh pz (fresh proxies go to levels 3 and up first).
    app.set_proxies(root, &[]).await;
    let orphan = invite_and_accept(&app, &two_token, "four@example.org").await;
    assert_eq!(names_of(&orphan["proxies"]), vec!["pa"]);
    let (_, _, trusted) = app.create_user("five@example.org", None).await;
    assert_eq!(
        trusted,
        vec!["pz"],
        "a level-4 account gets the fresh proxy"
    );
    app.assert_consistent().await;
}

#[tokio::test]
async fn least_loaded_policy_ignores_the_trust_graph() {
    let app = spawn_app_with(|c| c.assignment_policy = AssignmentPolicy::LeastLoaded).await;
    app.proxy("busy", 9001, &[("capacity", "100"), ("clients", "60")])
        .await;
    let (root, _, proxies) = app.create_user("root@example.org", None).await;
    assert_eq!(proxies, vec!["busy"]);
    app.proxy("calm", 9002, &[("capacity", "100"), ("clients", "10")])
        .await;
    let (_, _, proxies) = app.create_user("child@example.org", Some(root)).await;
    assert_eq!(proxies, vec!["calm"]);
}

#[tokio::test]
async fn a_second_fallback_when_configured() {
    let app = spawn_app_with(|c| c.fallbacks_per_user = 2).await;
    app.proxy("pa", 9001, &[]).await;
    app.proxy("pb", 9002, &[]).await;
    let (_, token, proxies) = app.create_user("two@example.org", None).await;
    assert_eq!(proxies.len(), 2);
    let (_, _, config) = app.config(&token).await;
    assert_eq!(names_of(&config["proxies"]).len(), 2);
}

#[tokio::test]
async fn accepting_an_invitation_twice_or_concurrently_makes_one_user() {
    let app = spawn_app().await;
    app.proxy("pa", 9001, &[]).await;
    let (_, token, _) = app.create_user("host@example.org", None).await;
    let response = app
        .client
        .post(app.url("/api/v1/invitations"))
        .bearer_auth(&token)
        .json(&json!({ "email": "Guest@Example.org" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let code = response.json::<Value>().await.unwrap()["code"]
        .as_str()
        .unwrap()
        .to_string();

    let mut accepts = Vec::new();
    for _ in 0..12 {
        let client = app.client.clone();
        let url = app.url(&format!("/api/v1/invitations/{code}/accept"));
        accepts.push(tokio::spawn(async move {
            let response = client.post(url).send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }));
    }
    let mut created = 0;
    let mut ids = Vec::new();
    for accept in accepts {
        let (status, body) = accept.await.unwrap();
        match status {
            StatusCode::CREATED => {
                created += 1;
                assert!(body["token"].as_str().unwrap().starts_with("pfu_"));
            }
            StatusCode::OK => assert!(body["token"].is_null() && body["already_accepted"] == true),
            other => panic!("accept answered {other}"),
        }
        ids.push(body["id"].as_u64().unwrap());
    }
    assert_eq!(created, 1, "exactly one accept creates the user");
    ids.dedup();
    assert_eq!(ids.len(), 1, "every accept names the same user");
    let listed = app.admin_json("/api/v1/admin/users?q=guest@").await;
    assert_eq!(listed["users"].as_array().unwrap().len(), 1);
    assert_eq!(listed["users"][0]["email"], "guest@example.org");

    // The invitation mail waits in the outbox.
    let outbox = eventually(
        Duration::from_secs(10),
        "the held invitation mail",
        || async {
            let outbox = app.admin_json("/api/v1/admin/mail/outbox").await;
            let invitation = outbox["mails"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["template"] == "invitation")
                .cloned();
            invitation.filter(|m| m["last_error"].is_string())
        },
    )
    .await;
    assert_eq!(outbox["to"], "guest@example.org");
    assert!(outbox["last_error"].as_str().unwrap().starts_with("held"));
}

/// Concurrent sign-ups share transactions (`SIGN_UPS_PER_TRANSACTION`), but each is answered
/// for itself: of 30 sent at once, the 10 repeats of an address (in another case) and the 5 that
/// name no existing inviter are refused, and only they; every other one is created with its own
/// token, proxies and audit entry.
#[tokio::test]
async fn concurrent_sign_ups_are_each_answered_on_their_own() {
    let app = spawn_app().await;
    app.register_ok("p1", 7001).await;
    let (inviter, _, _) = app.create_user("inviter@example.org", None).await;
    let mut sent = Vec::new();
    for i in 0..10 {
        sent.push((format!("user{i}@example.org"), None));
        sent.push((format!("USER{i}@example.org"), None));
        sent.push((format!("invitee{i}@example.org"), Some(inviter)));
    }
    for i in 0..5 {
        sent.push((format!("orphan{i}@example.org"), Some(inviter + 1000)));
    }
    let answers = futures::future::join_all(sent.iter().map(|(email, invited_by)| {
        let body = json!({ "email": email, "invited_by": invited_by });
        let app = &app;
        async move { app.admin_post("/api/v1/admin/users", &body).await }
    }))
    .await;
    let mut created = std::collections::BTreeMap::new();
    let mut taken = 0;
    let mut orphans = 0;
    for ((email, invited_by), answer) in sent.iter().zip(answers) {
        match answer.status() {
            StatusCode::CREATED => {
                let body: Value = answer.json().await.unwrap();
                assert_eq!(body["email"], email.to_lowercase(), "{body}");
                assert_eq!(body["invited_by"], json!(invited_by), "{body}");
                assert_eq!(names_of(&body["proxies"]), ["p1"], "{body}");
                assert!(body["token"].as_str().unwrap().starts_with("pfu_"));
                let previous = created.insert(email.to_lowercase(), body["id"].as_u64().unwrap());
                assert!(previous.is_none(), "{email} created twice");
            }
            StatusCode::CONFLICT => {
                assert_eq!(error_code(answer).await, "email_taken");
                taken += 1;
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(invited_by, &Some(inviter + 1000));
                assert_eq!(error_code(answer).await, "unknown_inviter");
                orphans += 1;
            }
            other => panic!("{email}: {other}"),
        }
    }
    // Either case of each address may have come first; exactly one of the two was created.
    assert_eq!((created.len(), taken, orphans), (20, 10, 5));
    let ids: std::collections::BTreeSet<u64> = created.values().copied().collect();
    assert_eq!(ids.len(), 20, "every user has an id of its own");
    let page = app.admin_json("/api/v1/admin/users?limit=100").await;
    assert_eq!(page["users_total"], 21);
    // One audit entry per answered request, refusals included.
    let trail = app.admin_json("/admin/api/audit?q=users&limit=100").await;
    let entries = trail["entries"].as_array().unwrap();
    let statuses = |code: u64| entries.iter().filter(|e| e["status"] == code).count();
    assert_eq!(
        (statuses(201), statuses(409), statuses(422)),
        (21, 10, 5),
        "{trail}"
    );
    app.assert_consistent().await;
}

#[tokio::test]
async fn user_input_errors_and_auth() {
    let app = spawn_app().await;
    let bad = app
        .admin_post("/api/v1/admin/users", &json!({ "email": "not-an-email" }))
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(bad).await, "invalid_email");
    let (id, token, _) = app.create_user("Dup@example.org", None).await;
    let dup = app
        .admin_post(
            "/api/v1/admin/users",
            &json!({ "email": "dup@EXAMPLE.org" }),
        )
        .await;
    assert_eq!(dup.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(dup).await, "email_taken");
    let orphan = app
        .admin_post(
            "/api/v1/admin/users",
            &json!({ "email": "o@example.org", "invited_by": 999 }),
        )
        .await;
    assert_eq!(orphan.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = app.admin_get("/api/v1/admin/users/999").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let missing = app
        .send_as(Method::POST, "/api/v1/invitations/nope/accept", None)
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let no_token = app.send_as(Method::GET, "/api/v1/config", None).await;
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let bad_token = app
        .send_as(Method::GET, "/api/v1/config", Some("pfu_nope"))
        .await;
    assert_eq!(bad_token.status(), StatusCode::UNAUTHORIZED);
    let invite_no_token = app
        .client
        .post(app.url("/api/v1/invitations"))
        .json(&json!({"email": "x@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(invite_no_token.status(), StatusCode::UNAUTHORIZED);

    // Disabling a user ends its token and frees its proxies.
    assert_eq!(app.config(&token).await.0, StatusCode::OK);
    let disabled = app
        .admin_post(&format!("/api/v1/admin/users/{id}/disable"), &json!({}))
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(app.config(&token).await.0, StatusCode::UNAUTHORIZED);
    let page = app.admin_json("/api/v1/admin/users?limit=10").await;
    assert_eq!(page["users"][0]["status"], "disabled");
}

#[tokio::test]
async fn config_etag_and_a_departing_proxy() {
    let app = spawn_app().await;
    app.proxy("pa", 9001, &[]).await;
    let (id, token, _) = app.create_user("c@example.org", None).await;
    let (status, etag, config) = app.config(&token).await;
    assert_eq!(status, StatusCode::OK);
    let first_version = config["version"].as_u64().unwrap();
    assert_eq!(names_of(&config["proxies"]), vec!["pa"]);
    assert!(config["poll_after_secs"].as_u64().unwrap() > 0);
    let etag = etag.unwrap();
    let again = app
        .client
        .get(app.url("/api/v1/config"))
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // The proxy leaves: it is gone from the config at once, and the version moves on.
    assert_eq!(app.unregister("pa").await.status(), StatusCode::OK);
    let (_, new_etag, config) = app.config(&token).await;
    assert!(names_of(&config["proxies"]).is_empty());
    assert_ne!(new_etag.unwrap(), etag);
    assert_ne!(config["version"].as_u64().unwrap(), first_version);
    // The fleet catches up: the departed proxy is unlinked from the user (a queued task).
    eventually(
        Duration::from_secs(10),
        "the user to lose the proxy",
        || async { app.user_proxies(id).await.is_empty().then_some(()) },
    )
    .await;
    // A new proxy enrols: the user waiting for one gets it at once, without a rebalance.
    app.proxy("pb", 9002, &[]).await;
    eventually(Duration::from_secs(10), "the user placed on pb", || async {
        (app.user_proxies(id).await == ["pb"]).then_some(())
    })
    .await;
    assert_eq!(names_of(&app.config(&token).await.2["proxies"]), vec!["pb"]);
    let detail = app.admin_json(&format!("/api/v1/admin/users/{id}")).await;
    let history: Vec<&Value> = detail["history"].as_array().unwrap().iter().collect();
    assert_eq!(history.len(), 3, "sign-up, proxy left, new fallback");
    assert_eq!(history[2]["proxies"], json!(["pb"]));
    app.assert_consistent().await;
}

#[tokio::test]
async fn a_disabled_user_gets_nothing_until_enabled_again() {
    use reqwest::StatusCode;
    use serde_json::json;
    let app = crate::helpers::spawn_app().await;
    app.proxy("one", 9001, &[]).await;
    let (id, token, _) = app.create_user("gone@example.org", None).await;
    let disabled = app
        .admin_post(&format!("/api/v1/admin/users/{id}/disable"), &json!({}))
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);

    // No Pro gift, no move: 409 user_disabled, and the user is unchanged.
    let before = app.admin_json(&format!("/api/v1/admin/users/{id}")).await;
    let gift = app
        .admin_post(
            &format!("/api/v1/admin/users/{id}/pro"),
            &json!({ "days": 30 }),
        )
        .await;
    assert_eq!(gift.status(), StatusCode::CONFLICT);
    assert_eq!(crate::helpers::error_code(gift).await, "user_disabled");
    let moved = app
        .client
        .put(app.url(&format!("/api/v1/admin/users/{id}/proxies")))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .json(&json!({ "proxies": ["one"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::CONFLICT);
    let after = app.admin_json(&format!("/api/v1/admin/users/{id}")).await;
    assert_eq!(before["user"], after["user"]);
    // Its token does not work.
    let (status, _, _) = app.config(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Enabled: the token works again; enabling twice is a conflict.
    let enabled = app
        .admin_post(&format!("/api/v1/admin/users/{id}/enable"), &json!({}))
        .await;
    assert_eq!(enabled.status(), StatusCode::OK);
    let (status, _, _) = app.config(&token).await;
    assert_eq!(status, StatusCode::OK);
    let again = app
        .admin_post(&format!("/api/v1/admin/users/{id}/enable"), &json!({}))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let gift = app
        .admin_post(
            &format!("/api/v1/admin/users/{id}/pro"),
            &json!({ "days": 30 }),
        )
        .await;
    assert_eq!(gift.status(), StatusCode::OK);
}

/// `proxyfleet_users_unplaced` as `/metrics` shows it.
async fn unplaced_in_metrics(app: &TestApp) -> Option<u64> {
    let text = app.metrics_text().await;
    text.lines()
        .find_map(|line| line.strip_prefix(r#"proxyfleet_users_unplaced{reason="no_room"} "#))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn users_without_room_are_counted_then_placed_as_soon_as_a_proxy_enrols() {
    // The issue's numbers: eight users, one proxy with room for five.
    let app = spawn_app_with(|c| {
        c.max_clients = 5;
        c.fallbacks_per_user = 1;
        c.rebalance_interval_secs = 0;
    })
    .await;
    app.proxy("p1", 9001, &[]).await;
    let mut waiting = Vec::new();
    for i in 0..8 {
        let (id, _, proxies) = app.create_user(&format!("u{i}@example.org"), None).await;
        match proxies.as_slice() {
            [] => waiting.push(id),
            [only] => assert_eq!(only, "p1"),
            more => panic!("one fallback each: {more:?}"),
        }
    }
    assert_eq!(waiting.len(), 3, "p1 is never past its limit");
    let summary = app.admin_json("/api/v1/admin/summary").await;
    assert_eq!(summary["users_unplaced"], 3);
    assert_eq!(unplaced_in_metrics(&app).await, Some(3));

    // A proxy enrols: they are placed at once, without any rebalance (the periodic one is off).
    app.proxy("p2", 9002, &[]).await;
    eventually(
        Duration::from_secs(10),
        "the waiting users placed",
        || async {
            for id in &waiting {
                if app.user_proxies(*id).await != ["p2"] {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    assert_eq!(
        app.admin_json("/api/v1/admin/summary").await["users_unplaced"],
        0
    );
    assert_eq!(unplaced_in_metrics(&app).await, Some(0));
    app.assert_consistent().await;
}

#[tokio::test]
async fn a_disabled_user_frees_a_slot_that_a_waiting_user_takes() {
    let app = spawn_app_with(|c| {
        c.max_clients = 1;
        c.fallbacks_per_user = 1;
        c.rebalance_interval_secs = 0;
    })
    .await;
    app.proxy("p1", 9001, &[]).await;
    let (first, _, proxies) = app.create_user("first@example.org", None).await;
    assert_eq!(proxies, ["p1"]);
    let (second, _, proxies) = app.create_user("second@example.org", None).await;
    assert!(proxies.is_empty());
    let path = format!("/api/v1/admin/users/{first}/disable");
    assert_eq!(
        app.admin_post(&path, &json!({})).await.status(),
        StatusCode::OK
    );
    eventually(Duration::from_secs(10), "the slot taken", || async {
        (app.user_proxies(second).await == ["p1"]).then_some(())
    })
    .await;
    app.assert_consistent().await;
}

#[tokio::test]
async fn two_hundred_invitees_spread_over_five_proxies_none_past_its_limit() {
    let app = spawn_app_with(|c| {
        c.max_clients = 40;
        c.fallbacks_per_user = 1;
        c.assignment_policy = AssignmentPolicy::Trust;
        c.rebalance_interval_secs = 0;
    })
    .await;
    for i in 0..5 {
        app.proxy(&format!("p{i}"), 9000 + i, &[]).await;
    }
    // A small invitation tree: one root, each user inviting the next few.
    let (root, _, _) = app.create_user("root@example.org", None).await;
    let mut ids = vec![root];
    for i in 1..200 {
        let inviter = ids[(i - 1) / 3];
        let (id, _, proxies) = app
            .create_user(&format!("i{i}@example.org"), Some(inviter))
            .await;
        assert_eq!(proxies.len(), 1, "invitee {i} placed");
        ids.push(id);
    }
    let mut per_proxy = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        for proxy in app.user_proxies(*id).await {
            *per_proxy.entry(proxy).or_default() += 1;
        }
    }
    assert_eq!(per_proxy.len(), 5, "{per_proxy:?}");
    assert!(per_proxy.values().all(|n| *n == 40), "{per_proxy:?}");
    app.assert_consistent().await;
}

/// The ids `GET /api/v1/admin/users?{query}` lists, and its `next_after`.
async fn found(app: &TestApp, query: &str) -> (Vec<u64>, Option<u64>) {
    let page = app
        .admin_json(&format!("/api/v1/admin/users?{query}"))
        .await;
    let ids = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_u64().unwrap())
        .collect();
    (ids, page["next_after"].as_u64())
}

/// The admin's user search: text anywhere in the email or a device's name, the id, status,
/// Pro, level and proxy, each alone and together; paged by id; odd input refused.
#[tokio::test]
async fn users_are_found_by_text_status_pro_level_and_proxy() {
    let app = spawn_app().await;
    app.proxy("fb1", 9001, &[]).await;
    app.proxy("fb2", 9002, &[]).await;
    let (ana, _, _) = app.create_user("ana@example.org", None).await;
    let (bob, bob_token, _) = app.create_user("bob@corp.example", None).await;
    let (carol, _, _) = app.create_user("carol@example.org", None).await;
    let made = app
        .admin_post(
            "/api/v1/admin/users",
            &serde_json::json!({ "email": "dave@example.org", "level": 2 }),
        )
        .await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let dave = made.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    app.gift_pro(ana, 3).await;
    let device = app
        .user_post(
            &bob_token,
            "/api/v1/devices",
            &serde_json::json!({ "name": "Bob's Pixel" }),
        )
        .await;
    assert_eq!(device.status(), StatusCode::CREATED);
    for user in [ana, bob, carol] {
        app.set_proxies(user, &["fb1"]).await;
    }
    app.set_proxies(dave, &["fb2"]).await;
    let disabled = app
        .admin_post(
            &format!("/api/v1/admin/users/{carol}/disable"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);

    assert_eq!(
        found(&app, "contains=CORP").await,
        (vec![bob], None),
        "email, any case"
    );
    assert_eq!(
        found(&app, "contains=pixel").await.0,
        vec![bob],
        "a device's name"
    );
    assert_eq!(
        found(&app, &format!("contains={carol}")).await.0,
        vec![carol],
        "the id"
    );
    assert_eq!(
        found(&app, "contains=example.org").await.0,
        vec![ana, carol, dave]
    );
    assert_eq!(found(&app, "status=disabled").await.0, vec![carol]);
    assert_eq!(found(&app, "pro=true").await.0, vec![ana]);
    assert_eq!(found(&app, "level=2").await.0, vec![dave]);
    assert_eq!(found(&app, "proxy=fb2").await.0, vec![dave]);
    assert_eq!(
        found(&app, "contains=example.org&pro=false&status=active")
            .await
            .0,
        vec![dave]
    );
    assert_eq!(found(&app, "contains=nobody").await, (vec![], None));

    // The start of a token a user reads out finds the account: the kind and 8 hex digits,
    // any case; 4 digits find it among others; a whole token by its hash. A device's token
    // finds its owner until the device is removed.
    let start = &bob_token[..12];
    assert_eq!(found(&app, &format!("contains={start}")).await.0, vec![bob]);
    // Only the holders are read: a page of one is bob and the end; after bob, nothing.
    assert_eq!(
        found(&app, &format!("contains={start}&limit=1")).await,
        (vec![bob], None)
    );
    assert_eq!(
        found(&app, &format!("contains={start}&after={bob}")).await,
        (vec![], None)
    );
    let shouted = start.to_uppercase();
    assert_eq!(
        found(&app, &format!("contains={shouted}")).await.0,
        vec![bob]
    );
    assert!(found(&app, &format!("contains={}", &bob_token[..8]))
        .await
        .0
        .contains(&bob));
    assert_eq!(
        found(&app, &format!("contains={bob_token}")).await.0,
        vec![bob]
    );
    let device = device.json::<Value>().await.unwrap();
    let device_token = device["token"].as_str().unwrap();
    assert!(device_token.starts_with("pfd_"), "{device}");
    let device_start = format!("contains={}", &device_token[..14]);
    assert_eq!(found(&app, &device_start).await.0, vec![bob]);
    assert_eq!(
        found(
            &app,
            &format!("contains={}&status=disabled", &bob_token[..12])
        )
        .await
        .0,
        Vec::<u64>::new(),
        "the other filters still apply"
    );
    // A token nobody holds, a probe's kind, the kind alone: nothing.
    let nobody = format!("contains=pfu_{}", "0".repeat(64));
    assert_eq!(found(&app, &nobody).await.0, Vec::<u64>::new());
    assert_eq!(
        found(&app, "contains=pfp_0123abcd").await.0,
        Vec::<u64>::new()
    );
    assert_eq!(found(&app, "contains=pfu_").await.0, Vec::<u64>::new());
    let removed = app
        .client
        .delete(app.url(&format!("/api/v1/devices/{}", device["id"])))
        .bearer_auth(&bob_token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        found(&app, &device_start).await.0,
        Vec::<u64>::new(),
        "a removed device's token finds nobody"
    );

    // Paged by id: one at a time, every active user once, then the end.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (ids, next) = found(&app, &format!("status=active&limit=1{after}")).await;
        seen.extend(ids);
        match next {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![ana, bob, dave]);

    // The id's digits anywhere: more accounts (emails without digits) until one's id holds
    // carol's, which then finds both.
    let carols = carol.to_string();
    let mut holder = None;
    for letter in 'a'..='z' {
        let (id, _, _) = app
            .create_user(&format!("extra-{letter}@example.net"), None)
            .await;
        if id.to_string().contains(&carols) {
            holder = Some(id);
            break;
        }
    }
    let holder = holder.expect("26 more ids hold carol's digits");
    assert_eq!(
        found(&app, &format!("contains={carol}")).await.0,
        vec![carol, holder],
        "part of an id"
    );

    for (query, status) in [
        (
            format!("contains={}", "x".repeat(300)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("level=9".to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "proxy=no%20such%20name!".to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("status=bogus".to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        ("pro=maybe".to_string(), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let answer = app.admin_get(&format!("/api/v1/admin/users?{query}")).await;
        assert_eq!(answer.status(), status, "{query}");
    }
}
