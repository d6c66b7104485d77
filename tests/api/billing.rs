//! The Pro tier: plans, Stripe webhooks (signed as Stripe documents, checked against Stripe's
//! own Python library too), pro time, pro proxies and payments.

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

use crate::helpers::*;

const WEBHOOK_SECRET: &str = "whsec_proxyfleet_test";

async fn billing_app() -> TestApp {
    spawn_app_with(|c| {
        c.stripe_webhook_secret = Some(proxyfleet::config::Secret::new(WEBHOOK_SECRET));
    })
    .await
}

/// Stripe's scheme, written out here (not the server's code): t=<secs>,v1=hex(HMAC-SHA256(secret, "t.body")).
pub fn stripe_header(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A webhook delivery of `body` to `url`, signed with `secret` as Stripe signs.
pub fn signed_webhook(
    client: &crate::helpers::Http,
    url: String,
    secret: &str,
    body: Vec<u8>,
) -> reqwest_middleware::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("stripe-signature", stripe_header(secret, unix_now(), &body))
        .body(body)
}

fn event(id: &str, kind: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "object": "event", "api_version": "2024-06-20", "created": unix_now(),
        "livemode": false, "type": kind, "data": { "object": object },
    }))
    .unwrap()
}

pub fn paid_intent(event_id: &str, intent: &str, user: u64, plan: &str) -> Vec<u8> {
    event(
        event_id,
        "payment_intent.succeeded",
        json!({ "id": intent, "object": "payment_intent", "amount": 499, "amount_received": 499,
                "currency": "usd", "customer": "cus_test", "status": "succeeded",
                "metadata": { "user_id": user.to_string(), "plan": plan } }),
    )
}

impl TestApp {
    async fn deliver(&self, body: &[u8], header: Option<String>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/api/v1/stripe/webhook"))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(header) = header {
            request = request.header("stripe-signature", header);
        }
        request.send().await.expect("request")
    }

    async fn deliver_signed(&self, body: &[u8]) -> Value {
        let response = self
            .deliver(body, Some(stripe_header(WEBHOOK_SECRET, unix_now(), body)))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn pro_of(&self, id: u64) -> Value {
        self.admin_json(&format!("/api/v1/admin/users/{id}")).await["pro"].clone()
    }
}

#[tokio::test]
async fn plans_default_to_a_month_and_a_year() {
    let app = billing_app().await;
    let body: Value = app.public_json("/api/v1/pro/plans").await;
    let plans: Vec<(&str, u64)> = body["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["days"].as_u64().unwrap()))
        .collect();
    assert_eq!(plans, vec![("pro-1m", 30), ("pro-1y", 365)]);
}

#[tokio::test]
async fn a_paid_intent_grants_pro_with_the_least_loaded_pro_proxies_once() {
    let app = billing_app().await;
    for (i, clients) in [(0, "40"), (1, "5"), (2, "10")] {
        app.proxy(
            &format!("pro{i}"),
            11_000 + i,
            &[("role", "pro"), ("clients", clients)],
        )
        .await;
    }
    app.proxy("fb", 12_000, &[]).await;
    let (id, token, _) = app.create_user("payer@example.org", None).await;
    assert_eq!(app.pro_of(id).await["active"], false);

    let before = unix_now();
    let body = paid_intent("evt_pay_1", "pi_1", id, "pro-1m");
    let answer = app.deliver_signed(&body).await;
    assert_eq!(answer["outcome"], format!("granted 30 days to user {id}"));
    let pro = app.pro_of(id).await;
    assert_eq!(pro["active"], true);
    let until = pro["until"].as_i64().unwrap();
    assert!(
        (until - before - 30 * 86_400).abs() <= 5,
        "30 days from now: {pro}"
    );
    assert_eq!(
        pro["proxies"],
        json!(["pro1", "pro2"]),
        "the two least loaded"
    );
    let (_, _, config) = app.config(&token).await;
    let names = names_of(&config["proxies"]);
    assert_eq!(
        &names[..3],
        &["pro1", "pro2", "fb"],
        "pro first, then the fallback"
    );

    // Stripe redelivers the event, then the Checkout Session of the same payment arrives.
    let again = app.deliver_signed(&body).await;
    assert_eq!(again["outcome"], "already processed");
    let session = event(
        "evt_session_1",
        "checkout.session.completed",
        json!({ "id": "cs_1", "object": "checkout.session", "payment_intent": "pi_1",
                "payment_status": "paid", "amount_total": 499, "currency": "usd",
                "metadata": { "user_id": id.to_string(), "plan": "pro-1m" } }),
    );
    let counted = app.deliver_signed(&session).await;
    assert!(
        counted["outcome"]
            .as_str()
            .unwrap()
            .contains("already counted"),
        "{counted}"
    );
    assert_eq!(
        app.pro_of(id).await["until"].as_i64().unwrap(),
        until,
        "granted once"
    );

    let mine = app
        .send_as(reqwest::Method::GET, "/api/v1/pro/payments", Some(&token))
        .await;
    assert_eq!(mine.status(), StatusCode::OK);
    let mine: Value = mine.json().await.unwrap();
    assert_eq!(mine["payments"].as_array().unwrap().len(), 1);
    assert_eq!(mine["payments"][0]["id"], "pi_1");
    assert_eq!(mine["payments"][0]["days"], 30);
    let all = app.admin_json("/api/v1/admin/payments").await;
    assert_eq!(all["totals"]["usd"]["amount"], 499);
    assert_eq!(all["totals"]["usd"]["payments"], 1);
    // The stored totals are counters in /metrics (a `_total` name is a counter's: promtool).
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("# TYPE proxyfleet_payments_total counter"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE proxyfleet_payments_amount_total counter"));
    assert!(metrics.contains(r#"proxyfleet_payments_total{currency="usd"} 1"#));
    app.assert_consistent().await;
}

#[tokio::test]
async fn a_second_payment_extends_from_the_current_expiry_and_a_refund_takes_its_days_back() {
    let app = billing_app().await;
    app.proxy("pro0", 11_000, &[("role", "pro")]).await;
    let (id, token, _) = app.create_user("twice@example.org", None).await;
    app.deliver_signed(&paid_intent("evt_a", "pi_a", id, "pro-1m"))
        .await;
    let first = app.pro_of(id).await["until"].as_i64().unwrap();
    app.deliver_signed(&paid_intent("evt_b", "pi_b", id, "pro-1y"))
        .await;
    let second = app.pro_of(id).await["until"].as_i64().unwrap();
    assert_eq!(second - first, 365 * 86_400, "a year on top of the month");

    let refund = |event_id: &str, refunded: u64| {
        event(
            event_id,
            "charge.refunded",
            json!({ "id": "ch_b", "object": "charge", "payment_intent": "pi_b", "amount": 499,
                    "amount_refunded": refunded, "refunded": refunded == 499 }),
        )
    };
    app.deliver_signed(&refund("evt_r1", 499)).await;
    assert_eq!(
        app.pro_of(id).await["until"].as_i64().unwrap(),
        first,
        "the year is taken back"
    );
    let all = app.admin_json("/api/v1/admin/payments").await;
    assert_eq!(all["totals"]["usd"]["refunded"], 499);
    let refunded: Vec<&Value> = all["payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"] == "pi_b")
        .collect();
    assert_eq!(refunded[0]["status"], "refunded");

    // Refunding the first payment too ends Pro: the pro proxy is released at once.
    let whole = event(
        "evt_r2",
        "charge.refunded",
        json!({ "id": "ch_a", "object": "charge", "payment_intent": "pi_a", "amount": 499, "amount_refunded": 499 }),
    );
    app.deliver_signed(&whole).await;
    let pro = app.pro_of(id).await;
    assert_eq!(pro["active"], false, "{pro}");
    assert_eq!(pro["proxies"], json!([]));
    let (_, _, config) = app.config(&token).await;
    assert!(!names_of(&config["proxies"]).contains(&"pro0".to_string()));
    app.assert_consistent().await;
}

#[tokio::test]
async fn bad_stale_or_missing_signatures_are_refused_and_change_nothing() {
    let app = billing_app().await;
    let (id, _, _) = app.create_user("forger@example.org", None).await;
    let body = paid_intent("evt_forged", "pi_f", id, "pro-1y");
    let now = unix_now();
    let cases = [
        None,
        Some(stripe_header("whsec_wrong", now, &body)),
        // A minute past the 300-s tolerance either way: at 301 s, a second lost on a loaded
        // machine between `now` and the server's check put the future one inside it (CI).
        Some(stripe_header(WEBHOOK_SECRET, now - 360, &body)),
        Some(stripe_header(WEBHOOK_SECRET, now + 360, &body)),
        Some("t=abc,v1=00".to_string()),
        Some(format!("t={now}")),
    ];
    for header in cases {
        let response = app.deliver(&body, header.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{header:?}");
        assert_eq!(error_code(response).await, "invalid_signature");
    }
    // A signature over other bytes does not cover these.
    let mut tampered = body.clone();
    let header = stripe_header(WEBHOOK_SECRET, now, &body);
    tampered[20] ^= 1;
    assert_eq!(
        app.deliver(&tampered, Some(header)).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.pro_of(id).await["active"], false);
    assert_eq!(
        app.admin_json("/api/v1/admin/payments").await["payments"],
        json!([])
    );

    // Several v1 values (a secret being rolled): one matching is enough.
    let good = stripe_header(WEBHOOK_SECRET, now, &body);
    let rolled = format!(
        "t={now},v1={},{}",
        "ab".repeat(32),
        good.split(',').nth(1).unwrap()
    );
    assert_eq!(
        app.deliver(&body, Some(rolled)).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.pro_of(id).await["active"], true);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_event_grant_once() {
    let app = billing_app().await;
    let (id, _, _) = app.create_user("race@example.org", None).await;
    let body = paid_intent("evt_race", "pi_race", id, "pro-1m");
    let header = stripe_header(WEBHOOK_SECRET, unix_now(), &body);
    let deliveries = (0..16).map(|_| app.deliver(&body, Some(header.clone())));
    let outcomes: Vec<Value> =
        futures::future::join_all(futures::future::join_all(deliveries).await.into_iter().map(
            |r| async move {
                assert_eq!(r.status(), StatusCode::OK);
                r.json::<Value>().await.unwrap()
            },
        ))
        .await;
    let granted = outcomes
        .iter()
        .filter(|o| o["outcome"].as_str().unwrap().starts_with("granted"))
        .count();
    assert_eq!(granted, 1, "{outcomes:?}");
    let until = app.pro_of(id).await["until"].as_i64().unwrap();
    assert!((until - unix_now() - 30 * 86_400).abs() <= 5);
}

#[tokio::test]
async fn other_event_types_and_foreign_payments_are_acknowledged_without_change() {
    let app = billing_app().await;
    let (id, _, _) = app.create_user("quiet@example.org", None).await;
    let customer = event(
        "evt_c",
        "customer.created",
        json!({ "id": "cus_1", "object": "customer" }),
    );
    assert!(app.deliver_signed(&customer).await["outcome"]
        .as_str()
        .unwrap()
        .starts_with("ignored"));
    let foreign = event(
        "evt_f",
        "payment_intent.succeeded",
        json!({ "id": "pi_other", "amount": 100, "currency": "usd", "metadata": {} }),
    );
    assert!(app.deliver_signed(&foreign).await["outcome"]
        .as_str()
        .unwrap()
        .starts_with("ignored"));
    assert_eq!(app.pro_of(id).await["active"], false);
    // Broken JSON with a valid signature is a 400 too.
    let junk = b"{not json";
    let response = app
        .deliver(junk, Some(stripe_header(WEBHOOK_SECRET, unix_now(), junk)))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn without_a_webhook_secret_billing_is_off() {
    let app = spawn_app().await;
    let body = event("evt_x", "customer.created", json!({ "id": "cus_1" }));
    let response = app
        .deliver(&body, Some(stripe_header("whsec_any", unix_now(), &body)))
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// The scheme checked against a third party: Stripe's official Python library signs a payload
/// the server must accept, and verifies a header made the way these tests make them.
#[tokio::test]
async fn signatures_agree_with_stripes_python_library() {
    // The python3 on PATH: the one `python3 -m pip install stripe` (scripts/test.sh) fills.
    let python = "python3";
    let probe = std::process::Command::new(python)
        .args(["-c", "import stripe"])
        .output()
        .expect("python3 runs");
    assert!(
        probe.status.success(),
        "Stripe's Python library is missing for python3: `python3 -m pip install stripe` (the README's test command installs it)"
    );
    let app = billing_app().await;
    let (id, _, _) = app.create_user("py@example.org", None).await;
    let body = paid_intent("evt_py", "pi_py", id, "pro-1m");
    let script = r#"
import sys, time, stripe
payload = sys.stdin.read()
secret, ours = sys.argv[1], sys.argv[2]
# Verify the header made by these tests (raises SignatureVerificationError if wrong).
stripe.Webhook.construct_event(payload, ours, secret)
t = int(time.time())
sig = stripe.WebhookSignature._compute_signature("%d.%s" % (t, payload), secret)
print("t=%d,v1=%s" % (t, sig))
"#;
    let ours = stripe_header(WEBHOOK_SECRET, unix_now(), &body);
    let mut child = std::process::Command::new(python)
        .args(["-c", script, WEBHOOK_SECRET, &ours])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 starts");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "stripe-python rejected our scheme: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let theirs = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let response = app.deliver(&body, Some(theirs)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.pro_of(id).await["active"], true);
}

#[tokio::test]
async fn a_gift_assigns_pro_proxies_and_disabling_the_user_releases_them() {
    let app = billing_app().await;
    app.proxy("pro0", 11_000, &[("role", "pro")]).await;
    let (id, _, _) = app.create_user("gifted@example.org", None).await;
    app.gift_pro(id, 3).await;
    assert_eq!(app.pro_of(id).await["proxies"], json!(["pro0"]));
    app.assert_consistent().await;
    let disabled = app
        .admin_post(&format!("/api/v1/admin/users/{id}/disable"), &json!({}))
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(
        app.pro_of(id).await["proxies"],
        json!([]),
        "its token no longer opens pro0"
    );
    app.assert_consistent().await;
}

#[tokio::test]
async fn pro_ending_within_three_days_is_announced_once() {
    let app = spawn_app_with(|c| c.pro_sweep_secs = 1).await;
    let (soon, _, _) = app.create_user("soon@example.org", None).await;
    let (later, _, _) = app.create_user("later@example.org", None).await;
    for (id, days) in [(soon, 2), (later, 30)] {
        let gifted = app
            .admin_post(
                &format!("/api/v1/admin/users/{id}/pro"),
                &json!({ "days": days }),
            )
            .await;
        assert_eq!(gifted.status(), StatusCode::OK);
    }
    let expiring = |outbox: &Value| -> Vec<String> {
        outbox["mails"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["template"] == "pro_expiring")
            .map(|m| m["to"].as_str().unwrap().to_string())
            .collect()
    };
    eventually(Duration::from_secs(10), "the expiring notice", || async {
        let outbox = app.admin_json("/api/v1/admin/mail/outbox").await;
        (!expiring(&outbox).is_empty()).then_some(())
    })
    .await;
    // Several sweeps later: still one notice, and none for the user whose Pro runs for a month.
    let swept = app.pro_sweeps().await;
    eventually(Duration::from_secs(10), "two more sweeps", || async {
        (app.pro_sweeps().await >= swept + 2).then_some(())
    })
    .await;
    app.queue_idle().await;
    let outbox = app.admin_json("/api/v1/admin/mail/outbox").await;
    assert_eq!(expiring(&outbox), vec!["soon@example.org"]);
    // The mail says the true time left (a two-day gift: not "3 days").
    let notice = outbox["mails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["template"] == "pro_expiring")
        .unwrap();
    let data: Value = serde_json::from_str(notice["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["time_left"], "in 2 days", "{notice}");
}

#[tokio::test]
async fn a_pro_proxy_that_left_or_was_drained_is_replaced_for_its_pro_users() {
    for drained in [false, true] {
        let app = billing_app().await;
        for (i, clients) in [(0, "1"), (1, "2"), (2, "30")] {
            app.proxy(
                &format!("pro{i}"),
                11_000 + i,
                &[("role", "pro"), ("clients", clients)],
            )
            .await;
        }
        let (id, token, _) = app.create_user("kept@example.org", None).await;
        app.gift_pro(id, 30).await;
        assert_eq!(app.pro_of(id).await["proxies"], json!(["pro0", "pro1"]));
        let response = if drained {
            let action = json!({ "action": "drain" });
            (app.admin_post("/api/v1/admin/proxies/pro0/action", &action)).await
        } else {
            app.unregister("pro0").await
        };
        assert_eq!(response.status(), StatusCode::OK);
        let pro = eventually(Duration::from_secs(10), "a replacement", || async {
            let pro = app.pro_of(id).await;
            (pro["proxies"] == json!(["pro1", "pro2"])).then_some(pro)
        })
        .await;
        assert_eq!(pro["active"], true);
        let (_, _, config) = app.config(&token).await;
        assert_eq!(&names_of(&config["proxies"])[..2], &["pro1", "pro2"]);
        app.queue_idle().await;
        app.assert_consistent().await;
    }
}

#[tokio::test]
async fn a_burst_of_payments_spreads_over_the_pro_proxies() {
    let app = spawn_app_with(|c| {
        c.stripe_webhook_secret = Some(proxyfleet::config::Secret::new(WEBHOOK_SECRET));
        c.pro_proxies_per_user = 1;
    })
    .await;
    for i in 0..3 {
        app.proxy(&format!("pro{i}"), 12_000 + i, &[("role", "pro")])
            .await;
    }
    let mut users = Vec::new();
    for i in 0..30 {
        users.push(
            app.create_user(&format!("burst{i}@example.org"), None)
                .await
                .0,
        );
    }
    // All at once: the webhooks are applied in batches, each in one transaction.
    let app = &app;
    let deliveries = users.iter().map(|id| {
        let body = paid_intent(&format!("evt_b{id}"), &format!("pi_b{id}"), *id, "pro-1m");
        let header = stripe_header(WEBHOOK_SECRET, unix_now(), &body);
        async move { app.deliver(&body, Some(header)).await.status() }
    });
    for status in futures::future::join_all(deliveries).await {
        assert_eq!(status, StatusCode::OK);
    }
    let mut per_proxy = std::collections::BTreeMap::<String, usize>::new();
    for id in &users {
        for proxy in app.pro_of(*id).await["proxies"].as_array().unwrap() {
            *per_proxy
                .entry(proxy.as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let expected: std::collections::BTreeMap<String, usize> =
        (0..3).map(|i| (format!("pro{i}"), 10)).collect();
    assert_eq!(per_proxy, expected);
    app.assert_consistent().await;
}
