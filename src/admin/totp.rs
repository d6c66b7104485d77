//! The optional second factor: RFC 6238 time-based codes (SHA-1, 6 digits, 30 s steps, one
//! step of clock skew either way), as every authenticator app makes them. The crate computes
//! and compares the codes (in constant time); this module fixes the parameters.

use rand::RngCore;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::error::{Error, Result};

const DIGITS: usize = 6;
const STEP_SECS: u64 = 30;
const SKEW_STEPS: u8 = 1;
/// 160 bits, the size RFC 4226 recommends for SHA-1.
const SECRET_BYTES: usize = 20;

/// A fresh secret, base32 as authenticator apps take it.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut bytes);
    match Secret::Raw(bytes.to_vec()).to_encoded() {
        Secret::Encoded(text) => text,
        Secret::Raw(_) => String::new(), // to_encoded always encodes
    }
}

fn totp(secret: &str) -> Result<TOTP> {
    let bytes = Secret::Encoded(secret.to_string())
        .to_bytes()
        .map_err(|_| Error::invalid("invalid_totp_secret", "not a base32 secret"))?;
    TOTP::new(Algorithm::SHA1, DIGITS, SKEW_STEPS, STEP_SECS, bytes)
        .map_err(|_| Error::invalid("invalid_totp_secret", "the secret is too short"))
}

/// Whether `code` is right for `secret` at `now_secs` (or one step either side).
pub fn code_matches(secret: &str, code: &str, now_secs: u64) -> bool {
    matching_step(secret, code, now_secs).is_some()
}

/// The time step `code` is right for, at `now_secs` or one step either side. A caller that
/// remembers the last step it accepted refuses a code replayed within its window.
pub fn matching_step(secret: &str, code: &str, now_secs: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret).ok()?;
    let now_step = now_secs / STEP_SECS;
    let first = now_step.saturating_sub(u64::from(SKEW_STEPS));
    // Every candidate is compared (constant time each), so timing does not tell which matched.
    let mut found = None;
    for step in first..=now_step + u64::from(SKEW_STEPS) {
        let expected = totp.generate(step * STEP_SECS);
        if bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            code.as_bytes(),
        )) {
            found = Some(step);
        }
    }
    found
}

/// The code for `secret` at `now_secs` (tests and the CLI's self-check).
pub fn code_at(secret: &str, now_secs: u64) -> Result<String> {
    Ok(totp(secret)?.generate(now_secs))
}

/// The `otpauth://` URI an authenticator app imports (usernames are URL-safe by construction).
pub fn otpauth_url(username: &str, secret: &str) -> String {
    format!(
        "otpauth://totp/proxyfleet:{username}?secret={secret}&issuer=proxyfleet&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}"
    )
}

/// The `otpauth://` URI as a QR code, an SVG document the panel shows inline (phones scan it
/// instead of typing the secret).
pub fn qr_svg(url: &str) -> String {
    match qrcode::QrCode::new(url.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(), // a URI of this size always fits a QR code
    }
}

/// Checks that `secret` is usable before an account stores it.
pub fn check_secret(secret: &str) -> Result<()> {
    totp(secret).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B: the ASCII secret "12345678901234567890", SHA-1, T = 59 s gives
    // 94287082 with 8 digits, so 287082 with 6.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn codes_follow_the_rfc_test_vector() {
        assert_eq!(code_at(RFC_SECRET, 59).unwrap(), "287082");
        assert!(code_matches(RFC_SECRET, "287082", 59));
        assert!(
            code_matches(RFC_SECRET, "287082", 59 + 30),
            "one step of skew"
        );
        assert!(!code_matches(RFC_SECRET, "287082", 59 + 90));
        assert!(!code_matches(RFC_SECRET, "287083", 59));
        assert!(!code_matches(RFC_SECRET, "", 59));
        assert_eq!(matching_step(RFC_SECRET, "287082", 59), Some(1));
        assert_eq!(matching_step(RFC_SECRET, "287082", 89), Some(1));
    }

    #[test]
    fn new_secrets_are_usable_and_differ() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        check_secret(&a).unwrap();
        let now = 1_800_000_000;
        assert!(code_matches(&a, &code_at(&a, now).unwrap(), now));
        assert!(check_secret("not base32 !").is_err());
    }
}
