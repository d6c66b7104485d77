//! `/register` and `/unregister` bodies: form or JSON (the first byte picks the content
//! type), then the registration rules. Any input is a registration or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxyfleet::http::body::parse_fields;
use proxyfleet::registry::validate::{name_only, registration, Rules};

const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/x-www-form-urlencoded"),
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    None,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(pick) % CONTENT_TYPES.len()];
    let Ok(fields) = parse_fields(content_type, body) else {
        return;
    };
    for allow_private_ips in [false, true] {
        let _ = registration(&fields, &Rules { allow_private_ips });
    }
    let _ = name_only(&fields);
});
