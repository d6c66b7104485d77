//! After a block: who was ever given the proxy (its exposure, with each user's inviter chain),
//! and cutting a branch of the trust graph (a user and everyone it brought in, disabled and
//! enabled again in one operation, optionally only those who joined after a time).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, spawn_app_with, TestApp};

async fn status_of(app: &TestApp, id: u64) -> String {
    let detail = app.admin_json(&format!("/api/v1/admin/users/{id}")).await;
    detail["user"]["status"].as_str().unwrap().to_string()
}

fn ids(reply: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = reply["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn a_three_level_branch_is_disabled_and_enabled_in_one_operation() {
    // Invitees start one level below their inviters, so a2 (level 2) may invite.
    let app = spawn_app_with(|c| c.trust.invitee_max_level = 3).await;
    app.proxy("pa", 9001, &[("capacity", "1000")]).await;
    // root -> (a, b); a -> (a1, a2); a1 -> x. Then, a day later, a2 -> late.
    let (root, root_token, _) = app.create_user("root@example.org", None).await;
    let (a, _, _) = app.create_user("a@example.org", Some(root)).await;
    let (b, b_token, _) = app.create_user("b@example.org", Some(root)).await;
    let (a1, _, _) = app.create_user("a1@example.org", Some(a)).await;
    let (a2, a2_token, _) = app.create_user("a2@example.org", Some(a)).await;
    let (x, x_token, _) = app.create_user("x@example.org", Some(a1)).await;
    let cutoff = app.clock.now_ms() / 1000 + 1;
    app.clock.advance(Duration::from_secs(86_400));
    app.proxy("pa", 9001, &[("capacity", "1000")]).await;
    let (late, late_token, _) = app.create_user("late@example.org", Some(a2)).await;
    // An open invitation of a2's dies with the branch.
    let invited = app
        .user_post(
            &a2_token,
            "/api/v1/invitations",
            &json!({ "email": "n@example.org" }),
        )
        .await;
    assert_eq!(invited.status(), StatusCode::CREATED);
    let code = invited.json::<Value>().await.unwrap()["code"]
        .as_str()
        .unwrap()
        .to_string();

    // The tree as the admin reads it: one level at a time, each row with its own count.
    let level = app
        .admin_json(&format!("/api/v1/admin/users/{root}/invitees"))
        .await;
    assert_eq!(level["total"], 2);
    let rows: Vec<(u64, u64)> = level["invitees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_u64().unwrap(), c["invited"].as_u64().unwrap()))
        .collect();
    assert_eq!(rows, vec![(a, 2), (b, 0)]);
    let first = app
        .admin_json(&format!("/api/v1/admin/users/{a}/invitees?limit=1"))
        .await;
    assert_eq!(first["invitees"][0]["id"], a1);
    assert_eq!(first["next_after"], a1);
    let second = app
        .admin_json(&format!(
            "/api/v1/admin/users/{a}/invitees?limit=1&after={a1}"
        ))
        .await;
    assert_eq!(second["invitees"][0]["id"], a2);
    assert_eq!(second["invitees"][0]["invited"], 1, "late");
    assert!(second.get("next_after").is_none(), "{second}");
    let unknown = app.admin_get("/api/v1/admin/users/999999/invitees").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // Only those who joined after the cutoff (and the root of the cut, a).
    let path = format!("/api/v1/admin/users/{a}/disable?subtree=true&invited_after={cutoff}");
    let response = app.admin_post(&path, &json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(ids(&reply), vec![a, late]);
    assert_eq!(status_of(&app, late).await, "disabled");
    assert_eq!(status_of(&app, a2).await, "active");

    // The whole branch below a: a1, a2 and x too; root and b untouched.
    let path = format!("/api/v1/admin/users/{a}/disable?subtree=true");
    let response = app.admin_post(&path, &json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(ids(&reply), vec![a1, a2, x], "a and late were already");
    for id in [a, a1, a2, x, late] {
        assert_eq!(status_of(&app, id).await, "disabled", "user {id}");
    }
    for id in [root, b] {
        assert_eq!(status_of(&app, id).await, "active", "user {id}");
    }
    for token in [&a2_token, &x_token, &late_token] {
        let (status, _, _) = app.config(token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for token in [&root_token, &b_token] {
        let (status, _, _) = app.config(token).await;
        assert_eq!(status, StatusCode::OK);
    }
    let refused = app
        .send_as(
            reqwest::Method::POST,
            &format!("/api/v1/invitations/{code}/accept"),
            None,
        )
        .await;
    assert_eq!(error_code(refused).await, "invitation_revoked");
    // The freed slots are counted back, and the operation is in the audit trail.
    app.assert_consistent().await;
    let audit = app.admin_json("/admin/api/audit").await;
    let recorded = audit["entries"].as_array().unwrap().iter().any(|e| {
        e["action"] == format!("POST /api/v1/admin/users/{a}/disable")
            && e["params"]
                .as_str()
                .is_some_and(|p| p.contains("subtree=true"))
    });
    assert!(recorded, "{audit}");

    // Enabled again as a branch: everyone below a who is disabled.
    let path = format!("/api/v1/admin/users/{a}/enable?subtree=true");
    let response = app.admin_post(&path, &json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(ids(&reply), vec![a, a1, a2, x, late]);
    let (status, _, _) = app.config(&x_token).await;
    assert_eq!(status, StatusCode::OK);

    // Bad input changes nothing.
    let bad = app
        .admin_post(
            &format!("/api/v1/admin/users/{a}/disable?invited_after={cutoff}"),
            &json!({}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad = app
        .admin_post(
            &format!("/api/v1/admin/users/{a}/disable?subtree=maybe"),
            &json!({}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let nobody = app
        .admin_post(
            "/api/v1/admin/users/999999/disable?subtree=true",
            &json!({}),
        )
        .await;
    assert_eq!(nobody.status(), StatusCode::NOT_FOUND);
    assert_eq!(status_of(&app, a).await, "active");
}

#[tokio::test]
async fn a_proxys_exposure_lists_everyone_it_was_given_to_after_three_moves() {
    let app = spawn_app().await;
    // Everyone starts on p1, the only proxy there is; p2 and p3 come later.
    app.proxy("p1", 9001, &[("capacity", "100")]).await;
    let (root, _, _) = app.create_user("root@example.org", None).await;
    let (mid, _, _) = app.create_user("mid@example.org", Some(root)).await;
    let created = app.clock.now_ms() / 1000;
    let (user, _, proxies) = app.create_user("user@example.org", Some(mid)).await;
    assert_eq!(proxies, vec!["p1"]);
    app.proxy("p2", 9002, &[("capacity", "100")]).await;
    app.proxy("p3", 9003, &[("capacity", "100")]).await;
    // Three moves, ten minutes apart: to p2, back to p1, to p3.
    let mut at = vec![created];
    for proxies in [["p2"], ["p1"], ["p3"]] {
        app.clock.advance(Duration::from_secs(600));
        // The proxies heartbeat meanwhile (else they expire in the ten minutes).
        for (i, name) in ["p1", "p2", "p3"].iter().enumerate() {
            app.proxy(name, 9001 + i as u16, &[("capacity", "100")])
                .await;
        }
        at.push(app.clock.now_ms() / 1000);
        app.set_proxies(user, &proxies).await;
    }
    let periods = |exposure: &Value, id: u64| -> Vec<(u64, Option<u64>)> {
        let entry = exposure["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user"] == id)
            .unwrap_or_else(|| panic!("user {id} not in {exposure}"));
        entry["periods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["from"].as_u64().unwrap(), p["until"].as_u64()))
            .collect()
    };
    let near = |got: Vec<(u64, Option<u64>)>, want: Vec<(u64, Option<u64>)>| {
        assert_eq!(got.len(), want.len(), "{got:?} against {want:?}");
        for ((from, until), (want_from, want_until)) in got.into_iter().zip(want) {
            assert!(from.abs_diff(want_from) <= 1, "{from} against {want_from}");
            assert_eq!(until.is_some(), want_until.is_some());
            if let (Some(u), Some(w)) = (until, want_until) {
                assert!(u.abs_diff(w) <= 1, "{u} against {w}");
            }
        }
    };
    let p1 = app.admin_json("/api/v1/admin/proxies/p1/exposure").await;
    near(
        periods(&p1, user),
        vec![(at[0], Some(at[1])), (at[2], Some(at[3]))],
    );
    let entry = p1["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == user)
        .unwrap();
    assert_eq!(entry["inviters"], json!([mid, root]));
    assert_eq!(entry["email"], "user@example.org");
    let p2 = app.admin_json("/api/v1/admin/proxies/p2/exposure").await;
    near(periods(&p2, user), vec![(at[1], Some(at[2]))]);
    let p3 = app.admin_json("/api/v1/admin/proxies/p3/exposure").await;
    near(periods(&p3, user), vec![(at[3], None)]);

    // Paged by user id: all three accounts were given p1 when they were made.
    let mut seen = Vec::new();
    let mut path = "/api/v1/admin/proxies/p1/exposure?limit=1".to_string();
    loop {
        let page = app.admin_json(&path).await;
        for u in page["users"].as_array().unwrap() {
            seen.push(u["user"].as_u64().unwrap());
        }
        match page["next_after"].as_u64() {
            Some(after) => {
                path = format!("/api/v1/admin/proxies/p1/exposure?limit=1&after={after}")
            }
            None => break,
        }
    }
    assert_eq!(seen, vec![root, mid, user], "each once, by id");

    // A proxy that left keeps its list; a name that never was has none; a bad name is a 422.
    assert_eq!(app.unregister("p2").await.status(), StatusCode::OK);
    let gone = app.admin_json("/api/v1/admin/proxies/p2/exposure").await;
    near(periods(&gone, user), vec![(at[1], Some(at[2]))]);
    let never = app.admin_json("/api/v1/admin/proxies/p9/exposure").await;
    assert_eq!(never["users"], json!([]));
    let bad = app.admin_get("/api/v1/admin/proxies/%20x/exposure").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let nobody = app
        .send_as(
            reqwest::Method::GET,
            "/api/v1/admin/proxies/p1/exposure",
            None,
        )
        .await;
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);
}
