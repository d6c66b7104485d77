//! `GET /api/v1/config`: the query string (as warp's `query` reads it) and the
//! If-None-Match header against an ETag.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxyfleet::api::distribution::ConfigQuery;
use proxyfleet::distribution::config::matches;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (query, if_none_match) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(parsed) = serde_urlencoded::from_str::<ConfigQuery>(query) {
        let _ = parsed.wait.unwrap_or(0).min(300);
    }
    let _ = matches(if_none_match, "\"c0ffee\"");
    let _ = matches(if_none_match, "W/\"c0ffee\"");
});
