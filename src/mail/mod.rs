//! Mail: a durable outbox on the task queue, rendered from embedded templates and sent through
//! an SMTP relay (Mandrill's, or any) with lettre. Every mail is queued in the transaction of
//! the event it tells about, under a key naming that event, so one event makes one mail; the
//! `mail.send` task retries with the queue's backoff and becomes a dead letter after
//! `queue_max_attempts`, and a mail marked sent is never sent again. Each message carries a
//! Message-ID derived from the mail id, so a relay that saw it once can drop a repeat after a
//! crash between its answer and our record.

pub mod templates;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::queue::{NewTask, Queue};
use crate::store::codec::u64_key;
use crate::store::{Store, TreeId, Tx, TxResult};
use templates::Templates;

pub const MAIL_SEND: crate::queue::TaskKind = crate::queue::TaskKind::MailSend;
const NEXT_MAIL_ID: &str = "mail.next_id";

/// A mail in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mail {
    pub id: u64,
    pub to: String,
    pub template: String,
    /// Template variables as JSON text.
    pub data: String,
    pub created_ms: u64,
    pub sent_ms: Option<u64>,
    pub last_error: Option<String>,
    pub attempts: u32,
}

/// A time as mails show it: `2026-11-24T10:00:00Z`.
pub fn format_time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

/// Queues `template` to `to` in the caller's transaction, once per `event` (e.g.
/// `receipt:pi_123`): a second call for the same event queues nothing and returns None.
pub fn queue_in(
    tx: &Tx,
    queue: &Queue,
    to: &str,
    template: &str,
    data: &Value,
    event: &str,
    now_ms: u64,
) -> TxResult<Option<u64>> {
    let key = format!("{MAIL_SEND}:{event}");
    if tx.contains(TreeId::TaskKeys, &key)? {
        return Ok(None);
    }
    let id = tx.next(NEXT_MAIL_ID)?;
    let mail = Mail {
        id,
        to: to.to_string(),
        template: template.to_string(),
        data: data.to_string(),
        created_ms: now_ms,
        sent_ms: None,
        last_error: None,
        attempts: 0,
    };
    tx.put(TreeId::Outbox, u64_key(id), &mail)?;
    let task = NewTask {
        kind: MAIL_SEND,
        key,
        payload: json!({ "mail": id }),
        due_ms: now_ms,
    };
    queue.enqueue_in(tx, &task, now_ms)?;
    Ok(Some(id))
}

/// The mail with any `token` in its data replaced by `***`.
fn masked(mut mail: Mail) -> Mail {
    fn mask(value: &mut Value) {
        match value {
            Value::Object(fields) => {
                for (name, field) in fields.iter_mut() {
                    if name == "token" {
                        *field = Value::String("***".into());
                    } else {
                        mask(field);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(mask),
            _ => {}
        }
    }
    if mail.data.contains("\"token\"") {
        if let Ok(mut data) = serde_json::from_str::<Value>(&mail.data) {
            mask(&mut data);
            mail.data = data.to_string();
        }
    }
    mail
}

/// lettre's form of an `smtp_url`: docs/CONFIG.md's `?tls=starttls` is lettre's `?tls=required`
/// (STARTTLS, refusing to go on in clear); everything else is passed as it is.
fn lettre_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed)
            if parsed
                .query_pairs()
                .any(|(k, v)| k == "tls" && v == "starttls") =>
        {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "tls" && v == "starttls" {
                        "required".into()
                    } else {
                        v
                    };
                    (k.into_owned(), v.into_owned())
                })
                .collect();
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Sending since the process started. Kept in memory: a restart forgets old failures, and the
/// outbox keeps each mail's own last error.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MailHealth {
    pub sent: u64,
    pub failed: u64,
    /// Tries that failed since the last mail that went out (0 when the last one did).
    pub failing_in_a_row: u64,
    pub failing_since_ms: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<u64>,
}

pub struct Mailer {
    store: Store,
    /// How sending has gone since the process started (the dashboard's "mail is failing").
    health: std::sync::Mutex<MailHealth>,
    templates: Templates,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    /// Right-hand side of the Message-IDs.
    domain: String,
}

impl Mailer {
    pub fn new(store: Store, config: &Config) -> Result<Mailer> {
        let from: Mailbox = config.mail_from.parse().map_err(|e| {
            Error::internal(format!(
                "mail_from {:?} is not an address: {e}",
                config.mail_from
            ))
        })?;
        let transport = match &config.smtp_url {
            None => None,
            // The URL holds the relay's password: only the parse error's kind is reported.
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(&lettre_url(url.expose()))
                    .map_err(|e| Error::caused_by("smtp_url cannot be used", e))?
                    .timeout(Some(std::time::Duration::from_secs(30)))
                    .build(),
            ),
        };
        Ok(Mailer {
            store,
            health: std::sync::Mutex::default(),
            templates: Templates::load(
                &config.mail_product_name,
                config.app_download_url.as_deref(),
            ),
            domain: from.email.domain().to_string(),
            transport,
            from,
        })
    }

    /// How sending has gone since this process started.
    pub fn health(&self) -> MailHealth {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn note_outcome(&self, outcome: &std::result::Result<(), String>, now_ms: u64) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(()) => {
                health.sent += 1;
                health.failing_in_a_row = 0;
                health.failing_since_ms = None;
            }
            Err(error) => {
                health.failed += 1;
                health.failing_in_a_row += 1;
                health.failing_since_ms.get_or_insert(now_ms);
                health.last_error = Some(error.clone());
                health.last_error_ms = Some(now_ms);
            }
        }
    }

    /// The newest mails, for the admin, with the tokens they carry masked (an invitation's
    /// config holds the invitee's).
    pub fn outbox(&self, limit: usize) -> Result<Vec<Mail>> {
        self.store
            .scan_rev::<Mail>(TreeId::Outbox, None)
            .take(limit)
            .map(|item| item.map(|(_, mail)| masked(mail)))
            .collect()
    }

    fn update(&self, id: u64, change: impl Fn(&mut Mail)) -> std::result::Result<(), String> {
        self.store
            .transaction(|tx| {
                if let Some(mut mail) = tx.get::<Mail>(TreeId::Outbox, u64_key(id))? {
                    change(&mut mail);
                    tx.put(TreeId::Outbox, u64_key(id), &mail)?;
                }
                Ok(())
            })
            .map_err(|e| e.to_string())
    }

    fn message(&self, mail: &Mail) -> std::result::Result<Message, String> {
        let data: Value =
            serde_json::from_str(&mail.data).map_err(|e| format!("mail data: {e}"))?;
        let rendered = self.templates.render(&mail.template, &data)?;
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| format!("recipient {:?}: {e}", mail.to))?;
        let body = MultiPart::alternative_plain_html(rendered.text, rendered.html);
        let body = rendered.attachments.into_iter().fold(
            MultiPart::mixed().multipart(body),
            |parts, (file, content)| {
                let kind = if file.ends_with(".json") {
                    ContentType::parse("application/json").unwrap_or(ContentType::TEXT_PLAIN)
                } else {
                    ContentType::TEXT_PLAIN
                };
                let part: SinglePart = Attachment::new(file).body(content, kind);
                parts.singlepart(part)
            },
        );
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(format!("<mail-{}@{}>", mail.id, self.domain)))
            .multipart(body)
            .map_err(|e| format!("building the message: {e}"))
    }

    /// The `mail.send` task: renders and sends one mail. An error is returned for the queue to
    /// retry (and recorded on the mail, for the admin's outbox).
    pub async fn send_task(&self, payload: &str, now_ms: u64) -> std::result::Result<(), String> {
        let id = serde_json::from_str::<Value>(payload)
            .ok()
            .and_then(|v| v["mail"].as_u64())
            .ok_or_else(|| format!("bad payload {payload}"))?;
        let mail: Option<Mail> = self
            .store
            .get(TreeId::Outbox, u64_key(id))
            .map_err(|e| e.to_string())?;
        let Some(mail) = mail.filter(|m| m.sent_ms.is_none()) else {
            return Ok(());
        };
        let Some(transport) = &self.transport else {
            return self.update(id, |m| {
                m.last_error = Some("held: no SMTP relay configured (smtp_url)".into());
            });
        };
        let outcome = match self.message(&mail) {
            Ok(message) => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| format!("smtp: {e}")),
            Err(e) => Err(e),
        };
        self.note_outcome(&outcome, now_ms);
        match outcome {
            Ok(()) => {
                self.update(id, |m| {
                    m.sent_ms = Some(now_ms);
                    m.last_error = None;
                    m.attempts += 1;
                })?;
                self.store.durable().await.map_err(|e| e.to_string())
            }
            Err(error) => {
                self.update(id, |m| {
                    m.last_error = Some(error.clone());
                    m.attempts += 1;
                })?;
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_masks_tokens_at_any_depth() {
        let mail = |data: Value| Mail {
            id: 1,
            to: "ana@example.org".into(),
            template: "invitation".into(),
            data: data.to_string(),
            created_ms: 0,
            sent_ms: None,
            last_error: None,
            attempts: 0,
        };
        let shown = masked(mail(
            json!({"code": "c", "bundle": {"token": "pfu_1", "body": "b"}}),
        ));
        assert_eq!(
            serde_json::from_str::<Value>(&shown.data).unwrap(),
            json!({"code": "c", "bundle": {"token": "***", "body": "b"}})
        );
        let plain = mail(json!({"email": "ana@example.org"}));
        assert_eq!(masked(plain.clone()), plain);
    }

    #[test]
    fn starttls_urls_become_lettres_required_tls_and_all_forms_are_accepted() {
        assert_eq!(
            lettre_url("smtp://user:pass@smtp.mandrillapp.com:587?tls=starttls"),
            "smtp://user:pass@smtp.mandrillapp.com:587?tls=required"
        );
        assert_eq!(lettre_url("smtps://h:465"), "smtps://h:465");
        for url in [
            "smtp://127.0.0.1:2525",
            "smtps://user:pass@smtp.example.org:465",
            "smtp://user:pass@smtp.mandrillapp.com:587?tls=starttls",
            "smtp://smtp.example.org:587?tls=opportunistic",
        ] {
            assert!(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(&lettre_url(url)).is_ok(),
                "{url}"
            );
        }
    }
}
