//! Checking who signs in, and the second factor. An unknown or disabled username costs the
//! same argon2 work as a known one, so timing does not tell which names exist. A TOTP code is
//! accepted once (the account remembers the last time step it took); a recovery code once
//! ever.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

use super::accounts::{self, AdminAccount};
use super::totp;
use crate::error::{Error, Result};
use crate::store::{abort, Store, TreeId};

/// How many recovery codes a second-factor enrolment gives.
pub const RECOVERY_CODES: usize = 10;
/// Recovery codes: 10 characters from the unambiguous alphabet of promo codes.
const RECOVERY_CODE_LEN: usize = 10;

/// A hash nobody's password matches, checked when the account does not exist.
static DECOY_HASH: LazyLock<String> = LazyLock::new(|| {
    accounts::hash_password("decoy password, never a real one").unwrap_or_default()
});

pub enum SignIn {
    Accepted(AdminAccount),
    /// Wrong username, password or code, or a disabled account (the same answer for all).
    Refused,
    /// The password is right; the account asks for its second factor.
    SecondFactorRequired,
}

/// Checks a sign-in; blocking (argon2). `code` is a TOTP code or a recovery code.
pub fn check(
    store: &Store,
    username: &str,
    password: &str,
    code: Option<&str>,
    now_ms: u64,
) -> Result<SignIn> {
    let account = accounts::get(store, username)?.filter(|a| !a.disabled);
    let Some(account) = account else {
        let decoy = AdminAccount {
            username: String::new(),
            password_hash: DECOY_HASH.clone(),
            session_epoch: 0,
            totp_secret: None,
            created_ms: 0,
            disabled: false,
            totp_last_step: 0,
            recovery_codes: Vec::new(),
        };
        let _ = accounts::password_matches(&decoy, password);
        return Ok(SignIn::Refused);
    };
    if !accounts::password_matches(&account, password) {
        return Ok(SignIn::Refused);
    }
    if account.totp_secret.is_none() {
        return Ok(SignIn::Accepted(account));
    }
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(SignIn::SecondFactorRequired);
    };
    Ok(match use_second_factor(store, username, code, now_ms)? {
        Some(account) => SignIn::Accepted(account),
        None => SignIn::Refused,
    })
}

/// Spends a TOTP code (if its step is newer than the last one taken) or a recovery code of
/// the account, in one transaction. `None` when the code is wrong or was used.
pub fn use_second_factor(
    store: &Store,
    username: &str,
    code: &str,
    now_ms: u64,
) -> Result<Option<AdminAccount>> {
    let recovery = hash_recovery_code(code);
    // Part of signing in, which works while the disk guard refuses writes (`sessions::start`).
    let used = store.transaction_while_full(|tx| {
        let Some(mut account) = tx.get::<AdminAccount>(TreeId::AdminAccounts, username)? else {
            return Ok(None);
        };
        let Some(secret) = account.totp_secret.as_deref() else {
            return Ok(None);
        };
        if let Some(step) = totp::matching_step(secret, code, now_ms / 1000) {
            if step <= account.totp_last_step {
                return Ok(None); // replayed
            }
            account.totp_last_step = step;
        } else if let Some(at) = account.recovery_codes.iter().position(|h| *h == recovery) {
            account.recovery_codes.remove(at);
        } else {
            return Ok(None);
        }
        tx.put(TreeId::AdminAccounts, username, &account)?;
        Ok(Some(account))
    })?;
    Ok(used)
}

/// Fresh recovery codes: what to show once, and what to store.
pub fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    let mut rng = rand::thread_rng();
    let shown: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let code = crate::billing::codes::generate(&mut rng, RECOVERY_CODE_LEN);
            // A dash in the middle, as people read them; ignored when checked.
            format!("{}-{}", &code[..5], &code[5..])
        })
        .collect();
    let stored = shown.iter().map(|c| hash_recovery_code(c)).collect();
    (shown, stored)
}

fn hash_recovery_code(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex::encode(Sha256::digest(normal.as_bytes()))
}

/// Turns the second factor on or replaces its secret. Needs the password and, when the
/// factor is already on, a current code (or a recovery code); then `code` must be right for
/// `new_secret`. Bumps the session epoch (every other session ends; `keep_session`, the
/// caller's, is carried over) and returns the new recovery codes, shown once.
pub fn set_second_factor(
    store: &Store,
    username: &str,
    change: SecondFactorChange<'_>,
    keep_session: &[u8],
    now_ms: u64,
) -> Result<Vec<String>> {
    totp::check_secret(change.new_secret)?;
    let account = accounts::get(store, username)?
        .ok_or_else(|| Error::NotFound(format!("admin account `{username}`")))?;
    if !accounts::password_matches(&account, change.password) {
        return Err(wrong_password());
    }
    if account.totp_secret.is_some() {
        let current = change.current_code.unwrap_or_default();
        if use_second_factor(store, username, current, now_ms)?.is_none() {
            return Err(wrong_code("current_code"));
        }
    }
    let Some(step) = totp::matching_step(change.new_secret, change.code, now_ms / 1000) else {
        return Err(wrong_code("code"));
    };
    let (shown, stored) = new_recovery_codes();
    let others = super::sessions::keys_of_account(store, username)?;
    store.transaction(|tx| {
        let Some(mut account) = tx.get::<AdminAccount>(TreeId::AdminAccounts, username)? else {
            return abort(Error::NotFound(format!("admin account `{username}`")));
        };
        account.totp_secret = Some(change.new_secret.to_string());
        account.totp_last_step = step;
        account.recovery_codes = stored.clone();
        account.session_epoch += 1;
        tx.put(TreeId::AdminAccounts, username, &account)?;
        super::sessions::end_others_in(tx, &others, keep_session, account.session_epoch)
    })?;
    Ok(shown)
}

/// What `set_second_factor` is given.
pub struct SecondFactorChange<'a> {
    pub password: &'a str,
    /// A code of the secret in use, when the factor is on.
    pub current_code: Option<&'a str>,
    pub new_secret: &'a str,
    /// A code of `new_secret`: proof that the app holds it.
    pub code: &'a str,
}

/// Turns the second factor off: needs the password and a current (or recovery) code.
pub fn remove_second_factor(
    store: &Store,
    username: &str,
    password: &str,
    code: &str,
    now_ms: u64,
) -> Result<()> {
    let account = accounts::get(store, username)?
        .ok_or_else(|| Error::NotFound(format!("admin account `{username}`")))?;
    if account.totp_secret.is_none() {
        return Err(Error::conflict(
            "totp_off",
            "the second factor is already off",
        ));
    }
    if !accounts::password_matches(&account, password) {
        return Err(wrong_password());
    }
    if use_second_factor(store, username, code, now_ms)?.is_none() {
        return Err(wrong_code("code"));
    }
    store.transaction(|tx| {
        let Some(mut account) = tx.get::<AdminAccount>(TreeId::AdminAccounts, username)? else {
            return abort(Error::NotFound(format!("admin account `{username}`")));
        };
        account.totp_secret = None;
        account.recovery_codes.clear();
        tx.put(TreeId::AdminAccounts, username, &account)
    })
}

pub fn wrong_password() -> Error {
    Error::forbidden("wrong_password", "the current password is not right")
}

fn wrong_code(field: &str) -> Error {
    Error::invalid(
        "wrong_code",
        format!("`{field}` is not a current code (each code is accepted once)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_account() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        accounts::create(&store, "ops", "correct horse battery", 0).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn codes_are_good_once_and_recovery_codes_too() {
        let (_dir, store) = store_with_account();
        let secret = totp::new_secret();
        let now_ms = 1_800_000_000_000;
        let code = totp::code_at(&secret, now_ms / 1000).unwrap();
        let change = SecondFactorChange {
            password: "correct horse battery",
            current_code: None,
            new_secret: &secret,
            code: &code,
        };
        let recovery = set_second_factor(&store, "ops", change, b"", now_ms).unwrap();
        assert_eq!(recovery.len(), RECOVERY_CODES);

        // The enrolment's code was spent: the same code cannot sign in.
        let again = check(&store, "ops", "correct horse battery", Some(&code), now_ms).unwrap();
        assert!(matches!(again, SignIn::Refused));
        let next = totp::code_at(&secret, now_ms / 1000 + 30).unwrap();
        let ok = check(&store, "ops", "correct horse battery", Some(&next), now_ms).unwrap();
        assert!(matches!(ok, SignIn::Accepted(_)));
        let replay = check(&store, "ops", "correct horse battery", Some(&next), now_ms).unwrap();
        assert!(matches!(replay, SignIn::Refused));

        let spent = recovery[0].to_lowercase();
        let ok = check(&store, "ops", "correct horse battery", Some(&spent), now_ms).unwrap();
        assert!(matches!(ok, SignIn::Accepted(_)));
        let again = check(&store, "ops", "correct horse battery", Some(&spent), now_ms).unwrap();
        assert!(matches!(again, SignIn::Refused));
        let account = accounts::get(&store, "ops").unwrap().unwrap();
        assert_eq!(account.recovery_codes.len(), RECOVERY_CODES - 1);
    }

    #[tokio::test]
    async fn replacing_the_secret_needs_the_password_and_a_current_code() {
        let (_dir, store) = store_with_account();
        let now_ms = 1_800_000_000_000;
        let first = totp::new_secret();
        let code = totp::code_at(&first, now_ms / 1000).unwrap();
        let change = SecondFactorChange {
            password: "correct horse battery",
            current_code: None,
            new_secret: &first,
            code: &code,
        };
        set_second_factor(&store, "ops", change, b"", now_ms).unwrap();

        let thief = totp::new_secret();
        let thief_code = totp::code_at(&thief, now_ms / 1000).unwrap();
        let no_password = SecondFactorChange {
            password: "guess",
            current_code: None,
            new_secret: &thief,
            code: &thief_code,
        };
        let refused = set_second_factor(&store, "ops", no_password, b"", now_ms).unwrap_err();
        assert_eq!(refused.code(), "wrong_password");
        let no_code = SecondFactorChange {
            password: "correct horse battery",
            current_code: Some("000000"),
            new_secret: &thief,
            code: &thief_code,
        };
        let refused = set_second_factor(&store, "ops", no_code, b"", now_ms).unwrap_err();
        assert_eq!(refused.code(), "wrong_code");
        let kept = accounts::get(&store, "ops").unwrap().unwrap();
        assert_eq!(kept.totp_secret.as_deref(), Some(first.as_str()));
    }

    #[tokio::test]
    async fn unknown_and_disabled_names_are_refused_alike() {
        let (_dir, store) = store_with_account();
        let unknown = check(&store, "nobody", "correct horse battery", None, 0).unwrap();
        assert!(matches!(unknown, SignIn::Refused));
        accounts::apply(&store, "ops", accounts::AccountAction::Disable, false).unwrap();
        let disabled = check(&store, "ops", "correct horse battery", None, 0).unwrap();
        assert!(matches!(disabled, SignIn::Refused));
    }
}
