//! Admin panel accounts: a username and an argon2 password hash (PHC string, salt inside),
//! and a password epoch that every session carries, so a password
//! change ends every session at once.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::abort;
use crate::store::{Store, TreeId};

pub const MIN_PASSWORD_LEN: usize = 12;
const MAX_PASSWORD_LEN: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminAccount {
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Bumped by every password change; sessions of an older epoch are void.
    pub password_epoch: u64,
    /// Base32 TOTP secret while the second factor is on (`admin::totp`).
    pub totp_secret: Option<String>,
    pub created_ms: u64,
}

/// Usernames: 1-64 of `a-z 0-9 . _ -`, so they are safe in logs, URLs and the audit trail.
pub fn check_username(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_username",
            "a username is 1 to 64 of a-z, 0-9, '.', '_', '-'",
        ))
    }
}

pub fn check_password(password: &str) -> Result<()> {
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "weak_password",
            format!("a password is {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters"),
        ))
    }
}

pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(Error::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(Error::internal)
}

/// Constant-time by construction (argon2 recomputes the whole hash).
pub fn password_matches(account: &AdminAccount, password: &str) -> bool {
    PasswordHash::new(&account.password_hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random password for `proxyfleet admin create`: 20 characters from an unambiguous set.
pub fn generate_password() -> String {
    crate::billing::codes::generate(&mut rand::thread_rng(), 20)
}

pub fn get(store: &Store, username: &str) -> Result<Option<AdminAccount>> {
    store.get(TreeId::AdminAccounts, username)
}

pub fn list(store: &Store) -> Result<Vec<AdminAccount>> {
    store.values(TreeId::AdminAccounts).collect()
}

/// Creates an account; 409 `username_taken` if it exists.
pub fn create(store: &Store, username: &str, password: &str, now_ms: u64) -> Result<AdminAccount> {
    check_username(username)?;
    check_password(password)?;
    let account = AdminAccount {
        username: username.to_string(),
        password_hash: hash_password(password)?,
        password_epoch: 0,
        totp_secret: None,
        created_ms: now_ms,
    };
    store.transaction(|tx| {
        if tx.contains(TreeId::AdminAccounts, username)? {
            return abort(Error::conflict(
                "username_taken",
                "an admin with this username exists",
            ));
        }
        tx.put(TreeId::AdminAccounts, username, &account)
    })?;
    Ok(account)
}

/// Replaces the account record (password, TOTP) and, when the password changed, removes
/// every session of the account in the same transaction.
pub fn save(store: &Store, account: &AdminAccount, end_sessions: &[Vec<u8>]) -> Result<()> {
    store.transaction(|tx| {
        tx.put(TreeId::AdminAccounts, &account.username, account)?;
        for key in end_sessions {
            tx.remove(TreeId::AdminSessions, key)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_plain() {
        assert!(check_username("ops-1.main_2").is_ok());
        assert!(check_username("").is_err());
        assert!(check_username("Ops").is_err());
        assert!(check_username("a b").is_err());
        assert!(check_username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn a_hash_verifies_only_its_password() {
        let account = AdminAccount {
            username: "ops".into(),
            password_hash: hash_password("correct horse battery").unwrap(),
            password_epoch: 0,
            totp_secret: None,
            created_ms: 0,
        };
        assert!(account.password_hash.starts_with("$argon2id$"));
        assert!(password_matches(&account, "correct horse battery"));
        assert!(!password_matches(&account, "correct horse batter"));
        assert!(check_password("short").is_err());
    }
}
