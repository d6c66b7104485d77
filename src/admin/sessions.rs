//! Admin sessions. The cookie holds 32 random bytes; the store keeps only their SHA-256, with
//! the account, its session epoch, a CSRF token and an expiry. A session is valid while it is
//! unexpired and its epoch is the account's.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::accounts::{self, AdminAccount};
use crate::error::Result;
use crate::store::{Store, TreeId, Tx, TxResult};

pub const COOKIE: &str = "pf_admin";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub username: String,
    pub session_epoch: u64,
    /// Sent back by the UI in `X-CSRF-Token` on every mutating call.
    pub csrf: String,
    pub created_ms: u64,
    pub expires_ms: u64,
}

impl Session {
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The store key of a cookie value.
pub fn key_of(cookie: &str) -> Vec<u8> {
    Sha256::digest(cookie.as_bytes()).to_vec()
}

/// Starts a session; returns the cookie value (shown once) and the session.
pub fn start(
    store: &Store,
    account: &AdminAccount,
    now_ms: u64,
    ttl_ms: u64,
) -> Result<(String, Session)> {
    let cookie = random_hex();
    let session = Session {
        username: account.username.clone(),
        session_epoch: account.session_epoch,
        csrf: random_hex(),
        created_ms: now_ms,
        expires_ms: now_ms + ttl_ms,
    };
    // Also while the disk guard refuses writes: signing in is how an operator gets to free it.
    store.transaction_while_full(|tx| tx.put(TreeId::AdminSessions, key_of(&cookie), &session))?;
    Ok((cookie, session))
}

/// The live session and account a cookie value stands for.
pub fn find(store: &Store, cookie: &str, now_ms: u64) -> Result<Option<(Session, AdminAccount)>> {
    let Some(session) = store.get::<Session>(TreeId::AdminSessions, key_of(cookie))? else {
        return Ok(None);
    };
    if session.expires_ms <= now_ms {
        return Ok(None);
    }
    let Some(account) = accounts::get(store, &session.username)? else {
        return Ok(None);
    };
    let live = account.session_epoch == session.session_epoch && !account.disabled;
    Ok(live.then_some((session, account)))
}

pub fn end(store: &Store, cookie: &str) -> Result<()> {
    store.transaction(|tx| tx.remove(TreeId::AdminSessions, key_of(cookie)).map(|_| ()))
}

/// Store keys of every session of `username` (to end them with a password change).
pub fn keys_of_account(store: &Store, username: &str) -> Result<Vec<Vec<u8>>> {
    keys_where(store, |session| session.username == username)
}

/// Inside a transaction that bumped the account's epoch: ends the sessions `keys` except
/// `keep` (the caller's), which moves to the new epoch and so stays signed in.
pub fn end_others_in(tx: &Tx, keys: &[Vec<u8>], keep: &[u8], epoch: u64) -> TxResult<()> {
    for key in keys {
        if key.as_slice() != keep {
            tx.remove(TreeId::AdminSessions, key)?;
        }
    }
    if let Some(mut session) = tx.get::<Session>(TreeId::AdminSessions, keep)? {
        session.session_epoch = epoch;
        tx.put(TreeId::AdminSessions, keep, &session)?;
    }
    Ok(())
}

/// Ends the sessions past their expiry (periodic upkeep; `find` already refuses them).
pub fn end_expired(store: &Store, now_ms: u64) -> Result<usize> {
    let keys = keys_where(store, |session| session.expires_ms <= now_ms)?;
    store.transaction(|tx| {
        for key in &keys {
            tx.remove(TreeId::AdminSessions, key)?;
        }
        Ok(keys.len())
    })
}

fn keys_where(store: &Store, wanted: impl Fn(&Session) -> bool) -> Result<Vec<Vec<u8>>> {
    store
        .scan_from::<Session>(TreeId::AdminSessions, [])
        .filter_map(|item| match item {
            Ok((key, session)) if wanted(&session) => Some(Ok(key.to_vec())),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expired_sessions_are_ended_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let account = accounts::create(&store, "ops", "correct horse battery", 0).unwrap();
        let (old, _) = start(&store, &account, 0, 1_000).unwrap();
        let (live, _) = start(&store, &account, 0, 60_000).unwrap();

        assert_eq!(end_expired(&store, 5_000).unwrap(), 1);
        assert!(store
            .get::<Session>(TreeId::AdminSessions, key_of(&old))
            .unwrap()
            .is_none());
        assert!(find(&store, &live, 5_000).unwrap().is_some());
        assert_eq!(end_expired(&store, 5_000).unwrap(), 0);
    }
}
