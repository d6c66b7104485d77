//! Trust levels against the real server, its clock moved forward instead of waiting: a level
//! rises with time, bounds the fallbacks and gates invitations; a block of a proxy a user
//! knew lowers it, and a user given that proxy just before the block waits on probation.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::blocking::{config_from, located_app, IRAN};
use crate::helpers::{error_code, eventually, TestApp, ADMIN_TOKEN};

const DAY: Duration = Duration::from_secs(86_400);

const PROXIES: [&str; 5] = ["a", "b", "c", "d", "e"];

/// Registers the proxies, or heartbeats them after the clock moved.
async fn heartbeat(app: &TestApp) {
    for (i, name) in PROXIES.iter().enumerate() {
        let port = 9_841 + i as u16;
        app.proxy(name, port, &[("role", "fallback"), ("capacity", "100")])
            .await;
    }
}

async fn trust_of(app: &TestApp, id: u64) -> Value {
    app.admin_json(&format!("/api/v1/admin/users/{id}")).await["trust"].clone()
}

async fn set_level(app: &TestApp, id: u64, level: Value) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/api/v1/admin/users/{id}/trust")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "level": level }))
        .send()
        .await
        .unwrap()
}

async fn invite(app: &TestApp, token: &str, email: &str) -> reqwest::Response {
    app.user_post(token, "/api/v1/invitations", &json!({ "email": email }))
        .await
}

#[tokio::test]
async fn a_level_rises_with_time_gates_invitations_bounds_fallbacks_and_drops_at_a_block() {
    let app = located_app(|c| c.fallbacks_per_user = 3).await;
    heartbeat(&app).await;
    // A newcomer from a sign-up front: level 0 holds one fallback of the three configured.
    let created = app
        .admin_post(
            "/api/v1/admin/users",
            &json!({ "email": "new@example.org", "level": 0 }),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let (id, token) = (
        created["id"].as_u64().unwrap(),
        created["token"].as_str().unwrap().to_string(),
    );
    assert_eq!(created["proxies"].as_array().unwrap().len(), 1);
    let trust = trust_of(&app, id).await;
    assert_eq!(
        (&trust["level"], &trust["may_invite"], &trust["fallbacks"]),
        (&json!(0), &json!(false), &json!(1)),
        "{trust}"
    );
    let refused = invite(&app, &token, "friend@example.org").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(refused).await, "trust_level_too_low");

    // Two days without a block: level 1, still no invitation; four more: level 2, which may.
    app.clock.advance(2 * DAY);
    assert_eq!(trust_of(&app, id).await["level"], 1);
    assert_eq!(
        invite(&app, &token, "friend@example.org").await.status(),
        StatusCode::FORBIDDEN
    );
    app.clock.advance(4 * DAY);
    heartbeat(&app).await;
    let trust = trust_of(&app, id).await;
    assert_eq!(
        (&trust["level"], &trust["may_invite"], &trust["fallbacks"]),
        (&json!(2), &json!(true), &json!(2))
    );
    // Level 2 holds two: the next rebalance sees the rise and gives the second, once.
    assert_eq!(app.user_proxies(id).await.len(), 1);
    app.rebalance(false).await;
    eventually(Duration::from_secs(30), "a second fallback", || async {
        (app.user_proxies(id).await.len() == 2).then_some(())
    })
    .await;
    app.rebalance(false).await;
    app.queue_idle().await;
    assert_eq!(app.user_proxies(id).await.len(), 2, "not a third");
    let invited = invite(&app, &token, "friend@example.org").await;
    assert_eq!(invited.status(), StatusCode::CREATED);
    let invited: Value = invited.json().await.unwrap();
    let invitee = invited["invitee"].as_u64().unwrap();
    assert_eq!(
        trust_of(&app, invitee).await["level"],
        0,
        "an invitation admits but does not vouch: levels are earned"
    );

    // Bad input changes nothing.
    let too_high = set_level(&app, id, json!(5)).await;
    assert_eq!(too_high.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(too_high).await, "invalid_level");
    assert_eq!(
        set_level(&app, id, json!("top")).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        set_level(&app, 999_999, json!(1)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(trust_of(&app, id).await["level"], 2);

    // Seen in Iran, its first proxy is blocked there: held for six days, it is one level down
    // with no probation; the only one there who had it, it takes the whole blame and is
    // quarantined (it keeps its second proxy) until an admin clears it. At level 1 it holds
    // one, so nothing more comes.
    let (status, _, _) = config_from(&app, &token, IRAN[0]).await;
    assert_eq!(status, StatusCode::OK);
    let held = app.user_proxies(id).await;
    app.block_by_probes(&held[0], "IR").await;
    app.queue_idle().await;
    let detail = app.admin_json(&format!("/api/v1/admin/users/{id}")).await;
    let trust = &detail["trust"];
    assert_eq!(trust["level"], 1, "{trust}");
    let last = trust["changes"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((&last["from"], &last["to"]), (&json!(2), &json!(1)));
    assert!(
        last["why"].as_str().unwrap().contains("blocked in IR"),
        "{last}"
    );
    assert!(trust["probation_until"].is_null());
    assert_eq!(detail["suspicion"]["quarantined"], true, "{detail}");
    assert_eq!(app.user_proxies(id).await, held[1..]);
    app.clear_suspicion(id).await;
    app.rebalance(false).await;
    app.queue_idle().await;
    assert_eq!(app.user_proxies(id).await, held[1..], "level 1 holds one");

    // A user given a proxy just before its block waits on probation (and, the only one there
    // who had it, in quarantine). An admin's clearing ends both: at level 3 it holds two, so
    // nothing more; vouched for at level 4, it holds three again.
    let (late, late_token, _) = app.create_user("late@example.org", None).await;
    let (status, _, _) = config_from(&app, &late_token, IRAN[1]).await;
    assert_eq!(status, StatusCode::OK);
    let given = app.user_proxies(late).await;
    assert_eq!(given.len(), 3, "level 4 holds three");
    app.block_by_probes(&given[0], "IR").await;
    app.queue_idle().await;
    let trust = trust_of(&app, late).await;
    assert_eq!(trust["level"], 3);
    assert!(trust["probation_until"].is_u64(), "{trust}");
    assert!(trust["why"].as_str().unwrap().contains("probation"));
    assert_eq!(app.user_proxies(late).await.len(), 2, "not replaced");
    app.clear_suspicion(late).await;
    app.queue_idle().await;
    assert!(trust_of(&app, late).await["probation_until"].is_null());
    assert_eq!(app.user_proxies(late).await.len(), 2, "level 3 holds two");
    let vouched = set_level(&app, late, json!(4)).await;
    assert_eq!(vouched.status(), StatusCode::OK);
    let vouched: Value = vouched.json().await.unwrap();
    assert_eq!(vouched["level"], 4);
    eventually(Duration::from_secs(30), "a third proxy again", || async {
        (app.user_proxies(late).await.len() == 3).then_some(())
    })
    .await;
    assert!(!app.user_proxies(late).await.contains(&given[0]));
    app.assert_consistent().await;
}
