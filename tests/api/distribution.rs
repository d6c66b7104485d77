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

/// A client polling with its ETag, as real clients do: `If-None-Match` from a located address.
async fn poll(app: &TestApp, token: &str, ip: &str, etag: &str) -> (StatusCode, String, Value) {
    let response = app
        .client
        .get(app.url("/api/v1/config"))
        .bearer_auth(token)
        .header("x-forwarded-for", ip)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let body = if status == StatusCode::OK {
        response.json().await.unwrap()
    } else {
        Value::Null
    };
    (status, etag, body)
}

/// Every proxy of the test below: (name, port, role).
const POLLED_FLEET: [(&str, u16, &str); 7] = [
    ("free0", 10_000, "free"),
    ("free1", 10_001, "free"),
    ("free2", 10_002, "free"),
    ("free3", 10_003, "free"),
    ("fb1", 12_000, "fallback"),
    ("fb2", 12_001, "fallback"),
    ("pro1", 11_000, "pro"),
];

/// Heartbeats every proxy of `POLLED_FLEET` but `silent`.
async fn heartbeat_all_but(app: &TestApp, silent: &str) {
    for (name, port, role) in POLLED_FLEET {
        if name != silent {
            app.proxy(name, port, &[("role", role)]).await;
        }
    }
}

/// The server keeps each user's last rendered config to answer polls without rebuilding it;
/// every input of a config must still reach the client at its next poll: the proxy's transport,
/// a block in the client's country, the user's fallbacks, Pro starting and ending, a proxy
/// going silent, the signing window turning. Heartbeats alone change nothing.
#[tokio::test]
async fn a_polled_config_follows_every_change_it_is_built_from() {
    use crate::blocking::{config_from, located_app, IRAN};
    const GERMANY: &str = "46.4.0.1";
    const DAY: u64 = 86_400;
    // Signed for two days: a new signing window every day.
    let app = located_app(|c| {
        c.heartbeat_ttl_secs = 600;
        c.config_validity_secs = 2 * DAY;
    })
    .await;
    free_fleet(&app, 4).await;
    app.proxy("fb1", 12_000, &[]).await;
    let (id, token, _) = app.create_user("poller@example.org", None).await;
    let (status, etag, config) = config_from(&app, &token, IRAN[0]).await;
    assert_eq!(status, StatusCode::OK);
    let first = names_of(&config["proxies"]);
    assert_eq!(first[0], "fb1", "{first:?}");

    app.proxy("fb1", 12_000, &[("clients", "7")]).await;
    for i in 0..4u16 {
        app.proxy(
            &format!("free{i}"),
            10_000 + i,
            &[("role", "free"), ("clients", "3")],
        )
        .await;
    }
    let (status, same, _) = poll(&app, &token, IRAN[0], &etag).await;
    assert_eq!(
        status,
        StatusCode::NOT_MODIFIED,
        "heartbeats change nothing"
    );
    assert_eq!(same, etag);

    // The fallback's certificate changes: the next polls bring it (the view follows within
    // its refresh).
    let cert = "cd".repeat(32);
    app.proxy("fb1", 12_000, &[("cert_sha256", &cert)]).await;
    let (_, etag, config) = crate::helpers::eventually(
        std::time::Duration::from_secs(10),
        "the new certificate in the config",
        || async {
            let polled = poll(&app, &token, IRAN[0], &etag).await;
            (polled.0 == StatusCode::OK).then_some(polled)
        },
    )
    .await;
    assert_eq!(config["proxies"][0]["cert_sha256"], cert.as_str());

    // A free proxy of the subset blocked in Iran: gone there at once, still listed in Germany.
    let blocked = first[1].clone();
    app.block_by_probes(&blocked, "IR").await;
    let (status, etag, config) = poll(&app, &token, IRAN[0], &etag).await;
    assert_eq!(status, StatusCode::OK, "a block in the client's country");
    assert!(!names_of(&config["proxies"]).contains(&blocked));
    let (_, _, german) = config_from(&app, &token, GERMANY).await;
    assert!(names_of(&german["proxies"]).contains(&blocked));

    // Another fallback for the user.
    app.proxy("fb2", 12_001, &[]).await;
    app.set_proxies(id, &["fb2"]).await;
    let (status, etag, config) = poll(&app, &token, IRAN[0], &etag).await;
    assert_eq!(status, StatusCode::OK, "the user's fallbacks changed");
    assert_eq!(config["proxies"][0]["name"], "fb2");

    // Pro starts: the pro proxy comes first.
    app.proxy("pro1", 11_000, &[("role", "pro")]).await;
    app.gift_pro(id, 1).await;
    let (status, etag, config) = poll(&app, &token, IRAN[0], &etag).await;
    assert_eq!(status, StatusCode::OK, "Pro started");
    assert_eq!(config["proxies"][0]["name"], "pro1");

    // A listed free proxy goes silent past its time to live while the others heartbeat: gone
    // at the next poll, before any sweep or view refresh removes it.
    let silent = names_of(&config["proxies"])
        .into_iter()
        .find(|name| name.starts_with("free"))
        .expect("a free proxy listed");
    app.clock.advance(std::time::Duration::from_secs(300));
    heartbeat_all_but(&app, &silent).await;
    app.clock.advance(std::time::Duration::from_secs(301));
    let (status, etag, config) = poll(&app, &token, IRAN[0], &etag).await;
    assert_eq!(status, StatusCode::OK, "a proxy went silent");
    assert!(!names_of(&config["proxies"]).contains(&silent), "{config}");

    // A day later Pro has ended and a new signing window has begun.
    app.clock.advance(std::time::Duration::from_secs(DAY));
    heartbeat_all_but(&app, "").await;
    let (status, _, later) = poll(&app, &token, IRAN[0], &etag).await;
    assert_eq!(status, StatusCode::OK, "Pro ended, a new window");
    assert!(!names_of(&later["proxies"]).contains(&"pro1".to_string()));
    assert!(
        later["issued_at"].as_u64() > config["issued_at"].as_u64(),
        "{later}"
    );
}
