//! The CLI's config file (TOML): any text is a configuration or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = proxyfleet::config::Config::from_toml(text);
    }
});
