//! `proxyfleet backup` (restore is `backup::restore`). A backup opens the store itself when no
//! server runs; otherwise (sled allows one process) it asks the running server, with the
//! cookie the server left in its data directory.

use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Store;

/// Writes a backup of the store `config` names to `out`; returns what was written.
pub async fn backup(config: &Config, out: &Path) -> Result<super::Written> {
    if !config.data_dir.is_dir() {
        return Err(Error::internal(format!(
            "{} does not exist: nothing to back up",
            config.data_dir.display()
        )));
    }
    match Store::open(&config.data_dir) {
        Ok(store) => {
            let recipient = super::encryption::recipient(config)?;
            let written = super::write_file(&store, out, recipient.as_ref());
            drop(store);
            written
        }
        Err(_) => from_running_server(config, out).await,
    }
}

/// The control cookie the running server left in its data directory.
pub fn control_cookie(config: &Config) -> Result<String> {
    let cookie_path = config.control_cookie_path();
    let cookie = std::fs::read_to_string(&cookie_path).map_err(|e| {
        Error::internal(format!(
            "the store is in use and {} cannot be read ({e}): run this as the server's user",
            cookie_path.display()
        ))
    })?;
    Ok(cookie.trim().to_string())
}

/// The running server's plain-HTTP listener, as this box reaches it: the address the server
/// wrote beside its control cookie (right even for port 0), else the configured one.
pub fn local_url(config: &Config) -> String {
    let written = config.control_url_path();
    if let Ok(url) = std::fs::read_to_string(written) {
        if url.starts_with("http://") {
            return url.trim().to_string();
        }
    }
    let mut address = config.listen;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{address}")
}

async fn from_running_server(config: &Config, out: &Path) -> Result<super::Written> {
    let cookie = control_cookie(config)?;
    let url = format!("{}/api/v1/admin/backup", local_url(config));
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(cookie)
        .send()
        .await
        .map_err(|e| Error::caused_by(format!("asking the running server at {url}"), e))?;
    if !response.status().is_success() {
        return Err(Error::internal(format!(
            "the running server at {url} answered {}",
            response.status()
        )));
    }
    let told_records = response
        .headers()
        .get(super::RECORDS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Error::caused_by(format!("reading the backup from {url}"), e))?;
    // An encrypted backup (the server's backup_recipient) cannot be checked here; the age
    // stream carries its own authentication, checked on restore.
    let records = if super::encryption::is_encrypted(&bytes) {
        told_records.unwrap_or_default()
    } else {
        super::format::verify(&bytes, u64::MAX)
            .map_err(|e| Error::caused_by("the server sent a bad backup", e))?
            .0
            .records
    };
    let partial = out.with_extension("partial");
    let io = |e: std::io::Error| Error::caused_by(out.display().to_string(), e);
    std::fs::write(&partial, &bytes).map_err(io)?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&partial, out).map_err(io)?;
    Ok(super::Written {
        path: out.to_path_buf(),
        records,
        bytes: bytes.len() as u64,
    })
}
