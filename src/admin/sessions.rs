//! Admin sessions. The cookie holds 32 random bytes; the store keeps only their SHA-256, with
//! the account, its password epoch, a CSRF token and an expiry. A session is valid while it is
//! unexpired and its epoch is the account's.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::accounts::{self, AdminAccount};
use crate::error::Result;
use crate::store::{Store, TreeId};

pub const COOKIE: &str = "pf_admin";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub username: String,
    pub password_epoch: u64,
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
        password_epoch: account.password_epoch,
        csrf: random_hex(),
        created_ms: now_ms,
        expires_ms: now_ms + ttl_ms,
    };
    store.put(TreeId::AdminSessions, key_of(&cookie), &session)?;
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
    Ok((account.password_epoch == session.password_epoch).then_some((session, account)))
}

pub fn end(store: &Store, cookie: &str) -> Result<()> {
    store.transaction(|tx| tx.remove(TreeId::AdminSessions, key_of(cookie)).map(|_| ()))
}

/// Store keys of every session of `username` (to end them with a password change).
pub fn keys_of_account(store: &Store, username: &str) -> Result<Vec<Vec<u8>>> {
    store
        .scan_from::<Session>(TreeId::AdminSessions, [])
        .filter_map(|item| match item {
            Ok((key, session)) if session.username == username => Some(Ok(key.to_vec())),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect()
}

/// Store keys of expired sessions (the sweeper removes them).
pub fn expired(store: &Store, now_ms: u64) -> Result<Vec<Vec<u8>>> {
    store
        .scan_from::<Session>(TreeId::AdminSessions, [])
        .filter_map(|item| match item {
            Ok((key, session)) if session.expires_ms <= now_ms => Some(Ok(key.to_vec())),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect()
}
