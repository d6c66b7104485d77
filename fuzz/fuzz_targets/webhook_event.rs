//! Webhook payloads (after a valid signature): any body is an event or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = proxyfleet::billing::event::parse(data);
});
