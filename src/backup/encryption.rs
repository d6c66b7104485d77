//! Backups encrypted to an age recipient (`backup_recipient = "age1..."`). The store holds
//! every secret of the fleet (the config signing key, admin TOTP secrets, invitation codes):
//! a backup copied off the box is then readable only with the operator's identity, which never
//! lives on it. `proxyfleet restore --identity FILE` decrypts.

use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

pub use age::x25519::Recipient;

use crate::config::Config;
use crate::error::{Error, Result};

/// How every age file begins.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// The configured recipient, if any; a malformed one is an error (the server does not start
/// and silently write clear backups).
pub fn recipient(config: &Config) -> Result<Option<Recipient>> {
    let Some(text) = config
        .backup_recipient
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Ok(None);
    };
    Recipient::from_str(text).map(Some).map_err(|e| {
        Error::invalid(
            "invalid_backup_recipient",
            format!("backup_recipient is not an age X25519 recipient (age1...): {e}"),
        )
    })
}

pub fn is_encrypted(file: &[u8]) -> bool {
    file.starts_with(AGE_MAGIC)
}

/// Runs `write` on `out`, through age encryption when a recipient is given.
pub fn write_through<W, F>(out: W, recipient: Option<&Recipient>, write: F) -> Result<W>
where
    W: Write,
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    let failed = |e: std::io::Error| Error::caused_by("writing the backup", e);
    match recipient {
        None => {
            let mut out = out;
            write(&mut out).map_err(failed)?;
            Ok(out)
        }
        Some(recipient) => {
            let encryptor =
                age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
                    .map_err(Error::internal)?;
            let mut sealed = encryptor.wrap_output(out).map_err(failed)?;
            write(&mut sealed).map_err(failed)?;
            sealed.finish().map_err(failed)
        }
    }
}

/// The clear backup inside an encrypted one, with the identities of `identity_file` (an age
/// identity file: `AGE-SECRET-KEY-1...` lines).
pub fn decrypt(file: &[u8], identity_file: &Path) -> Result<Vec<u8>> {
    let identities = age::IdentityFile::from_file(identity_file.display().to_string())
        .map_err(|e| {
            Error::invalid(
                "invalid_identity",
                format!("reading {}: {e}", identity_file.display()),
            )
        })?
        .into_identities()
        .map_err(|e| Error::invalid("invalid_identity", e.to_string()))?;
    let refused = |e: age::DecryptError| {
        Error::invalid(
            "backup_refused",
            format!("the backup cannot be decrypted with this identity: {e}"),
        )
    };
    let decryptor = age::Decryptor::new_buffered(file).map_err(refused)?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(refused)?;
    let mut clear = Vec::new();
    reader.read_to_end(&mut clear).map_err(|e| {
        Error::invalid(
            "backup_refused",
            format!("the encrypted backup is corrupt or cut short: {e}"),
        )
    })?;
    Ok(clear)
}
