//! The effective configuration as the settings page shows it: every setting, secrets masked.
//! A secret is shown only as "set" or absent; URLs keep their host but lose their password.

use serde_json::{Map, Value};

use crate::config::Config;

/// Settings whose whole value is a secret.
const SECRET_FIELDS: [&str; 5] = [
    "admin_token",
    "registry_token",
    "stripe_secret_key",
    "stripe_webhook_secret",
    "smtp_url",
];
/// Settings holding a URL that may carry a password.
const URL_FIELDS: [&str; 2] = ["redis_url", "smtp_url"];
pub const MASK: &str = "••••••";

pub fn masked(config: &Config) -> Value {
    let Ok(Value::Object(fields)) = serde_json::to_value(config) else {
        return Value::Object(Map::new());
    };
    let shown = fields
        .into_iter()
        .map(|(key, value)| {
            let value = match (key.as_str(), value) {
                (_, Value::Null) => Value::Null,
                (k, Value::String(url)) if URL_FIELDS.contains(&k) => {
                    Value::String(without_password(&url))
                }
                (k, _) if SECRET_FIELDS.contains(&k) => Value::String(MASK.into()),
                (_, value) => value,
            };
            (key, value)
        })
        .collect();
    Value::Object(shown)
}

/// `scheme://user:pass@host` → `scheme://user:••••••@host`; anything unparsable is masked whole.
fn without_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() && url.set_password(Some(MASK)).is_err() {
                return MASK.into();
            }
            url.to_string()
        }
        Err(_) => MASK.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn no_secret_value_is_shown() {
        let config = Config {
            admin_token: Some(Secret::new("admin-hunter2")),
            registry_token: Some(Secret::new("registry-hunter2")),
            stripe_secret_key: Some(Secret::new("sk_test_hunter2")),
            stripe_webhook_secret: Some(Secret::new("whsec_hunter2")),
            smtp_url: Some(Secret::new("smtp://me:smtp-hunter2@mail.example:587")),
            redis_url: Some("redis://:redis-hunter2@cache.example:6379/0".into()),
            ..Config::default()
        };
        let shown = masked(&config).to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("cache.example"), "{shown}");
        assert!(shown.contains("mail.example"), "{shown}");
        assert_eq!(masked(&config)["heartbeat_ttl_secs"], 300);
    }
}
