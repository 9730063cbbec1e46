//! Files corral-api keeps for itself (the display size, Chromium's kept
//! flags, each recording's metadata and parameters), written whole: to a
//! temporary file beside the target, synced, renamed over it, and the
//! directory synced, so a SIGKILL or a power cut leaves the old content or
//! the new, never half a file (`corral_serve::private::put`, which the
//! other programs' whole-file writes use too).

use std::path::Path;

use corral_serve::private::{put, Place};

/// Replaces `path` with `bytes`, mode `mode` (the directory must exist):
/// corral-serve's one whole-file writer.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    put(path, bytes, mode, ".corral-api-", Place::Replace).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_with_the_mode_and_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        write(&p, b"one", 0o644).unwrap();
        write(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
