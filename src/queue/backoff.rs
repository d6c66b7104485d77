//! Retry delays: exponential, capped, with jitter so that tasks failing together (a backend
//! down) do not all retry at the same instant.

use rand::Rng;

const CAP_MS: u64 = 10 * 60 * 1000;

/// Delay before try number `attempt + 1`, after `attempt` failed tries (attempt >= 1).
pub fn delay_ms(base_ms: u64, attempt: u32) -> u64 {
    let exponent = attempt.saturating_sub(1).min(30);
    let raw = base_ms.saturating_mul(1u64 << exponent).min(CAP_MS);
    // +-20% jitter.
    let spread = raw / 5;
    if spread == 0 {
        return raw;
    }
    let jitter = rand::thread_rng().gen_range(0..=2 * spread);
    raw - spread + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_caps() {
        for attempt in 1..6u32 {
            let expected = 1000u64 << (attempt - 1);
            let d = delay_ms(1000, attempt);
            assert!(
                d >= expected * 4 / 5 && d <= expected * 6 / 5,
                "attempt {attempt}: {d}"
            );
        }
        assert!(delay_ms(1000, 40) <= CAP_MS * 6 / 5);
        assert_eq!(delay_ms(0, 3), 0);
    }
}
