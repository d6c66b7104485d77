//! Stripe webhook signatures, as Stripe documents them: the `Stripe-Signature` header holds
//! `t=<unix seconds>` and one or more `v1=<hex HMAC-SHA256 of "<t>.<payload>">` made with the
//! endpoint secret (several while a secret is being rolled); other schemes (`v0`) are ignored.
//! A signature is accepted when any `v1` matches (compared in constant time) and `t` is within
//! the tolerance of now. Pure: the caller gives the time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Stripe's default tolerance: five minutes either way.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// No `t=` or no `v1=` in the header, or a malformed one.
    Malformed,
    /// `t` is further from now than the tolerance (a replay, or a wrong clock).
    Stale,
    /// No `v1` matches the payload.
    Mismatch,
}

impl SignatureError {
    pub fn message(&self) -> &'static str {
        match self {
            SignatureError::Malformed => "Stripe-Signature must hold t=<timestamp> and v1=<hex>",
            SignatureError::Stale => "the signature's timestamp is outside the 5-minute tolerance",
            SignatureError::Mismatch => "no v1 signature matches this payload and secret",
        }
    }
}

fn mac(secret: &str, timestamp: i64, payload: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// The header Stripe would send for `payload` at `timestamp` (for tools and the fake Stripe).
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let digest = mac(secret, timestamp, payload).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// Checks `header` against `payload`, with `now_secs` the current Unix time.
pub fn verify(
    secret: &str,
    header: &str,
    payload: &[u8],
    now_secs: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates: Vec<[u8; 32]> = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            "v1" => {
                let mut bytes = [0u8; 32];
                // A v1 that is not 64 hex digits can never match: skip it like Stripe's libraries.
                if hex::decode_to_slice(value, &mut bytes).is_ok() {
                    candidates.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // abs_diff: a timestamp of i64::MIN must not overflow.
    if now_secs.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let expected = mac(secret, timestamp, payload).finalize().into_bytes();
    let matched = candidates.iter().fold(subtle::Choice::from(0), |any, c| {
        any | c.ct_eq(&expected[..])
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn extreme_timestamps_are_stale_not_an_overflow() {
        for t in [i64::MIN, i64::MAX] {
            let header = format!("t={t},v1={}", "0".repeat(64));
            assert_eq!(
                verify("whsec_x", &header, b"{}", 1_800_000_000),
                Err(SignatureError::Stale)
            );
        }
    }
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;

    #[test]
    fn accepts_its_own_signature_and_any_matching_v1() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert_eq!(verify(SECRET, &header, BODY, 1_700_000_010), Ok(()));
        let rolled = format!(
            "t=1700000000,v1={},{},v0=abc",
            "00".repeat(32),
            header.split(',').nth(1).unwrap()
        );
        assert_eq!(verify(SECRET, &rolled, BODY, 1_700_000_000), Ok(()));
    }

    #[test]
    fn a_known_vector_matches() {
        // HMAC-SHA256("whsec_test_secret", "1700000000.{...}") computed with Python's hmac module.
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert_eq!(
            header,
            "t=1700000000,v1=22d8dc182f5c588077683bd378368e29765bfe5df2560112b4f28fef120f0e31"
        );
    }

    #[test]
    fn rejects_changed_payloads_wrong_secrets_stale_times_and_garbage() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        let mut changed = BODY.to_vec();
        changed[10] ^= 1;
        assert_eq!(
            verify(SECRET, &header, &changed, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("whsec_other", &header, BODY, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, &header, BODY, 1_700_000_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(SECRET, &header, BODY, 1_699_999_699),
            Err(SignatureError::Stale)
        );
        for bad in [
            "",
            "t=1700000000",
            "v1=00",
            "t=x,v1=00",
            "t=1700000000,v1=zz",
        ] {
            assert_eq!(
                verify(SECRET, bad, BODY, 1_700_000_000),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }
}
