//! HTTPS out of the box: a self-signed certificate made on first start, kept across restarts,
//! its fingerprint given to the operator; a client that trusts exactly that certificate gets
//! the API over TLS. Plain HTTP off loopback is refused unless allowed.

use proxyfleet::Application;
use reqwest::StatusCode;

use crate::helpers::test_config;

/// A running server: stop it with `stop(server).await`.
type Running = (
    proxyfleet::app::ShutdownHandle,
    tokio::task::JoinHandle<proxyfleet::error::Result<()>>,
);

/// Stops the server and waits until its store is closed.
async fn stop((shutdown, server): Running) {
    shutdown.trigger();
    server.await.unwrap().unwrap();
}

async fn start(data: &std::path::Path) -> (std::net::SocketAddr, String, Running) {
    let mut config = test_config(data);
    config.https_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = Application::build(config).await.expect("builds with HTTPS");
    let https = app.https().expect("an HTTPS listener");
    assert!(https.self_signed);
    let (address, fingerprint) = (https.address, https.fingerprint.clone());
    let shutdown = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    (address, fingerprint, (shutdown, server))
}

/// A client that trusts exactly this certificate, reaching `localhost` at `address`.
fn pinned_client(pem: &[u8], address: std::net::SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap())
        .resolve("localhost", address)
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_api_answers_over_tls_with_a_kept_self_signed_certificate() {
    let data = tempfile::tempdir().unwrap();
    let (address, fingerprint, shutdown) = start(data.path()).await;
    let pem = std::fs::read(data.path().join("tls/self-signed.crt")).unwrap();
    assert_eq!(
        proxyfleet::app::tls::fingerprint(&pem).unwrap(),
        fingerprint,
        "the printed fingerprint is the certificate's"
    );
    let pinned = pinned_client(&pem, address);
    let url = format!("https://localhost:{}/healthz", address.port());
    let response = pinned.get(&url).send().await.expect("TLS handshake");
    assert_eq!(response.status(), StatusCode::OK);
    // A client that does not trust it is refused by TLS itself.
    let stranger = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .resolve("localhost", address)
        .build()
        .unwrap();
    assert!(stranger.get(&url).send().await.is_err());
    stop(shutdown).await;

    let (_, again, shutdown) = start(data.path()).await;
    assert_eq!(again, fingerprint, "the same certificate after a restart");
    stop(shutdown).await;
}

#[tokio::test]
async fn plain_http_off_loopback_is_refused_unless_allowed() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.listen = "0.0.0.0:0".parse().unwrap();
    let refused = Application::build(config.clone())
        .await
        .err()
        .expect("refused");
    assert!(
        refused.to_string().contains("allow_public_http"),
        "{refused}"
    );
    config.allow_public_http = true;
    let app = Application::build(config)
        .await
        .expect("allowed when said so");
    app.shutdown_handle().trigger();
}

#[tokio::test]
async fn a_panel_login_over_https_gets_a_secure_cookie() {
    let data = tempfile::tempdir().unwrap();
    let (address, _, shutdown) = start(data.path()).await;
    let pem = std::fs::read(data.path().join("tls/self-signed.crt")).unwrap();
    let pinned = pinned_client(&pem, address);
    let base = format!("https://localhost:{}", address.port());
    let created = pinned
        .post(format!("{base}/admin/api/accounts"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .json(&serde_json::json!({ "username": "ops", "password": "a long enough passphrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let login = pinned
        .post(format!("{base}/admin/api/login"))
        .json(&serde_json::json!({ "username": "ops", "password": "a long enough passphrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    stop(shutdown).await;
}
