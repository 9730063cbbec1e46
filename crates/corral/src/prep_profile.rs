//! `corral prep-profile DIR`: make a persistent Chromium profile startable
//! after a container restart.
//!
//! Chromium marks a profile in use with `SingletonLock` (a symlink to
//! `<hostname>-<pid>`), `SingletonSocket` and `SingletonCookie`. A new
//! container has a new hostname and the old pid is dead, so Chromium sees a
//! profile "in use on another computer" and exits — the seeds' profile-lock
//! failure. The locks may only be removed when no Chromium holds the
//! profile, and Chromium's own test for that is the singleton socket: a live
//! browser accepts connections on it. So: if the socket accepts, leave
//! everything alone and fail; otherwise remove the three files.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;

const LOCKS: [&str; 3] = ["SingletonLock", "SingletonSocket", "SingletonCookie"];

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No lock files: nothing to do.
    Clean,
    /// Stale locks were removed (their names).
    Cleared(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum PrepError {
    #[error("{dir}: a running Chromium holds this profile (its SingletonSocket answers); not touching it")]
    InUse { dir: String },
    #[error("{dir}: {source}")]
    Io { dir: String, source: io::Error },
}

/// Clears stale Singleton files in `dir` unless a live Chromium holds it.
pub fn prep_profile(dir: &Path) -> Result<Outcome, PrepError> {
    let io_err = |source| PrepError::Io {
        dir: dir.display().to_string(),
        source,
    };
    if !dir.exists() {
        // A first start: Chromium creates the profile.
        return Ok(Outcome::Clean);
    }
    let present: Vec<&str> = LOCKS
        .iter()
        .copied()
        .filter(|name| std::fs::symlink_metadata(dir.join(name)).is_ok())
        .collect();
    if present.is_empty() {
        return Ok(Outcome::Clean);
    }
    // Connecting follows the SingletonSocket symlink to the real socket in
    // /tmp; only a live browser is listening there.
    if UnixStream::connect(dir.join("SingletonSocket")).is_ok() {
        return Err(PrepError::InUse {
            dir: dir.display().to_string(),
        });
    }
    let mut removed = Vec::new();
    for name in present {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => removed.push(name.to_string()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(Outcome::Cleared(removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::os::unix::net::UnixListener;

    #[test]
    fn clears_stale_locks_from_another_host() {
        let dir = tempfile::tempdir().unwrap();
        symlink("old-host-4242", dir.path().join("SingletonLock")).unwrap();
        symlink(
            "/tmp/.gone/SingletonSocket",
            dir.path().join("SingletonSocket"),
        )
        .unwrap();
        symlink("123456789", dir.path().join("SingletonCookie")).unwrap();
        let out = prep_profile(dir.path()).unwrap();
        assert_eq!(
            out,
            Outcome::Cleared(vec![
                "SingletonLock".into(),
                "SingletonSocket".into(),
                "SingletonCookie".into()
            ])
        );
        assert!(std::fs::symlink_metadata(dir.path().join("SingletonLock")).is_err());
    }

    #[test]
    fn leaves_a_live_profile_alone() {
        let dir = tempfile::tempdir().unwrap();
        let sock_dir = tempfile::tempdir().unwrap();
        let sock = sock_dir.path().join("SingletonSocket");
        let _live = UnixListener::bind(&sock).unwrap();
        symlink(&sock, dir.path().join("SingletonSocket")).unwrap();
        symlink("this-host-1", dir.path().join("SingletonLock")).unwrap();
        assert!(matches!(
            prep_profile(dir.path()),
            Err(PrepError::InUse { .. })
        ));
        assert!(std::fs::symlink_metadata(dir.path().join("SingletonLock")).is_ok());
    }

    #[test]
    fn nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(prep_profile(dir.path()).unwrap(), Outcome::Clean);
        assert_eq!(
            prep_profile(&dir.path().join("new")).unwrap(),
            Outcome::Clean
        );
    }
}
