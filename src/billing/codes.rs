//! Referral and promo codes (pure). The codes proxyfleet makes are short, in an alphabet
//! without look-alikes (no 0/O, 1/I/L, no U); an operator names a promo code with any letters
//! and digits (SUMMER2026). Both are read back forgivingly (any case, spaces and dashes
//! ignored).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fleet::model::UserId;

/// 30 symbols: digits 2-9 and the letters that cannot be mistaken for them or each other.
pub const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 8 symbols: about 39 bits, far more codes than users, short enough to read out.
pub const REFERRAL_LEN: usize = 8;
const MIN_LEN: usize = 4;
const MAX_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Code {
    /// A user's own code: redeeming it gives both sides the referral bonus.
    Referral { owner: UserId },
    /// An operator's code: `days` of Pro, at most `max_uses` redemptions, until `expires_ms`.
    Promo {
        days: u64,
        max_uses: u64,
        uses: u64,
        expires_ms: Option<u64>,
        created_ms: u64,
    },
}

pub fn generate(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// The canonical form of a code as typed: upper case, without spaces or dashes; refused if
/// it has anything but ASCII letters and digits or a wrong length.
pub fn normalize(typed: &str) -> Result<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid = (MIN_LEN..=MAX_LEN).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_alphanumeric());
    if valid {
        Ok(code)
    } else {
        Err(Error::invalid(
            "invalid_code",
            "a code is 4 to 32 letters (A-Z, any case) and digits; spaces and dashes are ignored",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn codes_are_unambiguous_and_read_forgivingly() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let code = generate(&mut rng, REFERRAL_LEN);
        assert_eq!(code.len(), 8);
        assert_eq!(normalize(&code).unwrap(), code);
        let typed = format!(" {}-{} ", &code[..4].to_lowercase(), &code[4..]);
        assert_eq!(normalize(&typed).unwrap(), code);
        for bad in ["ABC", "AB_CD", "ÄBCD", "ABC.D", &"A".repeat(33)] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
        // An operator's promo code may use any letters and digits.
        assert_eq!(normalize("summer-2026").unwrap(), "SUMMER2026");
        assert_eq!(normalize("ILOU0101").unwrap(), "ILOU0101");
        assert!(!ALPHABET.iter().any(|b| b"01ILOU".contains(b)));
    }
}
