//! Linked devices: their own tokens, limits by tier, removal.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

impl TestApp {
    async fn add_device(&self, token: &str, name: &str) -> reqwest::Response {
        self.user_post(token, "/api/v1/devices", &json!({ "name": name }))
            .await
    }
}

#[tokio::test]
async fn a_device_token_reads_the_same_config_until_the_device_is_removed() {
    let app = spawn_app().await;
    app.proxy("fb", 12_000, &[]).await;
    let (_, token, _) = app.create_user("phone@example.org", None).await;
    let added = app.add_device(&token, "  Ana's phone ").await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let device: Value = added.json().await.unwrap();
    assert_eq!(device["name"], "Ana's phone");
    let device_token = device["token"].as_str().unwrap().to_string();
    assert!(device_token.starts_with("pfd_"));

    let (status, _, from_device) = app.config(&device_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(from_device, app.config(&token).await.2);

    let listed: Value = app.user_json(&device_token, "/api/v1/devices").await;
    assert_eq!(listed["limit"], 1);
    assert_eq!(listed["devices"][0]["id"], device["id"]);
    assert!(
        listed["devices"][0].get("token").is_none(),
        "tokens are shown once"
    );

    let second = app.add_device(&token, "laptop").await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    let error: Value = second.json().await.unwrap();
    assert_eq!(error["error"]["code"], "device_limit");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 1"));

    let path = format!("/api/v1/devices/{}", device["id"]);
    let removed = app.send_as(Method::DELETE, &path, Some(&token)).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.config(&device_token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.config(&token).await.0,
        StatusCode::OK,
        "the account's token still works"
    );
    let again = app.send_as(Method::DELETE, &path, Some(&token)).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pro_accounts_link_three_devices_whose_tokens_their_pro_proxies_accept() {
    let app = spawn_app().await;
    app.proxy("pro0", 11_000, &[("role", "pro")]).await;
    let (id, token, _) = app.create_user("family@example.org", None).await;
    app.gift_pro(id, 30).await;
    for name in ["phone", "laptop", "tablet"] {
        assert_eq!(
            app.add_device(&token, name).await.status(),
            StatusCode::CREATED
        );
    }
    let fourth = app.add_device(&token, "tv").await;
    assert_eq!(fourth.status(), StatusCode::CONFLICT);
    assert!(error_code(fourth).await == "device_limit");
    // The pro proxy's accepted tokens now hold the account's and the three devices'.
    app.assert_consistent().await;
}

#[tokio::test]
async fn nobody_removes_another_users_device_and_bad_names_are_refused() {
    let app = spawn_app().await;
    let (_, ana, _) = app.create_user("ana@example.org", None).await;
    let (_, bob, _) = app.create_user("bob@example.org", None).await;
    let device: Value = app.add_device(&ana, "phone").await.json().await.unwrap();
    let path = format!("/api/v1/devices/{}", device["id"]);
    assert_eq!(
        app.send_as(Method::DELETE, &path, Some(&bob))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.send_as(Method::DELETE, &path, None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let still: Value = app.user_json(&ana, "/api/v1/devices").await;
    assert_eq!(still["devices"].as_array().unwrap().len(), 1);
    let bad = app.add_device(&bob, "   ").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
