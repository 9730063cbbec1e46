//! Kernel-enforced confinement. Every lookup starts from an `O_PATH`
//! descriptor of the root and goes through `openat2(2)` with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so a symlink (or a racing
//! rename) that would lead outside the root fails with `EXDEV` instead of
//! being followed. Operations on a final component (mkdir, unlink, rename,
//! lstat) use the `*at` calls on a confined parent descriptor with a
//! single-component name, which the kernel never resolves through a
//! symlink.
//!
//! With root "/" (no `--fs-root`) `RESOLVE_IN_ROOT` is used instead: for
//! the real root it is exactly ordinary resolution, whereas
//! `RESOLVE_BENEATH` would refuse every absolute symlink
//! (`/usr/bin/cc -> /etc/alternatives/cc`). Under any other root an
//! absolute symlink is refused (403) even when it happens to point inside.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use hyper::StatusCode;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

use super::path::RelPath;
use crate::http::ApiError;

/// An open root directory and the resolve flags that confine lookups to it.
pub struct Root {
    fd: OwnedFd,
    resolve: ResolveFlag,
    /// Where this root sits under the API root, for messages ("/" for the
    /// API root itself; a directory for `sub`).
    base: RelPath,
}

impl Root {
    /// Opens `root` (one syscall per request: a replaced root directory is
    /// picked up, and nothing is cached between requests).
    pub fn new(root: &Path) -> Result<Root, ApiError> {
        let fd = nix::fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            ApiError::internal(format!("cannot open the fs root {}: {e}", root.display()))
        })?;
        let base = if root == Path::new("/") {
            ResolveFlag::RESOLVE_IN_ROOT
        } else {
            ResolveFlag::RESOLVE_BENEATH
        };
        Ok(Root {
            fd,
            resolve: base | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            base: RelPath::root(),
        })
    }

    /// The directory `p` as a root of its own, always with
    /// `RESOLVE_BENEATH`: uploads and archives stay inside their target
    /// directory, not merely inside the API root. `no_symlinks` adds
    /// `RESOLVE_NO_SYMLINKS` (for trees where no symlink may be crossed).
    pub fn sub(&self, p: &RelPath, no_symlinks: bool) -> Result<Root, ApiError> {
        let fd = self.dir(p)?;
        let mut resolve = ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS;
        if no_symlinks {
            resolve |= ResolveFlag::RESOLVE_NO_SYMLINKS;
        }
        Ok(Root {
            fd,
            resolve,
            base: self.base.join(p),
        })
    }

    /// `p` as the client knows it (relative to the API root).
    pub fn show(&self, p: &RelPath) -> String {
        self.base.join(p).display()
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// `openat2` of `p` beneath the root. `mode` only with `O_CREAT`.
    pub fn open_raw(&self, p: &RelPath, flags: OFlag, mode: Mode) -> nix::Result<OwnedFd> {
        openat2(
            &self.fd,
            &p.rel(),
            flags | OFlag::O_CLOEXEC,
            mode,
            self.resolve,
        )
    }

    /// `open_raw`, with errors as API errors naming `p`.
    pub fn open(&self, p: &RelPath, flags: OFlag) -> Result<OwnedFd, ApiError> {
        self.open_raw(p, flags, Mode::empty())
            .map_err(|e| errno_err(&self.show(p), e))
    }

    /// An `O_PATH` descriptor of the directory `p`, usable as a `dirfd`.
    pub fn dir(&self, p: &RelPath) -> Result<OwnedFd, ApiError> {
        self.open(p, OFlag::O_PATH | OFlag::O_DIRECTORY)
    }

    /// The confined parent directory of `p` and its final component, for
    /// the `*at` calls. The root itself has no parent: 403 with `what`
    /// (e.g. "delete") in the message.
    pub fn parent(&self, p: &RelPath, what: &str) -> Result<(OwnedFd, String), ApiError> {
        let (Some(parent), Some(name)) = (p.parent(), p.name()) else {
            return Err(ApiError::forbidden(format!(
                "cannot {what} the root itself"
            )));
        };
        Ok((self.dir(&parent)?, name.to_string()))
    }

    /// `lstat` of `p` (the final component is not followed). `None` when
    /// it does not exist.
    pub fn lstat(&self, p: &RelPath) -> Result<Option<FileStat>, ApiError> {
        if p.is_root() {
            return nix::sys::stat::fstat(&self.fd)
                .map(Some)
                .map_err(|e| errno_err(&self.show(p), e));
        }
        let (dir, name) = self.parent(p, "stat")?;
        lstat_at(&dir, name.as_str()).map_err(|e| errno_err(&self.show(p), e))
    }

    /// `mkdir -p`: creates each missing component of `p` with `mode`
    /// (exactly, whatever the umask) and returns the ones it created, so
    /// a caller that fails later can remove them again. An existing
    /// non-directory component is 409.
    pub fn mkdir_all(&self, p: &RelPath, mode: u32) -> Result<Vec<RelPath>, ApiError> {
        let mut created = Vec::new();
        let mut cur = self.dir(&RelPath::root())?;
        for (i, name) in p.components().iter().enumerate() {
            let prefix = p.prefix(i + 1);
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
            match self.open_raw(&prefix, flags, Mode::empty()) {
                Ok(fd) => cur = fd,
                Err(Errno::ENOENT) => {
                    match nix::sys::stat::mkdirat(
                        &cur,
                        name.as_str(),
                        Mode::from_bits_truncate(0o700),
                    ) {
                        Ok(()) => {
                            created.push(prefix.clone());
                            // The umask must not decide the mode.
                            let fd = self.open(&prefix, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                            nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))
                                .map_err(|e| errno_err(&self.show(&prefix), e))?;
                        }
                        // Created meanwhile by someone else: fine.
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(errno_err(&self.show(&prefix), e)),
                    }
                    cur = self.dir(&prefix)?;
                }
                Err(Errno::ENOTDIR) => {
                    return Err(ApiError::conflict(format!(
                        "{} exists and is not a directory",
                        self.show(&prefix)
                    )))
                }
                Err(e) => return Err(errno_err(&self.show(&prefix), e)),
            }
        }
        Ok(created)
    }

    /// Best-effort removal of directories `mkdir_all` created (deepest
    /// first); only empty ones go, so nothing anyone else put there is lost.
    pub fn rmdir_created(&self, created: &[RelPath]) {
        for p in created.iter().rev() {
            if let Ok((dir, name)) = self.parent(p, "remove") {
                let _ = nix::unistd::unlinkat(
                    &dir,
                    name.as_str(),
                    nix::unistd::UnlinkatFlags::RemoveDir,
                );
            }
        }
    }
}

/// `openat2(2)`, retried on `EAGAIN` (the kernel's answer when a rename
/// raced a `..` lookup under `RESOLVE_BENEATH`) and `EINTR`.
pub fn openat2<Fd: AsFd>(
    dir: Fd,
    path: &str,
    flags: OFlag,
    mode: Mode,
    resolve: ResolveFlag,
) -> nix::Result<OwnedFd> {
    let mut how = OpenHow::new().flags(flags).resolve(resolve);
    if flags.intersects(OFlag::O_CREAT | OFlag::O_TMPFILE) {
        how = how.mode(mode);
    }
    let mut tries = 0;
    loop {
        match nix::fcntl::openat2(dir.as_fd(), path, how) {
            Err(Errno::EAGAIN | Errno::EINTR) if tries < 32 => tries += 1,
            r => return r,
        }
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`, `None` for ENOENT.
pub fn lstat_at<Fd: AsFd, P: ?Sized + nix::NixPath>(
    dir: Fd,
    name: &P,
) -> nix::Result<Option<FileStat>> {
    match nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The file type bits of a stat.
pub fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Maps an errno from a lookup or `*at` call on `what` to the status a
/// client can act on. `EXDEV` here only ever comes from `openat2` (callers
/// of `renameat` map its cross-device `EXDEV` themselves).
pub fn errno_err(what: &str, e: Errno) -> ApiError {
    let detail = format!("{what}: {}", e.desc());
    match e {
        Errno::EXDEV => ApiError::forbidden(format!(
            "{what} escapes the root (through a symlink or an absolute link)"
        )),
        Errno::ENOENT => ApiError::not_found(detail),
        Errno::EACCES | Errno::EPERM | Errno::EROFS => ApiError::forbidden(detail),
        Errno::EEXIST | Errno::ENOTEMPTY | Errno::EBUSY | Errno::ETXTBSY => {
            ApiError::conflict(detail)
        }
        Errno::ELOOP => ApiError::bad_request(format!(
            "{what}: too many levels of symbolic links, or a /proc magic link"
        )),
        Errno::ENOTDIR | Errno::EISDIR | Errno::EINVAL | Errno::ENAMETOOLONG => {
            ApiError::bad_request(detail)
        }
        Errno::EFBIG => ApiError::too_large(detail),
        Errno::ENOSPC | Errno::EDQUOT => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient storage",
            detail,
        ),
        _ => ApiError::internal(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, Root) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f"), b"in").unwrap();
        std::fs::write(t.path().join("secret"), b"out").unwrap();
        symlink("../secret", root.join("escape")).unwrap();
        symlink(t.path().join("secret"), root.join("abs")).unwrap();
        symlink("sub/f", root.join("inside")).unwrap();
        symlink("sub", root.join("subdir")).unwrap();
        symlink("/proc/self/root", root.join("magic")).unwrap();
        let r = Root::new(&root).unwrap();
        (t, r)
    }

    fn read(r: &Root, p: &str) -> Result<String, ApiError> {
        let fd = r.open(&RelPath::parse(p)?, OFlag::O_RDONLY)?;
        Ok(std::io::read_to_string(std::fs::File::from(fd)).unwrap())
    }

    #[test]
    fn fs_confine_symlinks() {
        let (_t, r) = setup();
        assert_eq!(read(&r, "/sub/f").unwrap(), "in");
        assert_eq!(read(&r, "inside").unwrap(), "in");
        assert_eq!(read(&r, "/subdir/f").unwrap(), "in");
        for p in ["/escape", "abs", "/magic/etc/hostname"] {
            let e = read(&r, p).unwrap_err();
            assert_eq!(e.status, StatusCode::FORBIDDEN, "{p}: {}", e.detail);
            assert!(e.detail.contains("escapes the root"), "{}", e.detail);
        }
        // ".." above the root never reaches the kernel.
        assert_eq!(
            read(&r, "/sub/../../secret").unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(read(&r, "/nope").unwrap_err().status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn fs_confine_real_root_follows_absolute_links() {
        // With root "/" (no --fs-root) absolute symlinks work as usual.
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), b"abs").unwrap();
        symlink(t.path().join("f"), t.path().join("l")).unwrap();
        let r = Root::new(Path::new("/")).unwrap();
        let p = t.path().join("l");
        assert_eq!(read(&r, p.to_str().unwrap()).unwrap(), "abs");
        assert!(read(&r, "/proc/self/status").unwrap().contains("Pid:"));
        // Magic links stay refused.
        assert_eq!(
            read(&r, "/proc/self/root/etc/hostname").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn fs_confine_parent_and_mkdir_all() {
        let (t, r) = setup();
        // A parent through an escaping symlink is refused.
        let e = r
            .parent(&RelPath::parse("/escape/x").unwrap(), "write")
            .unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let e = r.parent(&RelPath::root(), "delete").unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let created = r
            .mkdir_all(&RelPath::parse("/a/b/c").unwrap(), 0o755)
            .unwrap();
        assert_eq!(created.len(), 3);
        assert!(t.path().join("root/a/b/c").is_dir());
        let e = r
            .mkdir_all(&RelPath::parse("/sub/f/x").unwrap(), 0o755)
            .unwrap_err();
        assert_eq!(e.status, StatusCode::CONFLICT);
        r.rmdir_created(&created);
        assert!(!t.path().join("root/a").exists());
        // mkdir -p through an escaping link must not create outside.
        let e = r
            .mkdir_all(&RelPath::parse("/escape/x").unwrap(), 0o755)
            .unwrap_err();
        assert_ne!(e.status, StatusCode::OK);
        assert!(!t.path().join("x").exists());
    }
}
