//! Bearer tokens. Only a SHA-256 of each token is kept (in memory and on disk) and a presented
//! token is compared by hash in constant time, so neither timing nor a stolen database reveals
//! a token.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warp::filters::BoxedFilter;
use warp::Filter;

use super::reject;
use crate::error::Error;

#[derive(Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn matches(&self, presented: &str) -> bool {
        TokenHash::of(presented).0.ct_eq(&self.0).into()
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(***)")
    }
}

pub fn bearer_value(header: Option<&str>) -> Option<&str> {
    let value = header?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Passes when the Authorization header carries a token matching `expected`; else 401.
pub fn bearer(expected: TokenHash) -> BoxedFilter<()> {
    warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| async move {
            match bearer_value(header.as_deref()) {
                Some(token) if expected.matches(token) => Ok(()),
                _ => Err(reject(Error::Unauthorized)),
            }
        })
        .untuple_one()
        .boxed()
}

/// What `lookup` finds for the Authorization header's bearer token; 401 when the header has
/// no bearer token or `lookup` finds nothing.
pub fn bearer_lookup<T, F>(lookup: F) -> BoxedFilter<(T,)>
where
    T: Send + 'static,
    F: Fn(&str) -> crate::error::Result<Option<T>> + Clone + Send + Sync + 'static,
{
    warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| {
            let lookup = lookup.clone();
            async move {
                let token =
                    bearer_value(header.as_deref()).ok_or_else(|| reject(Error::Unauthorized))?;
                match lookup(token) {
                    Ok(Some(found)) => Ok(found),
                    Ok(None) => Err(reject(Error::Unauthorized)),
                    Err(e) => Err(reject(e)),
                }
            }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_scheme_case_insensitively() {
        assert_eq!(bearer_value(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_value(Some("bearer abc")), Some("abc"));
        assert_eq!(bearer_value(Some("Basic abc")), None);
        assert_eq!(bearer_value(Some("Bearerabc")), None);
        assert_eq!(bearer_value(None), None);
    }

    #[test]
    fn matches_only_the_same_token() {
        let hash = TokenHash::of("s3cret");
        assert!(hash.matches("s3cret"));
        assert!(!hash.matches("s3cre"));
        assert!(!hash.matches(""));
    }
}
