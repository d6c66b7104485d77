//! Mail through a real SMTP server (aiosmtpd) on loopback: what is sent, once, retried while
//! the relay is down, dead-lettered when it keeps refusing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// aiosmtpd on `port`, writing each message it accepts as JSON into a temp folder.
pub(crate) struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    pub(crate) fn start(port: u16) -> SmtpSink {
        let probe = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output();
        assert!(
            probe.is_ok_and(|o| o.status.success()),
            "aiosmtpd is missing for python3: `python3 -m pip install aiosmtpd` (the README's test command installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP sink");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready", "the SMTP sink did not start");
        SmtpSink { child, dir }
    }

    pub(crate) fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
            .collect()
    }

    pub(crate) async fn wait_for(&self, count: usize) -> Vec<Value> {
        eventually(Duration::from_secs(20), "mails delivered", || async {
            let messages = self.messages();
            (messages.len() >= count).then_some(messages)
        })
        .await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn app_mailing_to(
    port: u16,
    adjust: impl FnOnce(&mut proxyfleet::config::Config),
) -> TestApp {
    spawn_app_with(|c| {
        c.smtp_url = Some(proxyfleet::config::Secret::new(format!(
            "smtp://127.0.0.1:{port}"
        )));
        c.mail_from = "proxyfleet <noreply@proxyfleet.test>".into();
        c.app_download_url = Some("https://proxyfleet.test/get".into());
        c.stripe_webhook_secret = Some(proxyfleet::config::Secret::new("whsec_mail"));
        adjust(c);
    })
    .await
}

pub(crate) fn part<'a>(message: &'a Value, content_type: &str) -> &'a Value {
    message["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == content_type && p["filename"].is_null())
        .unwrap_or_else(|| panic!("no {content_type} part in {message}"))
}

#[tokio::test]
async fn welcome_invitation_and_device_mails_arrive_once_with_text_and_html() {
    let port = free_port();
    let sink = SmtpSink::start(port);
    let app = app_mailing_to(port, |_| {}).await;
    let (_, token, _) = app.create_user("ana@example.org", None).await;
    let welcome = &sink.wait_for(1).await[0];
    assert_eq!(welcome["rcpt_tos"], json!(["ana@example.org"]));
    assert_eq!(welcome["from"], "proxyfleet <noreply@proxyfleet.test>");
    assert_eq!(welcome["subject"], "Welcome to proxyfleet");
    assert_eq!(welcome["content_type"], "multipart/mixed");
    assert!(part(welcome, "text/plain")["text"]
        .as_str()
        .unwrap()
        .contains("account is ready"));
    assert!(part(welcome, "text/html")["text"]
        .as_str()
        .unwrap()
        .contains("<p>"));
    assert!(welcome["message_id"]
        .as_str()
        .unwrap()
        .ends_with("@proxyfleet.test>"));

    let invited = app
        .user_post(
            &token,
            "/api/v1/invitations",
            &json!({ "email": "bob@example.org" }),
        )
        .await;
    assert_eq!(invited.status(), StatusCode::CREATED);
    let invited: Value = invited.json().await.unwrap();
    let expires_at = proxyfleet::mail::format_time(invited["expires_at"].as_u64().unwrap() * 1000);
    let device = app
        .user_post(
            &token,
            "/api/v1/devices",
            &json!({ "name": "<b>phone</b>" }),
        )
        .await;
    assert_eq!(device.status(), StatusCode::CREATED);
    let all = sink.wait_for(3).await;
    let invitation = all
        .iter()
        .find(|m| m["rcpt_tos"] == json!(["bob@example.org"]))
        .unwrap();
    assert_eq!(
        invitation["subject"],
        "ana@example.org invites you to proxyfleet"
    );
    let text = part(invitation, "text/plain")["text"].as_str().unwrap();
    assert!(text.contains("https://proxyfleet.test/get"), "{text}");
    assert!(
        text.contains(&format!("The code works until {expires_at}.")),
        "{text}"
    );
    let linked = all
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains("device"))
        .unwrap();
    let html = part(linked, "text/html")["text"].as_str().unwrap();
    assert!(
        html.contains("&lt;b&gt;phone") && !html.contains("<b>"),
        "names are escaped in HTML: {html}"
    );

    // Nothing is sent twice: the outbox marks each as sent, and no fourth message comes.
    app.queue_idle().await;
    assert_eq!(sink.messages().len(), 3);
    let outbox = app.admin_json("/api/v1/admin/mail/outbox").await;
    let mails = outbox["mails"].as_array().unwrap();
    assert_eq!(mails.len(), 3);
    assert!(
        mails
            .iter()
            .all(|m| m["sent_ms"].is_u64() && m["attempts"] == 1),
        "{outbox}"
    );
}

#[tokio::test]
async fn a_payment_sends_a_receipt_with_the_receipt_attached() {
    use hmac::{Hmac, Mac};
    let port = free_port();
    let sink = SmtpSink::start(port);
    let app = app_mailing_to(port, |_| {}).await;
    let (id, _, _) = app.create_user("payer@example.org", None).await;
    sink.wait_for(1).await;
    let body = serde_json::to_vec(&json!({
        "id": "evt_mail", "object": "event", "type": "payment_intent.succeeded",
        "data": { "object": { "id": "pi_mail", "amount": 3999, "amount_received": 3999, "currency": "usd",
                              "metadata": { "user_id": id.to_string(), "plan": "pro-1y" } } },
    }))
    .unwrap();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"whsec_mail").unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&body);
    let header = format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()));
    for _ in 0..2 {
        let response = app
            .client
            .post(app.url("/api/v1/stripe/webhook"))
            .header("stripe-signature", &header)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let all = sink.wait_for(2).await;
    let receipt = &all[1];
    assert_eq!(receipt["subject"], "Your proxyfleet receipt: Pro, 1 year");
    assert!(part(receipt, "text/plain")["text"]
        .as_str()
        .unwrap()
        .contains("39.99 USD"));
    let attached = receipt["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["filename"] == "receipt.txt")
        .expect("the receipt is attached");
    assert!(attached["text"].as_str().unwrap().contains("pi_mail"));
    app.queue_idle().await;
    assert_eq!(
        sink.messages().len(),
        2,
        "a redelivered event sends no second receipt"
    );
}

#[tokio::test]
async fn mail_waits_for_a_relay_that_is_down_and_goes_out_when_it_is_back() {
    let port = free_port();
    let app = app_mailing_to(port, |c| c.queue_max_attempts = 20).await;
    app.create_user("patient@example.org", None).await;
    let failing = eventually(Duration::from_secs(10), "a failed attempt", || async {
        let outbox = app.admin_json("/api/v1/admin/mail/outbox").await;
        let mail = outbox["mails"][0].clone();
        (mail["attempts"].as_u64().unwrap_or(0) >= 1).then_some(mail)
    })
    .await;
    assert!(
        failing["last_error"].as_str().unwrap().contains("smtp"),
        "{failing}"
    );
    assert!(failing["sent_ms"].is_null());
    // The dashboard says mail is failing, and where to look.
    let summary = app.admin_json("/api/v1/admin/summary").await;
    let mail = summary["attention"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "mail")
        .unwrap_or_else(|| panic!("no mail trouble named: {summary}"))
        .clone();
    assert!(mail["text"].as_str().unwrap().contains("smtp"), "{mail}");
    assert_eq!(mail["link"], "#/queues");
    assert!(summary["mail"]["failing_in_a_row"].as_u64().unwrap() >= 1);
    let sink = SmtpSink::start(port);
    let delivered = sink.wait_for(1).await;
    assert_eq!(delivered[0]["rcpt_tos"], json!(["patient@example.org"]));
    let sent = eventually(Duration::from_secs(5), "marked sent", || async {
        let outbox = app.admin_json("/api/v1/admin/mail/outbox").await;
        outbox["mails"][0]["sent_ms"].is_u64().then_some(outbox)
    })
    .await;
    assert!(sent["mails"][0]["last_error"].is_null());
    let summary = app.admin_json("/api/v1/admin/summary").await;
    assert_eq!(summary["mail"]["failing_in_a_row"], 0, "{summary}");
    assert_eq!(summary["mail"]["sent"], 1, "{summary}");
    assert!(
        !summary["attention"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "mail"),
        "{summary}"
    );
}

#[tokio::test]
async fn a_relay_that_keeps_refusing_ends_in_a_dead_letter_the_admin_sees() {
    let port = free_port();
    let sink = SmtpSink::start(port);
    let app = app_mailing_to(port, |c| c.queue_max_attempts = 3).await;
    app.create_user("reject-me@example.org", None).await;
    let dead = eventually(Duration::from_secs(15), "a dead letter", || async {
        let dead = app.admin_json("/api/v1/admin/queue/dead").await;
        (!dead["tasks"].as_array().unwrap().is_empty()).then_some(dead)
    })
    .await;
    assert_eq!(dead["tasks"][0]["kind"], "mail.send");
    let outbox = app.admin_json("/api/v1/admin/mail/outbox").await;
    assert_eq!(outbox["mails"][0]["attempts"], 3);
    assert!(
        outbox["mails"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("550"),
        "{outbox}"
    );
    assert!(sink.messages().is_empty());
}
