//! The start of each user and device token, kept so an operator can find an account from the
//! part of a token a user reads out or pastes into a support message. Only the token's
//! SHA-256 authenticates; this index holds the kind and the first 8 hex digits (32 of the 256
//! random bits), so what it reveals leaves 224 bits unknown. Tokens issued before this index
//! existed have no entry: a whole token still finds its account through the hash.

use std::collections::BTreeSet;

use super::model::UserId;
use crate::error::Result;
use crate::http::TokenHash;
use crate::store::{Store, TreeId, Tx, TxResult};

/// Hex digits kept after the kind (`pfu_`, `pfd_`).
pub const KEPT_DIGITS: usize = 8;
/// The fewest hex digits a search gives: four narrow 100,000 accounts to about two.
pub const MIN_DIGITS: usize = 4;
/// A token: its kind, `_`, and 64 hex digits.
const TOKEN_DIGITS: usize = 64;
/// Token kinds that authenticate a user (`pfu_` account, `pfd_` device).
const KINDS: [&str; 2] = ["pfu_", "pfd_"];
/// A search answers at most this many accounts: more means the text says too little.
pub const MAX_HOLDERS: usize = 1_000;

/// What is kept of `token`: its kind and first digits.
fn kept(token: &str) -> &str {
    &token[..token.len().min(4 + KEPT_DIGITS)]
}

/// Records the start of a token just issued, beside its hash.
pub fn record(tx: &Tx, token: &str, hash: &TokenHash) -> TxResult<()> {
    tx.put(
        TreeId::TokenPrefixes,
        hash.as_bytes(),
        &kept(token).to_string(),
    )
}

/// Forgets a token that stops working.
pub fn forget(tx: &Tx, hash: &TokenHash) -> TxResult<()> {
    tx.remove(TreeId::TokenPrefixes, hash.as_bytes())
        .map(|_| ())
}

/// A search text that is the start of a token (lower case): a kind, then 4 to 64 hex digits.
pub fn token_shaped(text: &str) -> bool {
    KINDS.iter().any(|kind| {
        text.strip_prefix(kind).is_some_and(|digits| {
            (MIN_DIGITS..=TOKEN_DIGITS).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_hexdigit())
        })
    })
}

/// The accounts holding a token that starts with `text` (token-shaped, lower case). A whole
/// token is looked up by its hash, so it finds accounts made before this index too. A
/// prefix reads the whole index once: one short entry per live token, and admin searches
/// are rare.
pub fn holders(store: &Store, text: &str) -> Result<BTreeSet<UserId>> {
    let mut found = BTreeSet::new();
    if text.len() == 4 + TOKEN_DIGITS {
        let hash = TokenHash::of(text);
        if let Some(id) = store.get::<UserId>(TreeId::UserTokens, hash.as_bytes())? {
            found.insert(id);
        }
        return Ok(found);
    }
    // Digits past the kept ones cannot be compared: the stored start must agree as far as
    // both go.
    let wanted = kept(text);
    for item in store.scan_from::<String>(TreeId::TokenPrefixes, []) {
        let (hash, start) = item?;
        if !start.starts_with(wanted) {
            continue;
        }
        if let Some(id) = store.get::<UserId>(TreeId::UserTokens, &hash)? {
            found.insert(id);
            if found.len() >= MAX_HOLDERS {
                break;
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_kind_and_enough_hex_digits_look_like_a_token() {
        assert!(token_shaped("pfu_1a2b"));
        assert!(token_shaped("pfd_1a2b3c4d5e"));
        assert!(token_shaped(&format!("pfu_{}", "a".repeat(64))));
        assert!(!token_shaped("pfu_1a2"), "too few digits");
        assert!(
            !token_shaped(&format!("pfu_{}", "a".repeat(65))),
            "too long"
        );
        assert!(!token_shaped("pfu_1a2g"), "not hex");
        assert!(
            !token_shaped("pfp_1a2b3c4d"),
            "a probe's token is no account's"
        );
        assert!(!token_shaped("1a2b3c4d"));
    }

    #[test]
    fn what_is_kept_is_the_kind_and_eight_digits() {
        let token = format!("pfu_{}", "0123456789abcdef".repeat(4));
        assert_eq!(kept(&token), "pfu_01234567");
        assert_eq!(kept("pfu_0123"), "pfu_0123");
    }
}
