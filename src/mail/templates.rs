//! Mail templates, embedded from `assets/mail/<name>/`: `subject.txt`, `body.txt`, `body.html`
//! and any `attachments/<file>`, rendered with minijinja (HTML parts auto-escaped). The same
//! variables reach every part: the mail's own data plus `product` and `download_url`.

use minijinja::Environment;
use rust_embed::RustEmbed;
use serde_json::Value;

#[derive(RustEmbed)]
#[folder = "assets/mail/"]
struct MailAssets;

pub const TEMPLATES: [&str; 6] = [
    "welcome",
    "invitation",
    "payment_receipt",
    "pro_expiring",
    "pro_expired",
    "device_added",
];

#[derive(Debug, Clone, PartialEq)]
pub struct RenderedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// (file name, content). An attachment whose template renders to nothing is left out
    /// (the invitation's config, for invitations made before they carried one).
    pub attachments: Vec<(String, String)>,
}

pub struct Templates {
    env: Environment<'static>,
    globals: Value,
}

impl Templates {
    pub fn load(product: &str, download_url: Option<&str>) -> Templates {
        let mut env = Environment::new();
        for path in MailAssets::iter() {
            if let Some(file) = MailAssets::get(&path) {
                let source = String::from_utf8_lossy(&file.data).into_owned();
                // A template that does not parse shows up when rendered (and in the tests).
                let _ = env.add_template_owned(path.to_string(), source);
            }
        }
        Templates {
            env,
            globals: serde_json::json!({ "product": product, "download_url": download_url }),
        }
    }

    fn part(&self, path: &str, vars: &Value) -> Result<String, String> {
        self.env
            .get_template(path)
            .and_then(|t| t.render(minijinja::value::Serde(vars)))
            .map_err(|e| format!("template {path}: {e}"))
    }

    pub fn render(&self, name: &str, data: &Value) -> Result<RenderedMail, String> {
        if !TEMPLATES.contains(&name) {
            return Err(format!("no mail template {name:?}"));
        }
        let mut vars = self.globals.clone();
        if let (Some(vars), Some(data)) = (vars.as_object_mut(), data.as_object()) {
            vars.extend(data.clone());
        }
        let prefix = format!("{name}/attachments/");
        let mut attachments = Vec::new();
        for path in MailAssets::iter().filter(|p| p.starts_with(&prefix)) {
            let file = path[prefix.len()..].to_string();
            let content = self.part(&path, &vars)?;
            if !content.trim().is_empty() {
                attachments.push((file, content));
            }
        }
        Ok(RenderedMail {
            subject: self
                .part(&format!("{name}/subject.txt"), &vars)?
                .trim()
                .to_string(),
            text: self.part(&format!("{name}/body.txt"), &vars)?,
            html: self.part(&format!("{name}/body.html"), &vars)?,
            attachments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_template_renders_and_html_is_escaped() {
        let templates = Templates::load("proxyfleet", Some("https://example.org/get"));
        let data = json!({
            "code": "ABCD2345", "inviter_email": "ana@example.org", "referral_code": "XYZW2345",
            "bonus_days": 7, "amount": "4.99", "currency": "USD", "plan_name": "Pro, 1 month",
            "pro_until": "2026-12-24 10:00", "payment_id": "pi_1", "days": 30,
            "email": "bob@example.org", "paid_at": "2026-11-24 10:00",
            "device_name": "<script>phone</script>", "added_at": "2026-11-24 10:00",
            "time_left": "in 1 day",
        });
        for name in TEMPLATES {
            let mail = templates.render(name, &data).unwrap();
            assert!(!mail.subject.is_empty() && !mail.text.is_empty(), "{name}");
            assert!(!mail.subject.contains('\n'), "{name}");
        }
        let device = templates.render("device_added", &data).unwrap();
        assert!(device.html.contains("&lt;script&gt;"), "{}", device.html);
        assert!(
            device.text.contains("<script>phone</script>"),
            "plain text is not escaped"
        );
        let receipt = templates.render("payment_receipt", &data).unwrap();
        assert_eq!(receipt.attachments.len(), 1);
        assert_eq!(receipt.attachments[0].0, "receipt.txt");
        assert!(receipt.attachments[0].1.contains("pi_1"));
        let invitation = templates.render("invitation", &data).unwrap();
        assert!(invitation.text.contains("https://example.org/get"));
        assert!(
            invitation.attachments.is_empty(),
            "no bundle, no config attached"
        );
        let mut with_bundle = data.clone();
        with_bundle["bundle"] = json!({ "body": "{\"user\":7}", "token": "pfu_<x>" });
        let invitation = templates.render("invitation", &with_bundle).unwrap();
        let (file, content) = &invitation.attachments[0];
        assert_eq!(file, "proxyfleet-config.json");
        let parsed: Value = serde_json::from_str(content).unwrap();
        assert_eq!(
            parsed, with_bundle["bundle"],
            "JSON as it was, not HTML-escaped"
        );
        assert!(templates.render("nope", &data).is_err());
    }
}
