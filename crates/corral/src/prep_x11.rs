//! `corral prep-x11 :N`: make an X display startable after an unclean stop.
//!
//! Xvfb marks display `:N` taken with `/tmp/.XN-lock` (the server's pid, as
//! text) and listens on `/tmp/.X11-unix/XN` (and, on Linux, the abstract
//! socket of the same name). A SIGKILL of the container or of corral's PID
//! namespace (an OOM kill of PID 1, a power cut) leaves both behind. On the
//! next start Xvfb reads the pid in the lock and asks the kernel whether it
//! is alive — but pids restart from 1 in the new namespace, so the stale pid
//! (6, say) usually names some other live program there, and Xvfb exits with
//! "Server is already active for display N" until its restarts run out.
//!
//! The pid cannot tell a live server from a stale lock; the socket can, the
//! same way `prep-profile` tells a live Chromium by its singleton socket: a
//! live X server accepts connections, a dead one's socket file refuses them.
//! So: if either socket (file or abstract) accepts, leave everything alone
//! and fail; otherwise remove the lock, Xvfb's half-made temporary lock
//! (`/tmp/.tXN-lock`, left by a kill during its start) and the socket file.
//!
//! A server that has written its lock but is not listening yet (the few
//! milliseconds of its start) looks stale. Under corral the only Xvfb for
//! the display is the one this pre_start precedes, so that cannot happen
//! there; a second Xvfb started by hand on the same display at that moment
//! could lose its lock.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No lock and no socket: nothing to do.
    Clean,
    /// Stale files were removed (their paths).
    Cleared(Vec<PathBuf>),
}

#[derive(Debug, thiserror::Error)]
pub enum PrepError {
    #[error("{0:?} is not an X display of the form :N or :N.S")]
    BadDisplay(String),
    #[error(":{display}: an X server answers on {socket}; not touching its lock")]
    InUse { display: u32, socket: String },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

/// `:99` or `:99.0` → 99.
pub fn display_number(display: &str) -> Result<u32, PrepError> {
    display
        .strip_prefix(':')
        .and_then(|rest| rest.split('.').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| PrepError::BadDisplay(display.to_string()))
}

/// The files an X server keeps for display `n` under `tmp` (normally `/tmp`).
pub struct DisplayFiles {
    pub lock: PathBuf,
    pub temp_lock: PathBuf,
    pub socket: PathBuf,
}

impl DisplayFiles {
    pub fn new(tmp: &Path, n: u32) -> DisplayFiles {
        DisplayFiles {
            lock: tmp.join(format!(".X{n}-lock")),
            temp_lock: tmp.join(format!(".tX{n}-lock")),
            socket: tmp.join(".X11-unix").join(format!("X{n}")),
        }
    }
}

/// Whether an X server accepts connections on the socket file or on the
/// abstract socket of the same name (Xvfb listens on both on Linux; a server
/// in another mount namespace may only be reachable on the abstract one).
fn answers(socket: &Path) -> bool {
    if UnixStream::connect(socket).is_ok() {
        return true;
    }
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(socket.as_os_str().as_bytes())
        .and_then(|addr| UnixStream::connect_addr(&addr))
        .is_ok()
}

/// Clears display `display`'s stale lock and socket under `tmp` unless an X
/// server answers on it.
pub fn prep_x11(display: &str, tmp: &Path) -> Result<Outcome, PrepError> {
    let n = display_number(display)?;
    let files = DisplayFiles::new(tmp, n);
    if answers(&files.socket) {
        return Err(PrepError::InUse {
            display: n,
            socket: files.socket.display().to_string(),
        });
    }
    let mut removed = Vec::new();
    for path in [&files.lock, &files.temp_lock, &files.socket] {
        match std::fs::remove_file(path) {
            Ok(()) => removed.push(path.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(PrepError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        }
    }
    Ok(if removed.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Cleared(removed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A display's files as an unclean stop leaves them: a lock naming a
    /// live pid (our own, as pid 6 of a new namespace would be) and a socket
    /// file nobody listens on.
    fn stale(tmp: &Path, n: u32) -> DisplayFiles {
        let f = DisplayFiles::new(tmp, n);
        std::fs::create_dir_all(f.socket.parent().unwrap()).unwrap();
        std::fs::write(&f.lock, format!("{:>10}\n", std::process::id())).unwrap();
        std::fs::write(&f.temp_lock, "").unwrap();
        drop(UnixListener::bind(&f.socket).unwrap()); // the file stays, refusing
        f
    }

    #[test]
    fn display_numbers() {
        assert_eq!(display_number(":99").unwrap(), 99);
        assert_eq!(display_number(":0.0").unwrap(), 0);
        assert!(display_number("99").is_err());
        assert!(display_number(":x").is_err());
    }

    #[test]
    fn clears_a_stale_lock_that_names_a_live_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let f = stale(tmp.path(), 4242);
        let out = prep_x11(":4242", tmp.path()).unwrap();
        assert_eq!(
            out,
            Outcome::Cleared(vec![f.lock.clone(), f.temp_lock.clone(), f.socket.clone()])
        );
        for p in [&f.lock, &f.temp_lock, &f.socket] {
            assert!(
                std::fs::symlink_metadata(p).is_err(),
                "{} left",
                p.display()
            );
        }
    }

    #[test]
    fn leaves_a_live_server_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let f = stale(tmp.path(), 4243);
        std::fs::remove_file(&f.socket).unwrap();
        let _live = UnixListener::bind(&f.socket).unwrap();
        assert!(matches!(
            prep_x11(":4243", tmp.path()),
            Err(PrepError::InUse { display: 4243, .. })
        ));
        assert!(f.lock.exists() && f.socket.exists());
    }

    #[test]
    fn nothing_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(prep_x11(":4244", tmp.path()).unwrap(), Outcome::Clean);
    }
}
