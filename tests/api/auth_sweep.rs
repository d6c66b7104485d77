//! Every mutating endpoint in the OpenAPI file, called with every credential it must refuse:
//! none, the wrong kind, a token that stopped working, a signed-out panel session. Each is a
//! 401 or 403 and changes nothing. Every body it reads is size-limited (413), and one user
//! never reaches another's devices, payments or config.

use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};
use reqwest_middleware::RequestBuilder;
use serde_json::{json, Value};

use crate::admin::{create_account, sign_in, Session};
use crate::billing::{paid_intent, signed_webhook};
use crate::helpers::*;

const WEBHOOK_SECRET: &str = "whsec_sweep";
const MAX_BODY: u64 = 2048;

/// A credential as the test presents it.
#[derive(Clone)]
enum Credential {
    Nothing,
    Bearer(&'static str, String),
    Panel(&'static str, String, String),
}

impl Credential {
    fn name(&self) -> &'static str {
        match self {
            Credential::Nothing => "no credential",
            Credential::Bearer(name, _) | Credential::Panel(name, _, _) => name,
        }
    }

    fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Credential::Nothing => request,
            Credential::Bearer(_, token) => request.bearer_auth(token),
            Credential::Panel(_, cookie, csrf) => {
                request.header(COOKIE, cookie).header("X-CSRF-Token", csrf)
            }
        }
    }
}

fn panel(name: &'static str, session: &Session) -> Credential {
    Credential::Panel(name, session.cookie.clone(), session.csrf.clone())
}

struct World {
    app: TestApp,
    session: Session,
    a_token: String,
    a_id: u64,
    a_device: u64,
    b_token: String,
    b_id: u64,
    refused: Vec<Credential>,
}

async fn world() -> World {
    let app = spawn_app_with(|c| {
        c.max_body_bytes = MAX_BODY;
        c.stripe_webhook_secret = Some(proxyfleet::config::Secret::new(WEBHOOK_SECRET));
    })
    .await;
    app.proxy("free1", 9001, &[]).await;
    app.proxy("pro1", 9002, &[("role", "pro")]).await;
    create_account(&app).await;
    let session = sign_in(&app).await;
    let (a_id, a_token, _) = app.create_user("a@example.org", None).await;
    let (b_id, b_token, _) = app.create_user("b@example.org", None).await;
    let (c_id, c_token, _) = app.create_user("c@example.org", None).await;
    let disabled = app
        .admin_post(&format!("/api/v1/admin/users/{c_id}/disable"), &json!({}))
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let linked = app
        .user_post(&a_token, "/api/v1/devices", &json!({ "name": "phone" }))
        .await;
    assert_eq!(linked.status(), StatusCode::CREATED);
    let a_device = linked.json::<Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    // A panel session that signed out.
    let gone = sign_in(&app).await;
    let out = app
        .client
        .post(app.url("/admin/api/logout"))
        .header(COOKIE, &gone.cookie)
        .header("X-CSRF-Token", &gone.csrf)
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success(), "logout: {}", out.status());
    let refused = vec![
        Credential::Nothing,
        Credential::Bearer("a wrong admin token", "not-the-admin-token".into()),
        Credential::Bearer("the registry token", REGISTRY_TOKEN.into()),
        Credential::Bearer("a user token", b_token.clone()),
        Credential::Bearer("a disabled user's token", c_token),
        panel("a signed-out panel session", &gone),
        Credential::Panel(
            "a panel session with a wrong CSRF token",
            session.cookie.clone(),
            "0000".into(),
        ),
    ];
    // What the setup queued (a placement round after the enrolments, mails) runs before the
    // sweep takes its "before": only the refused calls may change anything after it.
    app.queue_idle().await;
    World {
        app,
        session,
        a_token,
        a_id,
        a_device,
        b_token,
        b_id,
        refused,
    }
}

/// The documented operations that change something, with the security schemes each accepts.
fn mutating_operations() -> Vec<(Method, String, Vec<String>, bool)> {
    let doc: Value = serde_json::from_str(proxyfleet::app::OPENAPI).unwrap();
    let mut out = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
                continue;
            }
            let schemes = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s.as_object().unwrap().keys().cloned())
                .collect();
            let has_body = operation.get("requestBody").is_some();
            out.push((method, path.clone(), schemes, has_body));
        }
    }
    assert!(out.len() > 20, "{} mutating operations", out.len());
    out
}

impl World {
    fn concrete(&self, path: &str) -> String {
        path.replace("{id}", &self.b_id.to_string())
            .replace("{name}", "free1")
            .replace("{code}", "nosuchcode")
    }

    /// A credential each scheme accepts.
    fn accepted(&self, schemes: &[String]) -> Credential {
        match schemes.first().map(String::as_str) {
            None => Credential::Nothing,
            Some("adminToken") => Credential::Bearer("admin", ADMIN_TOKEN.into()),
            Some("adminSession") => panel("panel", &self.session),
            Some("userToken") => Credential::Bearer("user", self.a_token.clone()),
            Some("registryToken") => Credential::Bearer("registry", REGISTRY_TOKEN.into()),
            Some(other) => panic!("unknown scheme {other}"),
        }
    }

    fn is_accepted(&self, schemes: &[String], credential: &Credential) -> bool {
        schemes
            .iter()
            .any(|scheme| match (scheme.as_str(), credential) {
                ("userToken", Credential::Bearer(_, token)) => {
                    *token == self.b_token || *token == self.a_token
                }
                ("registryToken", Credential::Bearer(_, token)) => token == REGISTRY_TOKEN,
                _ => false,
            })
    }

    async fn changes(&self) -> (u64, Value) {
        let mirror = self.app.admin_json("/api/v1/admin/mirror").await;
        let mut summary = self.app.admin_json("/api/v1/admin/summary").await;
        // Bytes on disk move with the engine's housekeeping (and the disk's free space with
        // every other process), not with what the store holds.
        summary["compaction"]["bytes_on_disk"] = Value::Null;
        summary["storage"]["free_bytes"] = Value::Null;
        (mirror["last_seq"].as_u64().unwrap(), summary)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutating_endpoint_refuses_every_wrong_credential_and_changes_nothing() {
    let world = world().await;
    let before = world.changes().await;
    let mut checked = 0;
    for (method, path, schemes, _) in mutating_operations() {
        if schemes.is_empty() {
            continue; // public: the login, the webhook (its signature), an invitation's code
        }
        let url = world.app.url(&world.concrete(&path));
        for credential in &world.refused {
            if world.is_accepted(&schemes, credential) {
                continue;
            }
            let request = world
                .app
                .client
                .request(method.clone(), &url)
                .json(&json!({}));
            let response = credential.apply(request).send().await.unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert!(
                status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN,
                "{method} {path} with {}: {status} {body}",
                credential.name()
            );
            let error: Value = serde_json::from_str(&body).expect("a JSON error");
            assert!(error["error"]["code"].is_string(), "{body}");
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} refusals checked");
    assert_eq!(
        world.changes().await,
        before,
        "a refused call changed something"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_body_is_size_limited() {
    let world = world().await;
    let before = world.changes().await;
    // Just over `max_body_bytes`, or over the webhook's own limit (Stripe's events are larger).
    // Kept small: the server answers 413 from Content-Length without reading the body, and a
    // client still writing a large body may see the connection close instead of the answer.
    let over = |path: &str| {
        // The panel's own calls (login, password, TOTP) take at most 4 KiB whatever the setting.
        let limit = match path {
            p if p.ends_with("/webhook") => 256 * 1024,
            p if p.starts_with("/admin/api/") => 4 * 1024,
            _ => MAX_BODY as usize,
        };
        "x".repeat(limit + 1)
    };
    let mut checked = 0;
    for (method, path, schemes, has_body) in mutating_operations() {
        if !has_body {
            continue;
        }
        let url = world.app.url(&world.concrete(&path));
        let huge = over(&path);
        // Seen once in CI: "error sending request" on a 2,049-byte body, not reproduced
        // since (a raw socket gets its 413 whole: abuse::a_body_refused_from_its_length_...).
        // A refused request changes nothing, so one that failed to send is sent again, at
        // most 5 times in all.
        let mut attempts = 0;
        let response = loop {
            attempts += 1;
            let request = world.app.client.request(method.clone(), &url);
            let request = if path == "/register" || path == "/unregister" {
                request.form(&[("name", huge.as_str())])
            } else {
                request.json(&json!({ "email": huge }))
            };
            match world.accepted(&schemes).apply(request).send().await {
                Ok(response) => break response,
                Err(e) if attempts < 5 && e.is_request() => continue,
                Err(e) => panic!("{method} {path}: {e}"),
            }
        };
        let status = response.status();
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{method} {path}: {}",
            response.text().await.unwrap()
        );
        assert_eq!(error_code(response).await, "body_too_large");
        checked += 1;
    }
    assert!(checked > 15, "{checked} bodies checked");
    assert_eq!(
        world.changes().await,
        before,
        "a refused body changed something"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_never_reaches_another_users_devices_payments_or_config() {
    let world = world().await;
    let app = &world.app;
    // A pays (a signed webhook): A is Pro with a pro proxy, B stays free.
    let body = paid_intent("evt_sweep_a", "pi_sweep_a", world.a_id, "pro-1m");
    let url = app.url("/api/v1/stripe/webhook");
    let paid = signed_webhook(&app.client, url, WEBHOOK_SECRET, body)
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), StatusCode::OK);

    // B cannot unlink A's device: it does not exist for B.
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/devices/{}", world.a_device)))
        .bearer_auth(&world.b_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let a_devices = app.user_json(&world.a_token, "/api/v1/devices").await;
    assert_eq!(a_devices["devices"].as_array().unwrap().len(), 1);
    let b_devices = app.user_json(&world.b_token, "/api/v1/devices").await;
    assert_eq!(b_devices["devices"], json!([]));

    let a_payments = app.user_json(&world.a_token, "/api/v1/pro/payments").await;
    assert_eq!(a_payments["payments"].as_array().unwrap().len(), 1);
    let b_payments = app.user_json(&world.b_token, "/api/v1/pro/payments").await;
    assert_eq!(b_payments["payments"], json!([]));

    let (_, _, a_config) = app.config(&world.a_token).await;
    let (_, _, b_config) = app.config(&world.b_token).await;
    let a_text = a_config.to_string();
    let b_text = b_config.to_string();
    assert!(
        a_text.contains("pro1"),
        "A's config has A's pro proxy: {a_text}"
    );
    assert!(
        !b_text.contains("pro1"),
        "B's config shows A's pro proxy: {b_text}"
    );
    assert!(!b_text.contains("a@example.org") && !b_text.contains(&world.a_token));
}
