//! Rate limits on the public endpoints: a burst, then 429 with `Retry-After` and the JSON
//! error shape; a limited request changes nothing; X-Forwarded-For from an untrusted peer does
//! not buy a fresh allowance.

use proxyfleet::http::rate_limit::{Limit, RateLimitSettings};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{error_code, spawn_app_with, TestApp};

async fn spawn_limited(adjust: impl FnOnce(&mut RateLimitSettings)) -> TestApp {
    spawn_app_with(|config| {
        config.rate_limits = RateLimitSettings::default();
        adjust(&mut config.rate_limits);
    })
    .await
}

async fn assert_limited(response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=61).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(error_code(response).await, "too_many_requests");
}

#[tokio::test]
async fn gateway_list_allows_a_burst_per_address_then_429() {
    let app = spawn_limited(|limits| limits.json = Limit::new((1, 3), (0, 1))).await;
    for _ in 0..3 {
        let response = app.client.get(app.url("/json")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // A made-up X-Forwarded-For from a peer that is not a trusted proxy changes nothing.
    let spoofed = app
        .client
        .get(app.url("/json"))
        .header("x-forwarded-for", "203.0.113.77")
        .send()
        .await
        .unwrap();
    assert_limited(spoofed).await;
}

#[tokio::test]
async fn a_limited_registration_registers_nothing() {
    let app = spawn_limited(|limits| limits.register = Limit::new((1, 2), (0, 1))).await;
    app.register_ok("alpha", 9001).await;
    app.register_ok("beta", 9002).await;
    let third = app
        .register(&[("name", "gamma"), ("ip", "127.0.0.1"), ("port", "9003")])
        .await;
    assert_limited(third).await;
    let mut names = app.proxy_names().await;
    names.sort();
    assert_eq!(names, ["alpha", "beta"]);
}

#[tokio::test]
async fn invitation_codes_and_referral_tokens_have_their_own_allowance() {
    let app = spawn_limited(|limits| {
        limits.invitation_accept = Limit::new((600, 100), (1, 2));
        limits.referral_redeem = Limit::new((600, 100), (1, 2));
    })
    .await;
    // Guessing one invitation code: two answers, then 429 (other codes are still answered).
    for _ in 0..2 {
        let guess = app
            .client
            .post(app.url("/api/v1/invitations/guessedcode/accept"))
            .send()
            .await
            .unwrap();
        assert_eq!(guess.status(), StatusCode::NOT_FOUND);
    }
    let again = app
        .client
        .post(app.url("/api/v1/invitations/guessedcode/accept"))
        .send()
        .await
        .unwrap();
    assert_limited(again).await;
    let other = app
        .client
        .post(app.url("/api/v1/invitations/othercode/accept"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);

    // One user trying referral codes: two answers, then 429; another user is not held back.
    let (_, ana, _) = app.create_user("ana@example.org", None).await;
    let (_, bob, _) = app.create_user("bob@example.org", None).await;
    let body = json!({ "code": "NOSUCHCODE" });
    for _ in 0..2 {
        let tried = app.user_post(&ana, "/api/v1/referrals/redeem", &body).await;
        assert_ne!(tried.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    assert_limited(app.user_post(&ana, "/api/v1/referrals/redeem", &body).await).await;
    let bobs = app.user_post(&bob, "/api/v1/referrals/redeem", &body).await;
    assert_ne!(bobs.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn reachability_reports_are_limited_per_token_and_a_limited_one_counts_for_nothing() {
    let app = spawn_limited(|limits| limits.report = Limit::new((600, 100), (1, 2))).await;
    app.proxy("p1", 9_901, &[("role", "fallback")]).await;
    let (_, ana, proxies) = app.create_user("ana@example.org", None).await;
    let (_, bob, _) = app.create_user("bob@example.org", None).await;
    assert_eq!(proxies, ["p1"]);
    let body = json!({ "country": "IR", "reports": [{ "proxy": "p1", "reachable": false }] });
    for _ in 0..2 {
        let sent = app.user_post(&ana, "/api/v1/reports", &body).await;
        assert_eq!(sent.status(), StatusCode::OK);
    }
    assert_limited(app.user_post(&ana, "/api/v1/reports", &body).await).await;
    let blocking = app.admin_json("/api/v1/admin/proxies/p1/blocking").await;
    assert_eq!(
        blocking["verdicts"][0]["reports"].as_array().unwrap().len(),
        1
    );
    // Another account is not held back by ana's allowance.
    let bobs = app.user_post(&bob, "/api/v1/reports", &body).await;
    assert_eq!(bobs.status(), StatusCode::OK);
}
