//! `redis_encrypt_secrets`: the replica's secret-bearing trees sealed with a key only the
//! primary (and whoever rebuilds it) holds, so a read of Redis (a dump, a stolen RDB file, a
//! curious edge operator) does not yield the config-signing key, the admin panel's password
//! hashes and second factors, or the hashes of operator-chosen tokens.
//!
//! Only values are sealed: a field (the record's key) stays readable so the stream can
//! delete it. Each value is bound to its tree and key, so a sealed value moved to another
//! field does not open. The key file holds 64 hex digits (`openssl rand -hex 32`) and must
//! be readable by its owner only.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store::TreeId;

/// Marks a sealed value (and its layout: magic, 24-byte nonce, ciphertext with its tag).
const MAGIC: &[u8; 4] = b"pfs1";
const NONCE: usize = 24;

/// The trees whose values are sealed: what lets a reader sign configs, pass the panel's
/// second factor, or test guesses of an operator's token against its hash. E-mail addresses
/// and payments are personal data, not secrets, and stay readable (docs/REDIS.md).
pub fn is_sealed(tree: TreeId) -> bool {
    matches!(
        tree,
        TreeId::Meta | TreeId::AdminAccounts | TreeId::ProxyCredentials | TreeId::Enrolments
    )
}

/// The key the replica's secrets are sealed with.
#[derive(Clone)]
pub struct Sealing {
    cipher: XChaCha20Poly1305,
    id: String,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("Sealing").field("id", &self.id).finish()
    }
}

impl Sealing {
    /// Reads the key file: 64 hex digits (surrounding whitespace ignored), mode 0600 or
    /// stricter. Refused otherwise, before anything is written with it.
    pub fn from_file(path: &Path) -> Result<Sealing> {
        let shown = path.display().to_string();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| Error::caused_by(shown.clone(), e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(Error::invalid(
                    "key_file_readable",
                    format!(
                        "{shown} is readable by others (mode {:o}): chmod 600 it",
                        mode & 0o777
                    ),
                ));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::caused_by(shown.clone(), e))?;
        let key = hex::decode(text.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| {
                Error::invalid(
                    "key_file_invalid",
                    format!("{shown} must hold 64 hex digits (openssl rand -hex 32)"),
                )
            })?;
        Ok(Sealing::new(&key))
    }

    pub fn new(key: &[u8; 32]) -> Sealing {
        let digest = Sha256::new()
            .chain_update(b"proxyfleet redis secrets key id\0")
            .chain_update(key)
            .finalize();
        Sealing {
            cipher: XChaCha20Poly1305::new(key.into()),
            id: hex::encode(&digest[..8]),
        }
    }

    /// Names the key without revealing it (`<p>mirror:sealed`): a replica sealed with another
    /// key is copied again by the primary and refused by a rebuild.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn seal(&self, tree: TreeId, key: &[u8], value: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value,
                    aad: &bound_to(tree, key),
                },
            )
            .expect("XChaCha20-Poly1305 seals any length a store value has");
        [MAGIC.as_slice(), &nonce, &sealed].concat()
    }

    pub fn open(&self, tree: TreeId, key: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        let refused = || {
            Error::invalid(
                "replica_unsealable",
                format!(
                    "a sealed value in replica:{} does not open with this key",
                    tree.name()
                ),
            )
        };
        let body = sealed.strip_prefix(MAGIC.as_slice()).ok_or_else(refused)?;
        if body.len() < NONCE {
            return Err(refused());
        }
        let (nonce, ciphertext) = body.split_at(NONCE);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &bound_to(tree, key),
                },
            )
            .map_err(|_| refused())
    }

    /// A value as the replica holds it: sealed if its tree is.
    pub fn outgoing(sealing: Option<&Sealing>, tree: TreeId, key: &[u8], value: &[u8]) -> Vec<u8> {
        match sealing {
            Some(sealing) if is_sealed(tree) => sealing.seal(tree, key, value),
            _ => value.to_vec(),
        }
    }
}

/// The associated data: a sealed value opens only under the tree and key it was written to.
fn bound_to(tree: TreeId, key: &[u8]) -> Vec<u8> {
    [tree.name().as_bytes(), b"\0", key].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_tree_and_field() {
        let sealing = Sealing::new(&[7; 32]);
        let sealed = sealing.seal(TreeId::Meta, b"signing.key", b"secret bytes");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            sealing.open(TreeId::Meta, b"signing.key", &sealed).unwrap(),
            b"secret bytes"
        );
        assert!(sealing.open(TreeId::Meta, b"other", &sealed).is_err());
        assert!(sealing
            .open(TreeId::AdminAccounts, b"signing.key", &sealed)
            .is_err());
        assert!(Sealing::new(&[8; 32])
            .open(TreeId::Meta, b"signing.key", &sealed)
            .is_err());
        assert!(sealing.open(TreeId::Meta, b"signing.key", b"pfs1").is_err());
        assert!(sealing
            .open(TreeId::Meta, b"signing.key", b"plain")
            .is_err());
        assert_ne!(Sealing::new(&[8; 32]).id(), sealing.id());
        assert!(!format!("{sealing:?}").contains("7, 7"));
    }

    #[test]
    fn a_key_file_must_be_private_and_hold_64_hex_digits() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let write = |text: &str, mode: u32| {
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write(&format!("{}\n", "ab".repeat(32)), 0o600);
        assert_eq!(
            Sealing::from_file(&path).unwrap().id(),
            Sealing::new(&[0xab; 32]).id()
        );
        write(&"ab".repeat(32), 0o644);
        assert_eq!(
            Sealing::from_file(&path).unwrap_err().code(),
            "key_file_readable"
        );
        write(&"ab".repeat(31), 0o600);
        assert_eq!(
            Sealing::from_file(&path).unwrap_err().code(),
            "key_file_invalid"
        );
        write(
            "not hex at all, not even close to 64 digits of it......",
            0o600,
        );
        assert_eq!(
            Sealing::from_file(&path).unwrap_err().code(),
            "key_file_invalid"
        );
    }
}
