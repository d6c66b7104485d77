//! The Stripe-Signature header: any header and body is accepted or refused, never a panic;
//! and a header made by `sign` for the body always verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxyfleet::billing::signature::{sign, verify};

const SECRET: &str = "whsec_fuzz";
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (header, body) = data.split_at(split);
    if let Ok(header) = std::str::from_utf8(header) {
        let _ = verify(SECRET, header, body, NOW);
    }
    let good = sign(SECRET, NOW, body);
    assert!(verify(SECRET, &good, body, NOW).is_ok(), "{good}");
});
