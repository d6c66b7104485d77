//! The config server: free subsets, pro merge, signatures, gzip, exposure.

use std::io::Read;

use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{names_of, spawn_app, spawn_app_with, TestApp};

async fn free_fleet(app: &TestApp, n: u16) {
    for i in 0..n {
        app.proxy(&format!("free{i}"), 10_000 + i, &[("role", "free")])
            .await;
    }
}

async fn names(app: &TestApp, token: &str) -> Vec<String> {
    let (status, _, config) = app.config(token).await;
    assert_eq!(status, StatusCode::OK);
    names_of(&config["proxies"])
}

#[tokio::test]
async fn free_subsets_are_stable_distinct_and_deterministic() {
    let app = spawn_app().await;
    free_fleet(&app, 20).await;
    let mut users = Vec::new();
    for i in 0..10 {
        let (_, token, _) = app.create_user(&format!("f{i}@example.org"), None).await;
        let subset = names(&app, &token).await;
        assert_eq!(subset.len(), 3, "k = 3 free proxies");
        assert_eq!(names(&app, &token).await, subset, "deterministic");
        users.push((token, subset));
    }
    let distinct: std::collections::BTreeSet<&Vec<String>> = users.iter().map(|(_, s)| s).collect();
    assert!(
        distinct.len() >= 5,
        "accounts see different subsets: {distinct:?}"
    );

    // One proxy leaves: any subset changes in at most one entry, and only if it held it.
    let (token, subset) = &users[0];
    let leaving = subset[1].clone();
    assert_eq!(app.unregister(&leaving).await.status(), StatusCode::OK);
    for (other_token, before) in &users {
        let after = names(&app, other_token).await;
        let changed = before.iter().filter(|p| !after.contains(p)).count();
        if before.contains(&leaving) {
            assert_eq!(changed, 1, "{before:?} -> {after:?}");
            assert_eq!(after.len(), 3, "a replacement comes in");
        } else {
            assert_eq!(&after, before, "untouched subset");
        }
    }
    assert!(!names(&app, token).await.contains(&leaving));
}

#[tokio::test]
async fn clients_of_one_network_share_a_subset_when_configured() {
    let app = spawn_app_with(|c| c.subset_network_window_secs = Some(3600)).await;
    free_fleet(&app, 20).await;
    let (_, a, _) = app.create_user("a@example.org", None).await;
    let (_, b, _) = app.create_user("b@example.org", None).await;
    assert_eq!(
        names(&app, &a).await,
        names(&app, &b).await,
        "same /16, same window"
    );
}

#[tokio::test]
async fn pro_users_get_pro_proxies_first_then_their_free_config() {
    let app = spawn_app().await;
    free_fleet(&app, 6).await;
    for i in 0..2 {
        app.proxy(&format!("pro{i}"), 11_000 + i, &[("role", "pro")])
            .await;
    }
    app.proxy("fb", 12_000, &[]).await;
    let (id, token, _) = app.create_user("pro@example.org", None).await;
    let free_only = names(&app, &token).await;
    assert_eq!(
        free_only[0], "fb",
        "the fallback assignment stays in the config"
    );
    assert!(free_only.iter().all(|n| !n.starts_with("pro")));
    app.gift_pro(id, 30).await;
    let detail = app.admin_json(&format!("/api/v1/admin/users/{id}")).await;
    assert_eq!(detail["pro"]["active"], true);
    let merged = names(&app, &token).await;
    let mut pro: Vec<&String> = merged.iter().take(2).collect();
    pro.sort();
    assert_eq!(pro, vec!["pro0", "pro1"], "pro proxies first: {merged:?}");
    assert_eq!(
        &merged[2..],
        &free_only[..],
        "then the free config, unchanged"
    );
}

#[tokio::test]
async fn configs_are_signed_compressed_and_cacheable() {
    let app = spawn_app().await;
    free_fleet(&app, 4).await;
    let (_, token, _) = app.create_user("s@example.org", None).await;
    let key: Value = app.public_json("/api/v1/config/pubkey").await;
    assert_eq!(key["algorithm"], "ed25519");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key["public_key"].as_str().unwrap())
        .unwrap();
    let key = VerifyingKey::from_bytes(&raw.try_into().unwrap()).unwrap();

    let response = app
        .client
        .get(app.url("/api/v1/config"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let signature = response.headers()["x-proxyfleet-signature"]
        .to_str()
        .unwrap()
        .to_string();
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let body = response.bytes().await.unwrap().to_vec();
    let signature = Signature::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(signature)
            .unwrap(),
    )
    .unwrap();
    assert!(
        key.verify(&body, &signature).is_ok(),
        "the signature verifies"
    );
    let mut tampered = body.clone();
    let last = tampered.len() - 2;
    tampered[last] ^= 1;
    assert!(
        key.verify(&tampered, &signature).is_err(),
        "one changed byte breaks it"
    );

    let gz = app
        .client
        .get(app.url("/api/v1/config"))
        .bearer_auth(&token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let gz_etag = gz.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(gz_etag, etag);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz.bytes().await.unwrap()[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, body);

    for tag in [&etag, &gz_etag] {
        let cached = app
            .client
            .get(app.url("/api/v1/config"))
            .bearer_auth(&token)
            .header("if-none-match", tag.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    }
}

#[tokio::test]
async fn the_exposure_report_prices_the_subset_size() {
    let app = spawn_app().await;
    free_fleet(&app, 30).await;
    let report = app
        .admin_json("/api/v1/admin/distribution/exposure?trials=10")
        .await;
    assert_eq!(report["free_proxies"], 30);
    assert_eq!(report["k"], 3);
    let half = report["accounts_for_50_percent"].as_f64().unwrap();
    let most = report["accounts_for_90_percent"].as_f64().unwrap();
    assert!(half >= 5.0, "at least 15 / 3 accounts: {half}");
    assert!(most > half);
    assert_eq!(
        app.client
            .get(app.url("/api/v1/admin/distribution/exposure"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}
