//! The first admin account, made in the browser while the server runs: a start with no
//! account prints a one-time link (`/admin/setup?token=...`); whoever opens it first chooses
//! the username and password. The token lives only in this process (its SHA-256), so a
//! restart prints a new one, and it is spent once any account exists, however it was made.

use std::sync::Mutex;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::accounts::{self, AdminAccount};
use crate::error::{Error, Result};
use crate::store::Store;

/// The setup token of this start, if it is still unspent.
#[derive(Default)]
pub struct SetupLink {
    token_hash: Mutex<Option<[u8; 32]>>,
}

impl SetupLink {
    /// Makes a token when the store has no admin account; returns it to be printed once.
    pub fn open_if_no_account(&self, store: &Store) -> Result<Option<String>> {
        if !accounts::list(store)?.is_empty() {
            return Ok(None);
        }
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token = format!("pfs_{}", hex::encode(bytes));
        *self.lock() = Some(Sha256::digest(token.as_bytes()).into());
        Ok(Some(token))
    }

    /// Creates the first account with the link's token: 403 for a wrong or spent token,
    /// 409 `setup_done` once any account exists (the token is then spent too).
    pub fn create_first_account(
        &self,
        store: &Store,
        token: &str,
        username: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<AdminAccount> {
        let offered: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut held = self.lock();
        let Some(expected) = *held else {
            return Err(Self::spent());
        };
        if !bool::from(expected.ct_eq(&offered)) {
            return Err(Error::forbidden(
                "setup_token",
                "this setup link is not valid: use the one the server printed at its last start",
            ));
        }
        // Under the lock: two browsers with the link cannot both make an account.
        if !accounts::list(store)?.is_empty() {
            *held = None;
            return Err(Self::spent());
        }
        let account = accounts::create(store, username, password, now_ms)?;
        *held = None;
        Ok(account)
    }

    fn spent() -> Error {
        Error::conflict(
            "setup_done",
            "the setup link is spent (an admin account exists): sign in with it",
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<[u8; 32]>> {
        self.token_hash.lock().unwrap_or_else(|e| e.into_inner())
    }
}
