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
    let code = code.trim();
    code.len() == DIGITS && totp(secret).is_ok_and(|t| t.check(code, now_secs))
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
