//! Writing the snapshot file so that a reader never sees half of one and a
//! crash never leaves one: a temporary file in the same directory, fsync,
//! rename over the old file, fsync the directory. Mode 0600 from creation:
//! the file holds session cookies.

use std::path::Path;

use corral_serve::private::{put, Place};

/// Replaces `path` with `bytes`, atomically (its directory made if missing;
/// corral-serve's one whole-file writer).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    remove_stale_temps(dir);
    put(path, bytes, 0o600, ".snapshot-", Place::Replace).map(drop)
}

/// Temporary files older than this are leftovers of a killed writer.
const STALE: std::time::Duration = std::time::Duration::from_secs(120);

/// A writer SIGKILLed between creating its temporary file and renaming it
/// leaves the file behind (it never replaces the snapshot): remove such
/// leftovers, but only old ones, never a write in progress.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with(".snapshot-") && name.ends_with(".tmp");
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE);
        if ours && old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let leftovers = std::fs::read_dir(dir.path().join("sub")).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left");
    }

    #[test]
    fn old_leftovers_of_a_killed_writer_go_recent_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(".snapshot-old.tmp");
        let fresh = dir.path().join(".snapshot-fresh.tmp");
        std::fs::write(&old, b"partial").unwrap();
        std::fs::write(&fresh, b"in progress").unwrap();
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        write_atomic(&dir.path().join("state.json"), b"{}").unwrap();
        assert!(!old.exists());
        assert!(fresh.exists());
    }
}
