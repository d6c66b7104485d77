//! Backups: a consistent snapshot of the whole store in one file (`format.rs`), taken online
//! (`proxyfleet backup`, the schedule, before a migration) and restored offline into an empty
//! directory (`proxyfleet restore`).

pub mod command;
pub mod encryption;
pub mod format;
pub mod schedule;

/// How many records the backup holds (an encrypted one cannot be read to count them).
pub const RECORDS_HEADER: &str = "x-backup-records";

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use age::x25519::Recipient;

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::store::format::DATA_FORMAT;
use crate::store::Store;
use format::{BackupError, Header, FILE_VERSION};

/// What a backup holds, for the operator.
#[derive(Debug, serde::Serialize)]
pub struct Written {
    pub path: PathBuf,
    pub records: u64,
    pub bytes: u64,
}

/// A snapshot of `store` in the backup format, written to `out` (encrypted to `recipient`
/// when one is given).
pub fn write_to<W: std::io::Write>(
    store: &Store,
    out: W,
    recipient: Option<&Recipient>,
) -> Result<(W, u64)> {
    let data_format = crate::store::format::read(store)?.unwrap_or(DATA_FORMAT);
    let trees = store.snapshot()?;
    let records = trees.iter().map(|(_, r)| r.len() as u64).sum();
    let header = Header {
        file_version: FILE_VERSION,
        data_format,
        created_ms: now_ms(),
        records,
        written_by: concat!("proxyfleet ", env!("CARGO_PKG_VERSION")).to_string(),
    };
    let out = encryption::write_through(out, recipient, |out| {
        format::write(out, &header, &trees).map(|_| ())
    })?;
    Ok((out, records))
}

/// Writes a backup file next to `path` and renames it into place once it is complete and on
/// disk, so a crash never leaves a file that looks like a finished backup.
pub fn write_file(store: &Store, path: &Path, recipient: Option<&Recipient>) -> Result<Written> {
    let io = |e: std::io::Error| Error::caused_by(path.display().to_string(), e);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let partial = path.with_extension("partial");
    let file = File::create(&partial).map_err(io)?;
    let (writer, records) = write_to(store, BufWriter::new(file), recipient)?;
    let file = writer.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    std::fs::rename(&partial, path).map_err(io)?;
    Ok(Written {
        path: path.to_path_buf(),
        records,
        bytes,
    })
}

/// Restores a backup file into `data_dir`, which must not hold a database yet; an encrypted
/// one needs the age identity file it was encrypted to.
pub fn restore(file: &Path, data_dir: &Path, identity: Option<&Path>) -> Result<Header> {
    let bytes = std::fs::read(file)
        .map_err(|e| Error::caused_by(format!("reading {}", file.display()), e))?;
    let bytes = match (encryption::is_encrypted(&bytes), identity) {
        (false, _) => bytes,
        (true, Some(identity)) => encryption::decrypt(&bytes, identity)?,
        (true, None) => {
            return Err(Error::invalid(
                "backup_encrypted",
                format!(
                    "{} is encrypted: pass --identity FILE (the age identity of backup_recipient)",
                    file.display()
                ),
            ))
        }
    };
    let (header, body) = format::verify(&bytes, DATA_FORMAT).map_err(refused)?;
    Store::refuse_occupied(data_dir)?;
    let store = Store::open(data_dir)?;
    let mut failure = None;
    format::read_trees(body, |(tree, records)| {
        store.load(&tree, records).map_err(|e| {
            failure = Some(e.to_string());
            e.to_string()
        })
    })
    .map_err(refused)?;
    if let Some(failure) = failure {
        return Err(Error::internal(failure));
    }
    store.flush_now()?;
    Ok(header)
}

fn refused(error: BackupError) -> Error {
    Error::invalid("backup_refused", error.to_string())
}
