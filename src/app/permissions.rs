//! Secrets at rest: the store holds the config signing key, the rendezvous secret, admin
//! TOTP secrets and invitation codes in clear, and every backup holds the same. So the data,
//! backup and TLS directories are 0700 and every file in them 0600, whatever the umask: the
//! process's umask is set to 077 before anything is created, and a start on a directory with
//! looser modes (an older release made 0755 and 0644) tightens them and says so.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Files and directories this process creates from now on are private to its user.
pub fn private_by_default() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Sets every directory under `root` (itself included) to 0700 and every file to 0600;
/// returns the paths that were looser. A missing `root` is fine.
pub fn tighten(root: &Path) -> Result<Vec<PathBuf>> {
    let mut loose = Vec::new();
    if root.exists() {
        visit(root, &mut loose)?;
    }
    Ok(loose)
}

fn visit(path: &Path, loose: &mut Vec<PathBuf>) -> Result<()> {
    let io = |e: std::io::Error| Error::caused_by(path.display().to_string(), e);
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    if meta.file_type().is_symlink() {
        return Ok(()); // not followed: whatever it points at is not ours to change
    }
    let wanted = if meta.is_dir() { 0o700 } else { 0o600 };
    let mode = meta.permissions().mode() & 0o777;
    if mode & !wanted != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & wanted))
            .map_err(io)?;
        loose.push(path.to_path_buf());
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io)? {
            visit(&entry.map_err(io)?.path(), loose)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_modes_are_tightened_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("tls")).unwrap();
        std::fs::write(root.join("tls/key.pem"), "secret").unwrap();
        std::fs::write(root.join("db"), "records").unwrap();
        let set = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
        set(&root, 0o755).unwrap();
        set(&root.join("tls"), 0o750).unwrap();
        set(&root.join("db"), 0o644).unwrap();
        set(&root.join("tls/key.pem"), 0o600).unwrap();

        let loose = tighten(&root).unwrap();
        assert_eq!(loose.len(), 3, "{loose:?}");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("tls")), 0o700);
        assert_eq!(mode(&root.join("db")), 0o600);
        assert!(tighten(&root).unwrap().is_empty());
        assert!(tighten(&dir.path().join("absent")).unwrap().is_empty());
    }
}
