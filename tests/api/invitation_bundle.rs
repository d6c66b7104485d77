//! The bootstrap inside the invitation: inviting makes the invitee's pending account with its
//! fallback proxies, and the mail (through a real SMTP server) carries its signed config, so
//! the invitee connects, through an edge, without ever reaching the primary. Accepting
//! activates the account; an invitation that expires or is revoked unused releases its
//! proxies.

use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::edge::start_edge;
use crate::helpers::{
    client, error_code, eventually, free_port, names_of, spawn_app_with, verify_with_openssl,
    TestApp,
};
use crate::invitations::accept;
use crate::mail::{app_mailing_to, SmtpSink};
use crate::redis_support::{caught_up, RedisServer};

/// Three fallback proxies and an inviter; returns the inviter's token.
async fn fleet_with_inviter(app: &TestApp) -> String {
    for (i, name) in ["fba", "fbb", "fbc"].iter().enumerate() {
        app.proxy(name, 9_700 + i as u16, &[("role", "fallback")])
            .await;
    }
    let (_, token, proxies) = app.create_user("ana@example.org", None).await;
    assert!(!proxies.is_empty());
    token
}

/// Invites `email` as `token`, expecting 201: the whole answer.
async fn invite(app: &TestApp, token: &str, email: &str) -> Value {
    let response = crate::invitations::invite(app, token, email).await;
    assert_eq!(response.status(), StatusCode::CREATED, "invite {email}");
    response.json().await.unwrap()
}

async fn user_view(app: &TestApp, id: u64) -> Value {
    app.admin_json(&format!("/api/v1/admin/users/{id}")).await["user"].clone()
}

/// The proxy names a config lists.
fn names(config: &Value) -> Vec<String> {
    names_of(&config["proxies"])
}

#[tokio::test]
async fn the_invitation_mail_carries_a_signed_config_of_the_invitees_own_proxies() {
    let port = free_port();
    let sink = SmtpSink::start(port);
    let app = app_mailing_to(port, |_| {}).await;
    let ana = fleet_with_inviter(&app).await;
    let invited = invite(&app, &ana, "bob@example.org").await;
    let invitee = invited["invitee"].as_u64().expect("the pending account");
    let code = invited["code"].as_str().unwrap();

    // The pending account exists at once, with its proxies.
    let pending = user_view(&app, invitee).await;
    assert_eq!(pending["status"], "pending");
    let proxies = app.user_proxies(invitee).await;
    assert!(!proxies.is_empty(), "{pending}");

    // The mail's attachment is the bundle the API gave the inviter.
    let mails = sink.wait_for(2).await;
    let mail = mails
        .iter()
        .find(|m| m["rcpt_tos"] == json!(["bob@example.org"]))
        .expect("the invitation mail");
    let attachment = mail["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["filename"] == "proxyfleet-config.json")
        .unwrap_or_else(|| panic!("no config attached: {mail}"));
    assert_eq!(attachment["content_type"], "application/json");
    let bundle: Value = serde_json::from_str(attachment["text"].as_str().unwrap()).unwrap();
    assert_eq!(bundle, invited["bundle"]);
    assert_eq!(bundle["format"], "proxyfleet-config/1");
    assert_eq!(bundle["invitation_code"], code);

    // Signed by the config key (its fingerprint is the key's), checked by OpenSSL.
    let pubkey = app.public_json("/api/v1/config/pubkey").await;
    let key = pubkey["public_key"].as_str().unwrap();
    assert_eq!(bundle["public_key"], key);
    let raw_key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap();
    assert_eq!(
        bundle["public_key_sha256"],
        hex::encode(Sha256::digest(raw_key))
    );
    let body = bundle["body"].as_str().unwrap();
    let signed = verify_with_openssl(key, bundle["signature"].as_str().unwrap(), body.as_bytes());
    assert_eq!(signed["user"], invitee, "bound to the invitee's account");
    let listed = names(&signed);
    for proxy in &proxies {
        assert!(listed.contains(proxy), "{proxy} missing from {signed}");
    }
    assert!(
        signed["expires_at"].as_u64().unwrap() >= invited["expires_at"].as_u64().unwrap(),
        "valid for the invitation's whole life: {signed}"
    );

    // The link and the QR code carry the same bundle.
    let link = invited["link"].as_str().unwrap();
    let encoded = link
        .strip_prefix("proxyfleet://config?bundle=")
        .expect("a proxyfleet:// link");
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&decoded).unwrap(), bundle);
    assert!(invited["qr_svg"].as_str().unwrap().contains("<svg"));

    // The token reads the config before the invitation is accepted, and nothing else.
    let token = bundle["token"].as_str().unwrap();
    let (status, _, config) = app.config(token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["user"], invitee);
    let others = app
        .send_as(Method::GET, "/api/v1/invitations", Some(token))
        .await;
    assert_eq!(others.status(), StatusCode::UNAUTHORIZED);
    let outbox = app.admin_json("/api/v1/admin/mail/outbox").await;
    assert!(
        !outbox.to_string().contains(token),
        "the outbox shows no token"
    );

    // Accepting activates the same account with the same token; the invitee joins the tree.
    let accepted = accept(&app, code).await;
    assert_eq!(accepted.status(), StatusCode::CREATED);
    let accepted: Value = accepted.json().await.unwrap();
    assert_eq!(accepted["id"], invitee);
    assert_eq!(accepted["token"], token);
    assert_eq!(user_view(&app, invitee).await["status"], "active");
    assert_eq!(app.user_proxies(invitee).await, proxies, "kept");
    let again = accept(&app, code).await;
    assert_eq!(again.status(), StatusCode::OK);
    let welcome = sink.wait_for(3).await;
    assert!(welcome
        .iter()
        .any(|m| m["rcpt_tos"] == json!(["bob@example.org"])
            && m["subject"] == "Welcome to proxyfleet"));
    let tree = app
        .admin_json(&format!(
            "/api/v1/admin/users/{}/invitees",
            invited["inviter"]
        ))
        .await;
    assert!(
        tree.to_string().contains(&format!("\"id\":{invitee}")),
        "{tree}"
    );
    app.assert_consistent().await;
}

#[tokio::test]
async fn an_invitee_connects_through_an_edge_without_ever_calling_the_primary() {
    let redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(move |c| c.redis_url = Some(url)).await;
    let ana = fleet_with_inviter(&app).await;
    let invited = invite(&app, &ana, "bob@example.org").await;
    let bundle = &invited["bundle"];
    let token = bundle["token"].as_str().unwrap();
    let edge = start_edge(&redis).await;
    caught_up(&app.url(""), Duration::from_secs(30)).await;
    let primary_configs = "proxyfleet_http_requests_total{route=\"/api/v1/config\"";
    let before = app.metric(primary_configs).await;

    // Everything the invitee's client does: the edge only, with the bundle's token.
    let response = client()
        .get(format!("{}/api/v1/config", edge.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let signature = response.headers()["x-proxyfleet-signature"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.bytes().await.unwrap();
    let signed = verify_with_openssl(bundle["public_key"].as_str().unwrap(), &signature, &body);
    assert_eq!(signed["user"], invited["invitee"]);
    let from_bundle: Value = serde_json::from_str(bundle["body"].as_str().unwrap()).unwrap();
    assert_eq!(names(&signed), names(&from_bundle), "the same proxies");
    assert!(signed["issued_at"].as_u64() >= from_bundle["issued_at"].as_u64());
    assert_eq!(
        app.metric(primary_configs).await,
        before,
        "the primary served no config"
    );

    // Revoked: the edge stops serving it once the mirror carries the change.
    let code = invited["code"].as_str().unwrap();
    let revoked = app
        .send_as(
            Method::DELETE,
            &format!("/api/v1/invitations/{code}"),
            Some(&ana),
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    caught_up(&app.url(""), Duration::from_secs(30)).await;
    let refused = client()
        .get(format!("{}/api/v1/config", edge.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_invitation_that_expires_unused_releases_its_proxies_and_its_email() {
    // The code expires in an hour, reached by moving the app's clock, not by waiting: with a
    // 2 s lifetime a loaded machine let it lapse before the sign-up below. The proxy outlives
    // that hour without heartbeats.
    let app = spawn_app_with(|c| {
        c.invitation_ttl_secs = 3_600;
        c.heartbeat_ttl_secs = 86_400;
        c.fallbacks_per_user = 1;
    })
    .await;
    // One slot for the inviter, one for the invitee: the pending account counts as assigned,
    // so a sign-up meanwhile finds the proxy full.
    app.proxy("solo", 9_710, &[("role", "fallback"), ("capacity", "2")])
        .await;
    let (_, ana, _) = app.create_user("ana@example.org", None).await;
    let invited = invite(&app, &ana, "bob@example.org").await;
    let invitee = invited["invitee"].as_u64().unwrap();
    let token = invited["bundle"]["token"].as_str().unwrap().to_string();
    assert_eq!(app.user_proxies(invitee).await, vec!["solo"]);
    let (waiting, _, none) = app.create_user("dan@example.org", None).await;
    assert!(none.is_empty(), "the proxy is full: {none:?}");

    // The expiry task falls due when the code expires: wait for what it does.
    app.clock.advance(Duration::from_secs(3_601));
    let lapsed = eventually(Duration::from_secs(30), "the invitee to lapse", || async {
        let detail = app
            .admin_json(&format!("/api/v1/admin/users/{invitee}"))
            .await;
        (detail["user"]["status"] == "lapsed").then_some(detail)
    })
    .await;
    assert_eq!(lapsed["user"]["proxies"], json!([]), "{lapsed}");
    assert!(
        lapsed["history"]
            .to_string()
            .contains("invitation expired unused"),
        "{lapsed}"
    );
    // The freed slot goes to the user who waited for one.
    eventually(
        Duration::from_secs(30),
        "the waiting user to be placed",
        || async { (app.user_proxies(waiting).await == vec!["solo"]).then_some(()) },
    )
    .await;
    assert_eq!(app.config(&token).await.0, StatusCode::UNAUTHORIZED);
    let late = accept(&app, invited["code"].as_str().unwrap()).await;
    assert_eq!(late.status(), StatusCode::GONE);
    assert_eq!(error_code(late).await, "invitation_expired");
    // A lapsed account cannot be brought back; its address can be invited again.
    let enable = app
        .admin_post(&format!("/api/v1/admin/users/{invitee}/enable"), &json!({}))
        .await;
    assert_eq!(enable.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(enable).await, "user_lapsed");
    let again = invite(&app, &ana, "bob@example.org").await;
    assert_ne!(again["invitee"], invitee);
    app.assert_consistent().await;
}

#[tokio::test]
async fn a_revoked_invitation_or_a_disabled_inviter_lets_the_pending_account_lapse() {
    let app = spawn_app_with(|_| {}).await;
    let ana = fleet_with_inviter(&app).await;
    let revoked = invite(&app, &ana, "bob@example.org").await;
    let kept = invite(&app, &ana, "carol@example.org").await;
    let code = revoked["code"].as_str().unwrap();
    let pending = kept["invitee"].as_u64().unwrap();

    // A pending account is decided by its invitation, not disabled on its own.
    let disable = app
        .admin_post(
            &format!("/api/v1/admin/users/{pending}/disable"),
            &json!({}),
        )
        .await;
    assert_eq!(disable.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(disable).await, "user_pending");

    let response = app
        .send_as(
            Method::DELETE,
            &format!("/api/v1/invitations/{code}"),
            Some(&ana),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let bob = user_view(&app, revoked["invitee"].as_u64().unwrap()).await;
    assert_eq!(
        (bob["status"].clone(), bob["proxies"].clone()),
        (json!("lapsed"), json!([]))
    );
    let token = revoked["bundle"]["token"].as_str().unwrap();
    assert_eq!(app.config(token).await.0, StatusCode::UNAUTHORIZED);

    // Disabling the inviter revokes what it vouched for, in the same transaction.
    let ana_id = kept["inviter"].as_u64().unwrap();
    let disabled = app
        .admin_post(&format!("/api/v1/admin/users/{ana_id}/disable"), &json!({}))
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let carol = user_view(&app, pending).await;
    assert_eq!(carol["status"], "lapsed", "{carol}");
    let refused = accept(&app, kept["code"].as_str().unwrap()).await;
    assert_eq!(refused.status(), StatusCode::GONE);
    app.assert_consistent().await;
}
