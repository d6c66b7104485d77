//! What an unauthenticated or hostile caller hands the admin side: a login name (cut to 64
//! printable characters before any record), a JSON body (a repeated key refused), a body and
//! query as the audit trail records them (secrets masked), a TOTP code. Never a panic; a
//! recorded name is never longer or less printable than promised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxyfleet::admin::accounts::printable_name;
use proxyfleet::api::admin::layer::params;
use proxyfleet::http::body::{is_invisible, no_duplicate_keys};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let name = printable_name(&text);
    assert!(name.chars().count() <= 64);
    assert!(!name.chars().any(is_invisible));

    let _ = no_duplicate_keys(data);
    let (query, body) = text.split_once('\n').unwrap_or(("", &text));
    if let Some(recorded) = params(query, Some(body.as_bytes())) {
        // A password under its own key is never recorded as given.
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body)
        {
            if let Some(serde_json::Value::String(secret)) = map.get("password") {
                if secret.len() >= 8
                    && secret != "***"
                    && !secret.contains('"')
                    && !secret.contains('\\')
                {
                    assert!(
                        !recorded.contains(&format!("\"password\":\"{secret}\"")),
                        "{recorded}"
                    );
                }
            }
        }
    }
    let _ = proxyfleet::admin::totp::matching_step("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", &text, 59);
});
