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
use crate::store::{Store, TreeSnapshot};
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
    let mut trees = store.snapshot()?;
    let records = trees.iter().map(|(_, r)| r.len() as u64).sum();
    trees.extend(tls_files(store.dir())?);
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

/// The backup's entry for the self-signed TLS pair the server made in `data_dir/tls`: a
/// restored server keeps its certificate, so the fingerprint clients pinned stays true. (A
/// configured `tls_cert`/`tls_key` lives outside the data directory, with its own renewal.)
pub const TLS_TREE: &str = "tls-files";
const TLS_FILES: [&str; 2] = ["self-signed.crt", "self-signed.key"];

/// The self-signed pair as backup records, when both files exist.
fn tls_files(data_dir: &Path) -> Result<Option<TreeSnapshot>> {
    let dir = data_dir.join("tls");
    let mut records = Vec::new();
    for name in TLS_FILES {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => records.push((name.as_bytes().into(), bytes.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::caused_by(path.display().to_string(), e)),
        }
    }
    Ok(Some((TLS_TREE, records)))
}

/// Writes the pair back into `data_dir/tls`, private to the server's user. Only the two
/// known names: a backup never chooses a path.
fn restore_tls_files(data_dir: &Path, records: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = data_dir.join("tls");
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |e: std::io::Error| Error::caused_by(path, e)
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    for (name, bytes) in records {
        let Some(name) = TLS_FILES.iter().find(|known| known.as_bytes() == name) else {
            return Err(Error::invalid(
                "backup_refused",
                "the backup names a TLS file proxyfleet does not make",
            ));
        };
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        std::io::Write::write_all(&mut file, &bytes).map_err(io(&path))?;
        file.sync_all().map_err(io(&path))?;
    }
    Ok(())
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
        let loaded = if tree == TLS_TREE {
            restore_tls_files(data_dir, records)
        } else {
            store.load(&tree, records)
        };
        loaded.map_err(|e| {
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
