//! Admin panel accounts: a username and an argon2 password hash (PHC string, salt inside),
//! an optional second factor with single-use recovery codes, and a session epoch that every
//! session carries, so a password change, a second-factor change, a reset or disabling the
//! account ends its sessions at once.

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
    /// Bumped by every password or second-factor change, reset and disable; sessions of an
    /// older epoch are void.
    pub session_epoch: u64,
    /// Base32 TOTP secret while the second factor is on (`admin::totp`).
    pub totp_secret: Option<String>,
    pub created_ms: u64,
    /// A disabled account cannot sign in; its sessions ended when it was disabled.
    pub disabled: bool,
    /// The last TOTP time step a code was accepted for: a code is good once.
    pub totp_last_step: u64,
    /// SHA-256 (hex) of the recovery codes not yet used; each replaces a TOTP code once.
    pub recovery_codes: Vec<String>,
}

/// An account as the API and the CLI show it (no hashes, no secrets).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountView {
    pub username: String,
    pub created_ms: u64,
    pub disabled: bool,
    pub totp_enabled: bool,
    pub recovery_codes_left: usize,
}

impl From<&AdminAccount> for AccountView {
    fn from(account: &AdminAccount) -> AccountView {
        AccountView {
            username: account.username.clone(),
            created_ms: account.created_ms,
            disabled: account.disabled,
            totp_enabled: account.totp_secret.is_some(),
            recovery_codes_left: account.recovery_codes.len(),
        }
    }
}

/// Names the audit trail uses for actors that are not accounts: no account may take one.
const RESERVED_NAMES: [&str; 8] = [
    super::audit::TOKEN_ACTOR,
    "system",
    "root",
    "admin-cli",
    "proxyfleet",
    "upkeep",
    "rebalancer",
    "anonymous",
];

/// Usernames: 1-64 of `a-z 0-9 . _ -`, so they are safe in logs, URLs and the audit trail.
pub fn check_username(name: &str) -> Result<()> {
    if RESERVED_NAMES.contains(&name) {
        return Err(Error::invalid(
            "reserved_username",
            format!("`{name}` names a system actor in the audit trail: choose another"),
        ));
    }
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
        session_epoch: 0,
        totp_secret: None,
        created_ms: now_ms,
        disabled: false,
        totp_last_step: 0,
        recovery_codes: Vec::new(),
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

/// A name as typed by anyone, cut to what may reach a record or a log line: at most 64
/// printable characters (no control or bidirectional formatting characters), trimmed and
/// lower-cased. A 4 KB username costs 64 bytes wherever it is kept.
pub fn printable_name(raw: &str) -> String {
    // Lower case first: some characters lower to two (`İ` to `i` and a combining dot), so
    // cutting before lowering could record up to 128 (found by fuzz/admin_input).
    raw.chars()
        .flat_map(char::to_lowercase)
        .filter(|c| !crate::http::body::is_invisible(*c))
        .take(64)
        .collect::<String>()
        .trim()
        .to_string()
}

/// What an operator does to an account (`proxyfleet admin ...`, the panel's Accounts page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountAction {
    Disable,
    Enable,
    Remove,
    /// A new generated password (returned once).
    ResetPassword,
    /// The second factor and its recovery codes are removed.
    ResetTotp,
}

impl AccountAction {
    const ALL: [AccountAction; 5] = [
        AccountAction::Disable,
        AccountAction::Enable,
        AccountAction::Remove,
        AccountAction::ResetPassword,
        AccountAction::ResetTotp,
    ];

    /// The name in URLs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            AccountAction::Disable => "disable",
            AccountAction::Enable => "enable",
            AccountAction::Remove => "remove",
            AccountAction::ResetPassword => "reset-password",
            AccountAction::ResetTotp => "reset-totp",
        }
    }

    pub fn parse(text: &str) -> Option<AccountAction> {
        Self::ALL.into_iter().find(|a| a.name() == text)
    }
}

/// Applies `action` to `username` in one transaction; every session of the account ends
/// (except for `Enable`). With `keep_one_enabled`, disabling or removing the last enabled
/// account is refused (409 `last_account`): a panel session cannot lock every admin out.
/// Returns the new password for `ResetPassword`.
pub fn apply(
    store: &Store,
    username: &str,
    action: AccountAction,
    keep_one_enabled: bool,
) -> Result<Option<String>> {
    let new_password = (action == AccountAction::ResetPassword).then(generate_password);
    let new_hash = new_password.as_deref().map(hash_password).transpose()?;
    let sessions = super::sessions::keys_of_account(store, username)?;
    // Read before the transaction (sled's cannot scan); two admins disabling each other at
    // the same instant could both pass, which the admin token and the CLI can undo.
    let others_enabled = list(store)?
        .iter()
        .any(|a| a.username != username && !a.disabled);
    store.transaction(|tx| {
        let Some(mut account) = tx.get::<AdminAccount>(TreeId::AdminAccounts, username)? else {
            return abort(Error::NotFound(format!("admin account `{username}`")));
        };
        let takes_away = matches!(action, AccountAction::Disable | AccountAction::Remove);
        if keep_one_enabled && takes_away && !account.disabled && !others_enabled {
            return abort(Error::conflict(
                "last_account",
                "this is the last enabled admin account: enable or create another first",
            ));
        }
        match action {
            AccountAction::Disable => account.disabled = true,
            AccountAction::Enable => account.disabled = false,
            AccountAction::Remove => {}
            AccountAction::ResetPassword => {
                account.password_hash = new_hash.clone().unwrap_or_default();
            }
            AccountAction::ResetTotp => {
                account.totp_secret = None;
                account.recovery_codes.clear();
            }
        }
        if action == AccountAction::Remove {
            tx.remove(TreeId::AdminAccounts, username)?;
        } else {
            if action != AccountAction::Enable {
                account.session_epoch += 1;
            }
            tx.put(TreeId::AdminAccounts, username, &account)?;
        }
        if action != AccountAction::Enable {
            for key in &sessions {
                tx.remove(TreeId::AdminSessions, key)?;
            }
        }
        Ok(())
    })?;
    Ok(new_password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_lowers_to_more_characters_is_still_cut_to_64() {
        let name = printable_name(&"\u{130}".repeat(64));
        assert!(name.chars().count() <= 64, "{}", name.chars().count());
        assert_eq!(printable_name("  Ops\u{202e}Team "), "opsteam");
    }

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
            session_epoch: 0,
            totp_secret: None,
            created_ms: 0,
            disabled: false,
            totp_last_step: 0,
            recovery_codes: Vec::new(),
        };
        assert!(account.password_hash.starts_with("$argon2id$"));
        assert!(password_matches(&account, "correct horse battery"));
        assert!(!password_matches(&account, "correct horse batter"));
        assert!(check_password("short").is_err());
    }
}
