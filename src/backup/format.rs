//! The backup file: a magic line, a JSON header line, the records gzip-compressed, and the
//! SHA-256 of everything before it as the last 32 bytes. A file that was cut short, altered or
//! written by a newer proxyfleet is refused before anything is restored.
//!
//! Records, inside the gzip stream: per tree `1, name length (u16 BE), name, count (u64 BE)`,
//! then `count` times `key length (u32 BE), key, value length (u32 BE), value`; `0` ends.

use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8] = b"PROXYFLEET-BACKUP\n";
/// The layout of the file itself (not of the store inside it).
pub const FILE_VERSION: u32 = 1;
const CHECKSUM_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub file_version: u32,
    /// The store's data format (see `store::format`): a newer one cannot be restored.
    pub data_format: u64,
    pub created_ms: u64,
    pub records: u64,
    /// The proxyfleet that wrote it.
    pub written_by: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackupError {
    #[error("not a proxyfleet backup (no PROXYFLEET-BACKUP header)")]
    NotABackup,
    #[error("the backup is corrupt or cut short: its SHA-256 checksum does not match")]
    Corrupt,
    #[error("the backup's layout is version {0}; this proxyfleet reads version {FILE_VERSION}")]
    NewerFile(u32),
    #[error(
        "the backup holds data format {found}, written by a newer proxyfleet ({by}); this one \
         reads up to format {supported}: upgrade proxyfleet first"
    )]
    NewerData {
        found: u64,
        supported: u64,
        by: String,
    },
    #[error("the backup is unreadable: {0}")]
    Unreadable(String),
}

/// A tree's records as raw bytes.
pub type TreeRecords<K, V> = (String, Vec<(K, V)>);

/// Hashes what passes through, so the checksum is computed while the file is written.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn len_u32(len: usize) -> std::io::Result<[u8; 4]> {
    u32::try_from(len)
        .map(u32::to_be_bytes)
        .map_err(|_| std::io::Error::other("a record over 4 GiB"))
}

/// Writes a whole backup to `out`.
pub fn write<W, K, V>(out: W, header: &Header, trees: &[(&str, Vec<(K, V)>)]) -> std::io::Result<W>
where
    W: Write,
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut hashing = Hashing {
        inner: out,
        hasher: Sha256::new(),
    };
    hashing.write_all(MAGIC)?;
    serde_json::to_writer(&mut hashing, header)?;
    hashing.write_all(b"\n")?;
    let mut gz = GzEncoder::new(hashing, Compression::fast());
    for (name, records) in trees {
        gz.write_all(&[1])?;
        let name_len = u16::try_from(name.len()).map_err(std::io::Error::other)?;
        gz.write_all(&name_len.to_be_bytes())?;
        gz.write_all(name.as_bytes())?;
        gz.write_all(&(records.len() as u64).to_be_bytes())?;
        for (key, value) in records {
            let (key, value) = (key.as_ref(), value.as_ref());
            gz.write_all(&len_u32(key.len())?)?;
            gz.write_all(key)?;
            gz.write_all(&len_u32(value.len())?)?;
            gz.write_all(value)?;
        }
    }
    gz.write_all(&[0])?;
    let hashing = gz.finish()?;
    let checksum = hashing.hasher.finalize();
    let mut out = hashing.inner;
    out.write_all(&checksum)?;
    out.flush()?;
    Ok(out)
}

/// Checks the file (magic, checksum, versions) without decompressing it.
pub fn verify(file: &[u8], supported_data_format: u64) -> Result<(Header, &[u8]), BackupError> {
    if !file.starts_with(MAGIC) {
        return Err(BackupError::NotABackup);
    }
    if file.len() < MAGIC.len() + CHECKSUM_LEN {
        return Err(BackupError::Corrupt);
    }
    let (content, checksum) = file.split_at(file.len() - CHECKSUM_LEN);
    if Sha256::digest(content).as_slice() != checksum {
        return Err(BackupError::Corrupt);
    }
    let rest = &content[MAGIC.len()..];
    let line_end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(BackupError::Corrupt)?;
    let header: Header = serde_json::from_slice(&rest[..line_end])
        .map_err(|e| BackupError::Unreadable(format!("header: {e}")))?;
    if header.file_version > FILE_VERSION {
        return Err(BackupError::NewerFile(header.file_version));
    }
    if header.data_format > supported_data_format {
        return Err(BackupError::NewerData {
            found: header.data_format,
            supported: supported_data_format,
            by: header.written_by,
        });
    }
    Ok((header, &rest[line_end + 1..]))
}

fn read_exact<R: Read>(reader: &mut R, len: usize) -> Result<Vec<u8>, BackupError> {
    let mut buf = vec![0u8; len];
    reader
        .read_exact(&mut buf)
        .map_err(|e| BackupError::Unreadable(e.to_string()))?;
    Ok(buf)
}

fn read_be<const N: usize, R: Read>(reader: &mut R) -> Result<[u8; N], BackupError> {
    let mut buf = [0u8; N];
    reader
        .read_exact(&mut buf)
        .map_err(|e| BackupError::Unreadable(e.to_string()))?;
    Ok(buf)
}

/// Decompresses a verified body, handing each tree's records to `on_tree`.
pub fn read_trees(
    body: &[u8],
    mut on_tree: impl FnMut(TreeRecords<Vec<u8>, Vec<u8>>) -> Result<(), String>,
) -> Result<u64, BackupError> {
    let mut gz = GzDecoder::new(body);
    let mut total = 0;
    loop {
        let [tag] = read_be::<1, _>(&mut gz)?;
        if tag == 0 {
            return Ok(total);
        }
        let name_len = u16::from_be_bytes(read_be(&mut gz)?) as usize;
        let name = String::from_utf8(read_exact(&mut gz, name_len)?)
            .map_err(|_| BackupError::Unreadable("a tree name is not UTF-8".into()))?;
        let count = u64::from_be_bytes(read_be(&mut gz)?);
        let mut records = Vec::new();
        for _ in 0..count {
            let key_len = u32::from_be_bytes(read_be(&mut gz)?) as usize;
            let key = read_exact(&mut gz, key_len)?;
            let value_len = u32::from_be_bytes(read_be(&mut gz)?) as usize;
            let value = read_exact(&mut gz, value_len)?;
            records.push((key, value));
        }
        total += count;
        on_tree((name, records)).map_err(BackupError::Unreadable)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(data_format: u64) -> Header {
        Header {
            file_version: FILE_VERSION,
            data_format,
            created_ms: 1,
            records: 3,
            written_by: "test".into(),
        }
    }

    fn sample() -> Vec<u8> {
        let trees = vec![
            (
                "users",
                vec![
                    (b"k1".to_vec(), b"v1".to_vec()),
                    (b"k2".to_vec(), vec![0u8; 70_000]),
                ],
            ),
            ("meta", vec![(b"format".to_vec(), b"1".to_vec())]),
            ("empty", vec![]),
        ];
        write(Vec::new(), &header(1), &trees).unwrap()
    }

    #[test]
    fn what_is_written_reads_back() {
        let file = sample();
        let (read_header, body) = verify(&file, 1).unwrap();
        assert_eq!(read_header, header(1));
        let mut trees = Vec::new();
        let total = read_trees(body, |tree| {
            trees.push(tree);
            Ok(())
        })
        .unwrap();
        assert_eq!(total, 3);
        assert_eq!(trees.len(), 3);
        assert_eq!(trees[0].0, "users");
        assert_eq!(trees[0].1[1].1.len(), 70_000);
        assert_eq!(trees[1].1, vec![(b"format".to_vec(), b"1".to_vec())]);
    }

    #[test]
    fn damaged_truncated_foreign_and_newer_files_are_refused() {
        let file = sample();
        let mut flipped = file.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 1;
        assert_eq!(verify(&flipped, 1).unwrap_err(), BackupError::Corrupt);
        assert_eq!(
            verify(&file[..file.len() - 5], 1).unwrap_err(),
            BackupError::Corrupt
        );
        assert_eq!(verify(b"hello", 1).unwrap_err(), BackupError::NotABackup);
        let newer = write(
            Vec::new(),
            &header(9),
            &[("meta", Vec::<(Vec<u8>, Vec<u8>)>::new())],
        )
        .unwrap();
        assert!(matches!(
            verify(&newer, 1).unwrap_err(),
            BackupError::NewerData {
                found: 9,
                supported: 1,
                ..
            }
        ));
    }
}
