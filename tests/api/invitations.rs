//! Invitations under control: a quota per inviter, codes that expire, revocation by the
//! inviter, an admin or the inviter's disabling, and the lists each side sees.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, spawn_app_with, TestApp, ADMIN_TOKEN};

const DAY: Duration = Duration::from_secs(86_400);

pub(crate) async fn invite(app: &TestApp, token: &str, email: &str) -> reqwest::Response {
    app.user_post(token, "/api/v1/invitations", &json!({ "email": email }))
        .await
}

/// Invites `email`, expecting 201; returns the code.
async fn invite_ok(app: &TestApp, token: &str, email: &str) -> String {
    let response = invite(app, token, email).await;
    assert_eq!(response.status(), StatusCode::CREATED, "invite {email}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["state"], "open");
    body["code"].as_str().unwrap().to_string()
}

pub(crate) async fn accept(app: &TestApp, code: &str) -> reqwest::Response {
    app.send_as(
        Method::POST,
        &format!("/api/v1/invitations/{code}/accept"),
        None,
    )
    .await
}

/// Users with this status (`active` members, `pending` invitees...).
async fn count_status(app: &TestApp, status: &str) -> usize {
    let list = app.admin_json("/api/v1/admin/users?limit=200").await;
    let users = list["users"].as_array().unwrap();
    users.iter().filter(|u| u["status"] == status).count()
}

/// Accounts that joined: active (no test here disables one it counts).
async fn user_count(app: &TestApp) -> usize {
    count_status(app, "active").await
}

fn states(list: &Value) -> Vec<(String, String)> {
    list["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["email"].as_str().unwrap().to_string(),
                i["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_inviter_has_five_per_period_then_a_429_saying_when_the_next_is_allowed() {
    let app = spawn_app().await;
    let (_, token, _) = app.create_user("ana@example.org", None).await;
    let first_at = app.clock.now_ms() / 1000;
    for i in 0..5 {
        invite_ok(&app, &token, &format!("f{i}@example.org")).await;
        // Spread over the period: the slot that frees first is the oldest one's.
        app.clock.advance(DAY);
    }
    let refused = invite(&app, &token, "f5@example.org").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let next_allowed = first_at + 30 * 86_400;
    let now = app.clock.now_ms() / 1000;
    assert!(
        (next_allowed - now).abs_diff(retry_after) <= 2,
        "{retry_after}"
    );
    assert_eq!(error_code(refused).await, "invitation_quota");
    let mine = app.user_json(&token, "/api/v1/invitations").await;
    assert_eq!(mine["invitations"].as_array().unwrap().len(), 5);
    assert_eq!(
        mine["invitations"][0]["email"], "f4@example.org",
        "newest first"
    );
    assert_eq!(mine["quota"]["per_period"], 5);
    assert_eq!(mine["quota"]["used"], 5);
    assert!(
        mine["quota"]["next_allowed_at"]
            .as_u64()
            .unwrap()
            .abs_diff(next_allowed)
            <= 2
    );
    assert_eq!(
        count_status(&app, "pending").await,
        5,
        "one pending account per invitation"
    );
    assert_eq!(
        user_count(&app).await,
        1,
        "a refused invitation made nothing"
    );

    // Once the first invitation leaves the window, one more is allowed, and only one.
    app.clock
        .advance(Duration::from_secs(next_allowed - now + 2));
    invite_ok(&app, &token, "f5@example.org").await;
    let refused = invite(&app, &token, "f6@example.org").await;
    assert_eq!(error_code(refused).await, "invitation_quota");
}

#[tokio::test]
async fn concurrent_invitations_take_the_quota_once() {
    let app = spawn_app_with(|c| c.invitations_per_period = 3).await;
    let (_, token, _) = app.create_user("ana@example.org", None).await;
    let sends = (0..12).map(|i| {
        let (app, token) = (&app, token.clone());
        async move {
            invite(app, &token, &format!("c{i}@example.org"))
                .await
                .status()
        }
    });
    let statuses = futures::future::join_all(sends).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((created, refused), (3, 9), "{statuses:?}");
    let mine = app.user_json(&token, "/api/v1/invitations").await;
    assert_eq!(mine["invitations"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn an_admin_sets_a_users_quota_and_pro_users_get_theirs() {
    let app = spawn_app_with(|c| {
        c.invitations_per_period = 1;
        c.pro_invitations_per_period = 3;
    })
    .await;
    let (ana, ana_token, _) = app.create_user("ana@example.org", None).await;
    let (bob, bob_token, _) = app.create_user("bob@example.org", None).await;
    invite_ok(&app, &ana_token, "a1@example.org").await;
    let refused = invite(&app, &ana_token, "a2@example.org").await;
    assert_eq!(error_code(refused).await, "invitation_quota");

    let quota_path = format!("/api/v1/admin/users/{ana}/invitation_quota");
    let set = |n: Value| {
        let (app, path) = (&app, quota_path.clone());
        async move {
            app.client
                .put(app.url(&path))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({ "per_period": n }))
                .send()
                .await
                .unwrap()
        }
    };
    let response = set(json!(2)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let quota: Value = response.json().await.unwrap();
    assert_eq!(
        (&quota["per_period"], &quota["used"], &quota["overridden"]),
        (&json!(2), &json!(1), &json!(true))
    );
    invite_ok(&app, &ana_token, "a2@example.org").await;
    let refused = invite(&app, &ana_token, "a3@example.org").await;
    assert_eq!(error_code(refused).await, "invitation_quota");
    // Hostile or mistaken values change nothing.
    let too_many = set(json!(1_001)).await;
    assert_eq!(too_many.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let negative = set(json!(-1)).await;
    assert!(negative.status().is_client_error(), "{}", negative.status());
    let nobody = app
        .client
        .put(app.url("/api/v1/admin/users/999999/invitation_quota"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "per_period": 3 }))
        .send()
        .await
        .unwrap();
    assert_eq!(nobody.status(), StatusCode::NOT_FOUND);
    let seen = app
        .admin_json(&format!("/api/v1/admin/users/{ana}/invitations"))
        .await;
    assert_eq!(seen["quota"]["per_period"], 2);
    assert_eq!(seen["invitations"].as_array().unwrap().len(), 2);
    // Back to the default.
    assert_eq!(set(Value::Null).await.status(), StatusCode::OK);
    let mine = app.user_json(&ana_token, "/api/v1/invitations").await;
    assert_eq!(mine["quota"]["per_period"], 1);
    assert_eq!(mine["quota"]["overridden"], false);

    // Pro: the larger quota while it lasts.
    app.gift_pro(bob, 30).await;
    for i in 0..3 {
        invite_ok(&app, &bob_token, &format!("b{i}@example.org")).await;
    }
    let refused = invite(&app, &bob_token, "b3@example.org").await;
    assert_eq!(error_code(refused).await, "invitation_quota");
}

#[tokio::test]
async fn an_expired_code_is_refused_and_an_accepted_one_stays_accepted() {
    let app = spawn_app().await;
    app.proxy("pa", 9001, &[]).await;
    let (_, token, _) = app.create_user("ana@example.org", None).await;
    let used = invite_ok(&app, &token, "used@example.org").await;
    let unused = invite_ok(&app, &token, "late@example.org").await;
    assert_eq!(accept(&app, &used).await.status(), StatusCode::CREATED);
    let users = user_count(&app).await;

    // A minute before the end of its 14 days the code still works; at the end it does not.
    app.clock.advance(14 * DAY - Duration::from_secs(60));
    let mine = app.user_json(&token, "/api/v1/invitations").await;
    assert_eq!(
        states(&mine),
        vec![
            ("late@example.org".into(), "open".into()),
            ("used@example.org".into(), "accepted".into())
        ]
    );
    app.clock.advance(Duration::from_secs(60));
    let expired = accept(&app, &unused).await;
    assert_eq!(expired.status(), StatusCode::GONE);
    assert_eq!(error_code(expired).await, "invitation_expired");
    assert_eq!(user_count(&app).await, users, "nothing was made");
    // The accepted one answers as before: the same user, no token.
    let again = accept(&app, &used).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["already_accepted"], true);
    assert_eq!(again["token"], Value::Null);
    let mine = app.user_json(&token, "/api/v1/invitations").await;
    assert_eq!(
        states(&mine),
        vec![
            ("late@example.org".into(), "expired".into()),
            ("used@example.org".into(), "accepted".into())
        ]
    );
    // Unknown and malformed codes are 404s, not 410s: a code cannot be probed.
    let unknown = accept(&app, "0123456789abcdef0123456789abcdef").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_the_inviter_or_an_admin_revokes_a_code_and_a_revoked_code_is_refused() {
    let app = spawn_app().await;
    app.proxy("pa", 9001, &[]).await;
    let (_, ana, _) = app.create_user("ana@example.org", None).await;
    let (_, mallory, _) = app.create_user("mallory@example.org", None).await;
    let first = invite_ok(&app, &ana, "one@example.org").await;
    let second = invite_ok(&app, &ana, "two@example.org").await;
    let third = invite_ok(&app, &ana, "three@example.org").await;

    // Another user cannot revoke it, nor learn that it exists.
    let path = format!("/api/v1/invitations/{first}");
    let theirs = app.send_as(Method::DELETE, &path, Some(&mallory)).await;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    let nobody = app.send_as(Method::DELETE, &path, None).await;
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(accept(&app, &first).await.status(), StatusCode::CREATED);
    // Accepted: too late to revoke.
    let late = app.send_as(Method::DELETE, &path, Some(&ana)).await;
    assert_eq!(late.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(late).await, "invitation_accepted");

    let path = format!("/api/v1/invitations/{second}");
    let revoked = app.send_as(Method::DELETE, &path, Some(&ana)).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let revoked: Value = revoked.json().await.unwrap();
    assert_eq!(
        (&revoked["state"], &revoked["revoked_by"]),
        (&json!("revoked"), &json!("inviter"))
    );
    let twice = app.send_as(Method::DELETE, &path, Some(&ana)).await;
    assert_eq!(twice.status(), StatusCode::OK, "revoking twice is harmless");
    let refused = accept(&app, &second).await;
    assert_eq!(refused.status(), StatusCode::GONE);
    assert_eq!(error_code(refused).await, "invitation_revoked");

    let admin_path = format!("/api/v1/admin/invitations/{third}");
    let by_admin = app
        .send_as(Method::DELETE, &admin_path, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(by_admin.status(), StatusCode::OK);
    let by_admin: Value = by_admin.json().await.unwrap();
    assert_eq!(by_admin["revoked_by"], "admin");
    let refused = accept(&app, &third).await;
    assert_eq!(error_code(refused).await, "invitation_revoked");
    assert_eq!(user_count(&app).await, 3, "ana, mallory and one invitee");
    assert_eq!(
        count_status(&app, "lapsed").await,
        2,
        "the revoked invitations' accounts"
    );
}

#[tokio::test]
async fn disabling_an_inviter_withdraws_its_open_codes_for_good() {
    let app = spawn_app().await;
    app.proxy("pa", 9001, &[]).await;
    let (ana, token, _) = app.create_user("ana@example.org", None).await;
    let used = invite_ok(&app, &token, "used@example.org").await;
    let open = invite_ok(&app, &token, "open@example.org").await;
    let accepted = accept(&app, &used).await;
    assert_eq!(accepted.status(), StatusCode::CREATED);
    let invitee: Value = accepted.json().await.unwrap();
    let invitee_token = invitee["token"].as_str().unwrap().to_string();

    let disabled = app
        .admin_post(&format!("/api/v1/admin/users/{ana}/disable"), &json!({}))
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let refused = accept(&app, &open).await;
    assert_eq!(refused.status(), StatusCode::GONE);
    assert_eq!(error_code(refused).await, "invitation_revoked");
    let seen = app
        .admin_json(&format!("/api/v1/admin/users/{ana}/invitations"))
        .await;
    let open_one = seen["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["code"] == open.as_str())
        .unwrap();
    assert_eq!(open_one["revoked_by"], "inviter_disabled");
    // The user it already made is not touched.
    let (status, _, _) = app.config(&invitee_token).await;
    assert_eq!(status, StatusCode::OK);

    // Enabled again, the withdrawn code stays withdrawn; new ones work.
    let enabled = app
        .admin_post(&format!("/api/v1/admin/users/{ana}/enable"), &json!({}))
        .await;
    assert_eq!(enabled.status(), StatusCode::OK);
    assert_eq!(
        error_code(accept(&app, &open).await).await,
        "invitation_revoked"
    );
    let fresh = invite_ok(&app, &token, "fresh@example.org").await;
    assert_eq!(accept(&app, &fresh).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn the_admin_lists_every_invitation_with_counts_and_pages_a_users_list() {
    let app = spawn_app_with(|c| c.invitations_per_period = 10).await;
    app.proxy("pa", 9001, &[]).await;
    let (ana, ana_token, _) = app.create_user("ana@example.org", None).await;
    let (_, bob_token, _) = app.create_user("bob@example.org", None).await;
    let mut codes = Vec::new();
    for i in 0..7 {
        codes.push(invite_ok(&app, &ana_token, &format!("a{i}@example.org")).await);
        app.clock.advance(Duration::from_secs(1));
    }
    let bobs = invite_ok(&app, &bob_token, "b0@example.org").await;
    assert_eq!(accept(&app, &codes[0]).await.status(), StatusCode::CREATED);
    let path = format!("/api/v1/invitations/{}", codes[1]);
    let revoked = app.send_as(Method::DELETE, &path, Some(&ana_token)).await;
    assert_eq!(revoked.status(), StatusCode::OK);

    let all = app.admin_json("/api/v1/admin/invitations").await;
    assert_eq!(
        all["counts"],
        json!({ "open": 6, "accepted": 1, "expired": 0, "revoked": 1 })
    );
    assert_eq!(all["invitations"].as_array().unwrap().len(), 8);
    let open = app
        .admin_json("/api/v1/admin/invitations?state=open&limit=4")
        .await;
    let page: Vec<&str> = open["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(page.len(), 4);
    assert!(page.windows(2).all(|w| w[0] < w[1]), "codes in order");
    let rest = app
        .admin_json(&format!(
            "/api/v1/admin/invitations?state=open&after={}",
            page[3]
        ))
        .await;
    assert_eq!(rest["invitations"].as_array().unwrap().len(), 2);
    let bad_state = app
        .admin_get("/api/v1/admin/invitations?state=pending")
        .await;
    assert_eq!(bad_state.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // A user's own list, newest first, in pages of 3, and nobody else's in it.
    let mut seen = Vec::new();
    let mut path = "/api/v1/invitations?limit=3".to_string();
    loop {
        let page = app.user_json(&ana_token, &path).await;
        for invitation in page["invitations"].as_array().unwrap() {
            seen.push(invitation["code"].as_str().unwrap().to_string());
        }
        match page["next_before"].as_str() {
            Some(before) => path = format!("/api/v1/invitations?limit=3&before={before}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = codes.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    assert!(!seen.contains(&bobs));
    // Bob cannot page through Ana's list with her codes.
    let probe = app
        .send_as(
            Method::GET,
            &format!("/api/v1/invitations?before={}", codes[3]),
            Some(&bob_token),
        )
        .await;
    assert_eq!(probe.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let admin_view = app
        .admin_json(&format!("/api/v1/admin/users/{ana}/invitations?limit=200"))
        .await;
    assert_eq!(admin_view["invitations"].as_array().unwrap().len(), 7);
}
