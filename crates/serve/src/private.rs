//! Small private files written whole: token files (`args.rs`), x11vnc's
//! password file (corral-live) and the live view's lease
//! ([`crate::live_lease`]). Each is written aside with mode 0600, synced,
//! then put in place in one step, so a reader never sees half of one and
//! nobody else can read it even for a moment; the directory is made 0700 if
//! missing. One implementation, so a fix (a mode, a sync) reaches them all.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// How the file is put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Replace whatever is there (rename).
    Replace,
    /// Only if nothing is there yet (hard link): `Ok(false)` when a file
    /// already was, which is then left alone.
    IfMissing,
}

/// `n` bytes from the kernel's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut out))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(out)
}

/// Writes `bytes` to `path` (mode 0600), placed as `place` says. `Ok(true)`
/// when the file was written, `Ok(false)` when `IfMissing` found one.
pub fn write(path: &Path, bytes: &[u8], place: Place) -> Result<bool, String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    let placed = written.and_then(|()| match place {
        Place::Replace => std::fs::rename(&tmp, path).map(|()| true),
        Place::IfMissing => match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        },
    });
    // After a rename there is nothing left to remove; otherwise the temp
    // file goes whatever happened.
    let _ = std::fs::remove_file(&tmp);
    placed.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_or_keeps_with_0600_and_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/secret");
        assert_eq!(write(&p, b"one", Place::Replace), Ok(true));
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(p.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert_eq!(write(&p, b"two", Place::IfMissing), Ok(false));
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(write(&p, b"three", Place::Replace), Ok(true));
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        let left: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("secret")]);
        assert_ne!(random_bytes::<16>().unwrap(), [0u8; 16]);
    }
}
