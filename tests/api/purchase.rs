//! Starting a purchase against Stripe: end to end through localstripe (a Stripe emulator from
//! PyPI: customers, payment intents, signed webhooks), and the Checkout Session, which
//! localstripe lacks, against a local fake that checks Stripe's wire format.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use warp::Filter;

use crate::helpers::*;

const SECRET_KEY: &str = "sk_test_proxyfleet";
const WEBHOOK_SECRET: &str = "whsec_localstripe";

struct LocalStripe {
    child: std::process::Child,
    base: String,
}

impl LocalStripe {
    async fn start() -> LocalStripe {
        let probe = std::process::Command::new("python3")
            .args(["-c", "import localstripe"])
            .output();
        assert!(
            probe.is_ok_and(|o| o.status.success()),
            "localstripe is missing for python3: `python3 -m pip install localstripe` (the README's test command installs it)"
        );
        let port = free_port();
        let child = std::process::Command::new("python3")
            .args(["-m", "localstripe", "--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start localstripe");
        let base = format!("http://127.0.0.1:{port}");
        let probe_url = format!("{base}/v1/customers");
        eventually(Duration::from_secs(20), "localstripe listening", || async {
            client()
                .get(&probe_url)
                .basic_auth(SECRET_KEY, Some(""))
                .send()
                .await
                .ok()
        })
        .await;
        LocalStripe { child, base }
    }

    async fn call(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> Value {
        let response = client()
            .request(method, format!("{}{path}", self.base))
            .basic_auth(SECRET_KEY, Some(""))
            .form(form)
            .send()
            .await
            .expect("localstripe answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let body = response.bytes().await.unwrap();
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    }
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestApp {
    async fn purchase(&self, token: &str, body: Value) -> reqwest::Response {
        self.user_post(token, "/api/v1/pro/purchase", &body).await
    }
}

#[tokio::test]
async fn a_payment_confirmed_in_localstripe_makes_the_user_pro_through_its_webhook() {
    let stripe = LocalStripe::start().await;
    let app = spawn_app_with(|c| {
        c.stripe_api_base = stripe.base.clone();
        c.stripe_secret_key = Some(proxyfleet::config::Secret::new(SECRET_KEY));
        c.stripe_webhook_secret = Some(proxyfleet::config::Secret::new(WEBHOOK_SECRET));
    })
    .await;
    let webhook_url = app.url("/api/v1/stripe/webhook");
    stripe
        .call(
            reqwest::Method::POST,
            "/_config/webhooks/proxyfleet",
            &[
                ("url", &webhook_url),
                ("secret", WEBHOOK_SECRET),
                ("events[0]", "payment_intent.succeeded"),
            ],
        )
        .await;
    app.proxy("pro0", 11_000, &[("role", "pro")]).await;
    let (id, token, _) = app.create_user("buyer@example.org", None).await;

    let started = app.purchase(&token, json!({ "plan": "pro-1m" })).await;
    assert_eq!(started.status(), StatusCode::CREATED);
    let started: Value = started.json().await.unwrap();
    let intent_id = started["payment_intent"].as_str().unwrap().to_string();
    assert!(started["client_secret"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{intent_id}_secret")));

    // What Stripe holds: our amount, currency, customer and the metadata the webhook needs.
    let intent = stripe
        .call(
            reqwest::Method::GET,
            &format!("/v1/payment_intents/{intent_id}"),
            &[],
        )
        .await;
    assert_eq!(intent["amount"], 499);
    assert_eq!(intent["currency"], "usd");
    assert_eq!(intent["customer"], started["customer"]);
    assert_eq!(
        intent["metadata"],
        json!({ "user_id": id.to_string(), "plan": "pro-1m" })
    );
    let customer = stripe
        .call(
            reqwest::Method::GET,
            &format!("/v1/customers/{}", started["customer"].as_str().unwrap()),
            &[],
        )
        .await;
    assert_eq!(customer["email"], "buyer@example.org");

    // The buyer pays (what the app's Stripe SDK does), localstripe sends the signed webhook.
    let card = stripe
        .call(
            reqwest::Method::POST,
            "/v1/payment_methods",
            &[
                ("type", "card"),
                ("card[number]", "4242424242424242"),
                ("card[exp_month]", "12"),
                ("card[exp_year]", "2030"),
                ("card[cvc]", "123"),
            ],
        )
        .await;
    // (localstripe takes the payment method by update, then a bare confirm.)
    stripe
        .call(
            reqwest::Method::POST,
            &format!("/v1/payment_intents/{intent_id}"),
            &[("payment_method", card["id"].as_str().unwrap())],
        )
        .await;
    let paid = stripe
        .call(
            reqwest::Method::POST,
            &format!("/v1/payment_intents/{intent_id}/confirm"),
            &[],
        )
        .await;
    assert_eq!(paid["status"], "succeeded");
    let pro = eventually(
        Duration::from_secs(20),
        "pro through the webhook",
        || async {
            let detail = app.admin_json(&format!("/api/v1/admin/users/{id}")).await;
            (detail["pro"]["active"] == true).then_some(detail["pro"].clone())
        },
    )
    .await;
    assert_eq!(pro["proxies"], json!(["pro0"]));
    let payments = app.admin_json("/api/v1/admin/payments").await;
    assert_eq!(payments["payments"][0]["id"], intent_id.as_str());

    // A second purchase reuses the Customer.
    let again: Value = app
        .purchase(&token, json!({ "plan": "pro-1y" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["customer"], started["customer"]);
    assert_ne!(again["payment_intent"], started["payment_intent"]);
}

/// One request as the fake Stripe saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HashMap<String, String>,
    form: Vec<(String, String)>,
}

/// A fake of the two Stripe endpoints a checkout uses, recording what it receives.
async fn fake_stripe() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let route = warp::post()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(
            move |path: warp::path::FullPath,
                  headers: warp::http::HeaderMap,
                  body: bytes::Bytes| {
                let form: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(&body).unwrap_or_default();
                let headers = headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_string(),
                            v.to_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                let path = path.as_str().to_string();
                log.lock().unwrap().push(Seen {
                    path: path.clone(),
                    headers,
                    form,
                });
                let answer = match path.as_str() {
                    "/v1/customers" => json!({ "id": "cus_fake1", "object": "customer" }),
                    _ => json!({ "id": "cs_test_fake1", "object": "checkout.session",
                             "url": "https://checkout.stripe.test/c/pay/cs_test_fake1" }),
                };
                warp::reply::json(&answer)
            },
        );
    let (address, server) = warp::serve(route).bind_ephemeral(([127, 0, 0, 1], 0));
    tokio::spawn(server);
    (format!("http://{address}"), seen)
}

fn field<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.form
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {:?}", seen.form))
}

#[tokio::test]
async fn a_checkout_link_is_made_with_stripes_wire_format() {
    let (base, seen) = fake_stripe().await;
    let app = spawn_app_with(|c| {
        c.stripe_api_base = base.clone();
        c.stripe_secret_key = Some(proxyfleet::config::Secret::new(SECRET_KEY));
        c.checkout_success_url = Some("https://proxyfleet.test/pro/thanks".into());
        c.checkout_cancel_url = Some("https://proxyfleet.test/pro".into());
    })
    .await;
    let (id, token, _) = app.create_user("web@example.org", None).await;
    let body = json!({ "plan": "pro-1y", "mode": "checkout", "idempotency_key": "order-77" });
    let started = app.purchase(&token, body.clone()).await;
    assert_eq!(started.status(), StatusCode::CREATED);
    let started: Value = started.json().await.unwrap();
    assert_eq!(
        started["url"],
        "https://checkout.stripe.test/c/pay/cs_test_fake1"
    );
    assert_eq!(started["customer"], "cus_fake1");

    // A retry of the same purchase sends the same Idempotency-Key.
    assert_eq!(
        app.purchase(&token, body).await.status(),
        StatusCode::CREATED
    );
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "/v1/customers",
            "/v1/checkout/sessions",
            "/v1/checkout/sessions"
        ]
    );
    for request in &seen {
        assert_eq!(
            request.headers["authorization"],
            format!("Bearer {SECRET_KEY}")
        );
        assert_eq!(
            request.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert!(!request.headers["idempotency-key"].is_empty());
        assert!(request.headers.contains_key("stripe-version"));
    }
    assert_eq!(field(&seen[0], "email"), "web@example.org");
    assert_eq!(field(&seen[0], "metadata[user_id]"), id.to_string());
    let session = &seen[1];
    assert_eq!(field(session, "mode"), "payment");
    assert_eq!(field(session, "customer"), "cus_fake1");
    assert_eq!(field(session, "client_reference_id"), id.to_string());
    assert_eq!(
        field(session, "success_url"),
        "https://proxyfleet.test/pro/thanks"
    );
    assert_eq!(field(session, "line_items[0][quantity]"), "1");
    assert_eq!(field(session, "line_items[0][price_data][currency]"), "usd");
    assert_eq!(
        field(session, "line_items[0][price_data][unit_amount]"),
        "3999"
    );
    assert_eq!(
        field(session, "line_items[0][price_data][product_data][name]"),
        "Pro, 1 year"
    );
    assert_eq!(field(session, "metadata[user_id]"), id.to_string());
    assert_eq!(field(session, "metadata[plan]"), "pro-1y");
    assert_eq!(
        session.headers["idempotency-key"],
        seen[2].headers["idempotency-key"]
    );
    assert!(session.headers["idempotency-key"].contains("order-77"));
}

#[tokio::test]
async fn purchases_refuse_unknown_plans_bad_keys_and_a_server_without_stripe() {
    let off = spawn_app().await;
    let (_, token, _) = off.create_user("off@example.org", None).await;
    let response = off.purchase(&token, json!({ "plan": "pro-1m" })).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    let (base, seen) = fake_stripe().await;
    let app = spawn_app_with(|c| {
        c.stripe_api_base = base.clone();
        c.stripe_secret_key = Some(proxyfleet::config::Secret::new(SECRET_KEY));
    })
    .await;
    let (_, token, _) = app.create_user("picky@example.org", None).await;
    let unknown = app.purchase(&token, json!({ "plan": "pro-forever" })).await;
    assert_eq!(error_code(unknown).await, "unknown_plan");
    let bad_key = app
        .purchase(
            &token,
            json!({ "plan": "pro-1m", "idempotency_key": "a b" }),
        )
        .await;
    assert_eq!(error_code(bad_key).await, "invalid_idempotency_key");
    let no_urls = app
        .purchase(&token, json!({ "plan": "pro-1m", "mode": "checkout" }))
        .await;
    assert_eq!(no_urls.status(), StatusCode::SERVICE_UNAVAILABLE);
    let anonymous = app
        .send_as(reqwest::Method::POST, "/api/v1/pro/purchase", None)
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|s| s.path == "/v1/customers"),
        "nothing is bought by a refused request"
    );
}
