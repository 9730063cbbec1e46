//! Who may type: the live view's control lease, read from the file
//! corral-api writes (`corral_serve::live_lease`). The file is looked at
//! (one `stat`) at each input message and re-read only when it changed
//! (inode, size or mtime: corral-api replaces it with a rename), and the
//! lease's expiry is compared with the clock each time, so control ends
//! exactly when the lease does, with no timer. No file, or a file that
//! does not parse, means nobody holds control: view-only.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;

use corral_serve::live_lease::{self, Lease};

/// What identifies one version of the file.
type Stamp = (u64, u64, i64, i64);

pub struct LeaseFile {
    path: PathBuf,
    cached: Mutex<Option<(Stamp, Option<Lease>)>>,
}

impl LeaseFile {
    pub fn new(path: PathBuf) -> LeaseFile {
        LeaseFile {
            path,
            cached: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The lease as the file says now (cached while the file is unchanged).
    pub fn current(&self) -> Option<Lease> {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return None;
        };
        let stamp = (meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec());
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, lease)) = cached.as_ref() {
            if *s == stamp {
                return lease.clone();
            }
        }
        let lease = match live_lease::read(&self.path) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("{e}: nobody holds control");
                None
            }
        };
        *cached = Some((stamp, lease.clone()));
        lease
    }

    /// Whether a human holds control at this instant.
    pub fn held(&self) -> bool {
        self.current()
            .is_some_and(|l| l.active(live_lease::now_ms()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_file_and_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live-lease.json");
        let file = LeaseFile::new(path.clone());
        assert!(!file.held(), "no file: view-only");
        let mut lease = Lease {
            holder: "alice".into(),
            lease_id: "a".into(),
            taken_at_ms: 0,
            expires_at_ms: live_lease::now_ms() + 60_000,
        };
        live_lease::write(&path, &lease).unwrap();
        assert!(file.held());
        lease.expires_at_ms = live_lease::now_ms() - 1;
        live_lease::write(&path, &lease).unwrap();
        assert!(!file.held(), "a rewrite is seen at once (new inode)");
        std::fs::write(&path, b"not json").unwrap();
        assert!(!file.held());
        live_lease::remove(&path).unwrap();
        assert!(!file.held());
    }
}
