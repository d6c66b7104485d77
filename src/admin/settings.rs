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

/// Query parameters that carry a password in some URL forms (`redis://host/?password=`,
/// `smtp://host?pass=`).
const SECRET_QUERY: [&str; 5] = ["pass", "password", "secret", "token", "key"];

/// `scheme://user:pass@host?password=x` → `scheme://user:••••••@host?password=••••••`;
/// anything unparsable is masked whole.
fn without_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() && url.set_password(Some(MASK)).is_err() {
                return MASK.into();
            }
            if url.query().is_some() {
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| {
                        let secret = SECRET_QUERY.contains(&k.to_ascii_lowercase().as_str());
                        (
                            k.into_owned(),
                            if secret { MASK.into() } else { v.into_owned() },
                        )
                    })
                    .collect();
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        Err(_) => MASK.into(),
    }
}

/// The effective configuration as TOML to paste into config.toml: every setting that has a
/// value, with secrets (and URLs that carry one) as comments, so pasting never overwrites a
/// real secret with the mask. Unset settings are listed as comments too.
pub fn as_toml(config: &Config) -> String {
    let Value::Object(fields) = masked(config) else {
        return String::new();
    };
    let original = serde_json::to_value(config).unwrap_or_default();
    let mut table = toml::Table::new();
    let mut commented = Vec::new();
    for (key, value) in fields {
        let hidden = value != original[&key];
        match value {
            Value::Null => commented.push(format!("# {key} is unset")),
            value if hidden => commented.push(format!("# {key} = {value}  (secret: masked)")),
            value => match toml::Value::try_from(&value) {
                Ok(value) => {
                    table.insert(key, value);
                }
                Err(_) => commented.push(format!("# {key}: not representable in TOML")),
            },
        }
    }
    let body = toml::to_string(&table).unwrap_or_default();
    format!("{}\n{body}", commented.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn the_toml_form_parses_and_holds_no_secret() {
        let config = Config {
            admin_token: Some(Secret::new("adm-secret-1")),
            redis_url: Some("redis://:redispw@127.0.0.1:6379/0?password=qpw".into()),
            smtp_url: Some(Secret::new(
                "smtp://u:smtppw@mail.example.org:587?pass=qpw2",
            )),
            ..Config::default()
        };
        let text = as_toml(&config);
        for secret in ["adm-secret-1", "redispw", "qpw", "smtppw", "qpw2"] {
            assert!(!text.contains(secret), "{secret} in\n{text}");
        }
        let parsed: toml::Table = toml::from_str(&text).expect("valid TOML");
        assert!(parsed.get("admin_token").is_none(), "secrets are comments");
        assert_eq!(parsed["heartbeat_ttl_secs"].as_integer(), Some(300));
        assert!(text.contains("# admin_token = "));
        // Pasted into a config file, it loads as the same configuration (secrets aside).
        let reread: Config = toml::from_str(&text).expect("a config");
        assert_eq!(reread.listen, config.listen);
    }

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
