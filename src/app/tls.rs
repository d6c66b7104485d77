//! HTTPS: the certificate and key named in the config, or a self-signed pair made on first
//! start (rcgen) and kept, so clients that pin its fingerprint keep working across restarts.
//! Plain HTTP stays on loopback unless the operator says otherwise: a panel or API that
//! answers in clear text hands its tokens to whoever watches the wire.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Error, Result};

pub struct TlsFiles {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// SHA-256 of the (first) certificate, `AB:CD:...`, for clients to pin.
    pub fingerprint: String,
    /// Whether the pair was generated here.
    pub self_signed: bool,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::caused_by(path.display().to_string(), e)
}

/// Refuses a plain-HTTP listener off loopback unless `allow_public_http` is set.
pub fn check_plain_http(config: &Config) -> Result<()> {
    if config.listen.ip().is_loopback() || config.allow_public_http {
        return Ok(());
    }
    Err(Error::internal(format!(
        "listen = {} serves plain HTTP off loopback, where tokens travel in clear text: use \
         https_listen for the public side, or set allow_public_http = true (e.g. behind a TLS \
         proxy on a private network)",
        config.listen
    )))
}

/// Loads the configured pair, or the self-signed one (made now if there is none yet).
pub fn load_or_create(config: &Config) -> Result<TlsFiles> {
    let (cert_pem, key_pem, self_signed) = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => (
            std::fs::read(cert).map_err(io(cert))?,
            std::fs::read(key).map_err(io(key))?,
            false,
        ),
        (None, None) => {
            let (cert, key) = self_signed_paths(config);
            if !cert.exists() || !key.exists() {
                generate(config, &cert, &key)?;
            }
            (
                std::fs::read(&cert).map_err(io(&cert))?,
                std::fs::read(&key).map_err(io(&key))?,
                true,
            )
        }
        _ => {
            return Err(Error::internal(
                "set both tls_cert and tls_key, or neither (a self-signed pair is made then)",
            ))
        }
    };
    let fingerprint = fingerprint(&cert_pem)?;
    Ok(TlsFiles {
        cert_pem,
        key_pem,
        fingerprint,
        self_signed,
    })
}

fn self_signed_paths(config: &Config) -> (PathBuf, PathBuf) {
    let dir = config.data_dir.join("tls");
    (dir.join("self-signed.crt"), dir.join("self-signed.key"))
}

fn generate(config: &Config, cert_path: &Path, key_path: &Path) -> Result<()> {
    let mut names = config.tls_hostnames.clone();
    if names.is_empty() {
        names = vec!["localhost".into(), "127.0.0.1".into()];
    }
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| Error::caused_by("making a self-signed certificate", e))?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    // The key first, readable by the server's user only; the certificate is public.
    let mut key = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(key_path)
        .map_err(io(key_path))?;
    std::io::Write::write_all(&mut key, certified.key_pair.serialize_pem().as_bytes())
        .map_err(io(key_path))?;
    std::fs::write(cert_path, certified.cert.pem()).map_err(io(cert_path))?;
    Ok(())
}

/// SHA-256 of the first certificate's DER bytes, as colon-separated hex.
pub fn fingerprint(cert_pem: &[u8]) -> Result<String> {
    let der = rustls_pemfile::certs(&mut &cert_pem[..])
        .next()
        .ok_or_else(|| Error::internal("no certificate found in the PEM file"))?
        .map_err(|e| Error::caused_by("the certificate is not valid PEM", e))?;
    let digest = Sha256::digest(der.as_ref());
    Ok(digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let first = load_or_create(&config).unwrap();
        assert!(first.self_signed);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let again = load_or_create(&config).unwrap();
        assert_eq!(again.fingerprint, first.fingerprint, "kept across starts");
        let key = dir.path().join("tls/self-signed.key");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn plain_http_off_loopback_needs_saying_so() {
        let public = Config {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..Config::default()
        };
        assert!(check_plain_http(&public).is_err());
        assert!(check_plain_http(&Config {
            allow_public_http: true,
            ..public
        })
        .is_ok());
        assert!(check_plain_http(&Config::default()).is_ok());
    }
}
