//! Small private files written whole: token files (`args.rs`), x11vnc's
//! password file (corral-live) and the live view's lease
//! ([`crate::live_lease`]). Each is written aside with mode 0600, synced,
//! then put in place in one step, so a reader never sees half of one and
//! nobody else can read it even for a moment; the directory is made 0700 if
//! missing. The same writer ([`put`], any mode) serves corral-api's kept
//! state and corral-snapshot's files: one implementation, so a fix (a mode,
//! a sync) reaches them all.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
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

/// Puts `bytes` at `path` whole: written aside in the same directory (a
/// temporary `PREFIX….tmp`, mode `mode` from creation), synced, put in place
/// as `place` says, then the directory synced — so a reader, a SIGKILL or a
/// power cut sees the old file or the new, never half of one. `Ok(false)`
/// when `IfMissing` found a file, which is left alone. The directory must
/// exist. Every file corral's programs write whole goes through here: these
/// small private ones, corral-api's kept state, corral-snapshot's files.
pub fn put(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    temp_prefix: &str,
    place: Place,
) -> std::io::Result<bool> {
    let dir = parent_of(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(temp_prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    match place {
        Place::Replace => tmp.persist(path).map(drop).map_err(|e| e.error)?,
        // A hard link: never replaces. The temporary file goes either way.
        Place::IfMissing => match tmp.persist_noclobber(path) {
            Ok(_) => {}
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e.error),
        },
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(true)
}

/// `path`'s directory (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `bytes` to `path` (mode 0600; its directory made 0700 if
/// missing), placed as `place` says. `Ok(true)` when the file was written,
/// `Ok(false)` when `IfMissing` found one.
pub fn write(path: &Path, bytes: &[u8], place: Place) -> Result<bool, String> {
    let dir = parent_of(path);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    put(path, bytes, 0o600, ".corral-", place)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
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
