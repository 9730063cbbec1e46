//! The live view's control lease, shared by the process that grants it
//! (`corral-api`, `POST /live/takeover`) and the one that enforces it
//! (`corral-live`, which drops the keyboard and mouse of every viewer while
//! no lease is current). A small JSON file in corral's run directory
//! (`/run/corral/live-lease.json` by default), replaced whole with a rename
//! so a reader never sees half of one, mode 0600. No file, an unreadable
//! one, or one whose `expires_at_ms` has passed all mean the same: nobody
//! holds control, the live view is view-only. The reader compares the
//! expiry with its own clock at each input event, so a lease ends exactly
//! on time without any timer or writer.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The file's name in corral's run directory.
pub const FILE_NAME: &str = "live-lease.json";

/// Where the lease file is when no flag says otherwise:
/// `$CORRAL_RUN_DIR/live-lease.json`, `/run/corral` by default (where
/// x11vnc's password file and the control socket live).
pub fn default_path() -> PathBuf {
    let dir = std::env::var_os("CORRAL_RUN_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/corral"));
    dir.join(FILE_NAME)
}

/// A human's hold on the live view's keyboard and mouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds it, as given to `POST /live/takeover` (shown to agents).
    pub holder: String,
    /// The secret that renews and releases it.
    pub lease_id: String,
    /// When it was first taken (Unix milliseconds).
    pub taken_at_ms: u64,
    /// When it ends (Unix milliseconds), unless renewed.
    pub expires_at_ms: u64,
}

impl Lease {
    /// Whether the lease holds at `now_ms`.
    pub fn active(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }
}

/// The wall clock in Unix milliseconds (both processes run in the same
/// container, on the same clock).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The lease in `path`, or `None` when there is no file. A file that does
/// not parse is an error (the caller treats it as "nobody holds it").
pub fn read(path: &Path) -> Result<Option<Lease>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: not a lease: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces the lease file whole: written aside (0600), synced, renamed.
pub fn write(path: &Path, lease: &Lease) -> Result<(), String> {
    let text = serde_json::to_vec(lease).map_err(|e| e.to_string())?;
    crate::private::write(path, &text, crate::private::Place::Replace).map(|_| ())
}

/// Removes the lease file (nobody holds control). No file is fine.
pub fn remove(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn written_whole_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("lease-test-{}", std::process::id()));
        let path = dir.join("sub").join(FILE_NAME);
        assert_eq!(read(&path), Ok(None));
        let lease = Lease {
            holder: "alice".into(),
            lease_id: "L1".into(),
            taken_at_ms: 1000,
            expires_at_ms: 2000,
        };
        write(&path, &lease).unwrap();
        assert_eq!(read(&path), Ok(Some(lease.clone())));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(lease.active(1999) && !lease.active(2000));
        // Nothing left aside.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        std::fs::write(&path, b"{garbage").unwrap();
        assert!(read(&path).is_err());
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert_eq!(read(&path), Ok(None));
        let _ = std::fs::remove_dir_all(dir);
    }
}
