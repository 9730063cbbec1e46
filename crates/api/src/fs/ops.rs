//! The small mutating operations — mkdir, delete, move, chmod — each a
//! `*at` call on a confined parent descriptor (see `confine`). Blocking:
//! callers run them in `spawn_blocking`.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, RenameFlags};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::UnlinkatFlags;

use super::confine::{errno_err, kind, lstat_at, Root};
use super::meta::mode;
use super::path::RelPath;
use crate::http::ApiError;

/// `create_directory`. Returns whether it was created (201) rather than
/// already there as a directory (200). An existing non-directory is 409;
/// a missing parent is 404 unless `parents`.
pub fn create_directory(root: &Root, p: &RelPath, m: u32, parents: bool) -> Result<bool, ApiError> {
    if p.is_root() {
        return Ok(false);
    }
    if parents {
        if let Some(parent) = p.parent() {
            root.mkdir_all(&parent, 0o755)?;
        }
    }
    let (dir, name) = root.parent(p, "create")?;
    match nix::sys::stat::mkdirat(&dir, name.as_str(), Mode::from_bits_truncate(0o700)) {
        Ok(()) => {
            // The umask must not decide the mode.
            let fd = open_dir_nofollow(&dir, &name).map_err(|e| errno_err(&p.display(), e))?;
            nix::sys::stat::fchmod(&fd, mode(m)).map_err(|e| errno_err(&p.display(), e))?;
            Ok(true)
        }
        Err(Errno::EEXIST) => match lstat_at(&dir, name.as_str()) {
            Ok(Some(st)) if kind(&st) == SFlag::S_IFDIR => Ok(false),
            _ => Err(ApiError::conflict(format!(
                "{p} exists and is not a directory"
            ))),
        },
        Err(e) => Err(errno_err(&p.display(), e)),
    }
}

/// `delete_file`: a file or symlink (the link itself, never its target),
/// or a directory — a non-empty one only with `recursive` (else 409).
/// The root itself is refused (403).
pub fn delete(root: &Root, p: &RelPath, recursive: bool) -> Result<(), ApiError> {
    let (dir, name) = root.parent(p, "delete")?;
    let st = lstat_at(&dir, name.as_str())
        .map_err(|e| errno_err(&p.display(), e))?
        .ok_or_else(|| ApiError::not_found(format!("{p}: no such file or directory")))?;
    if kind(&st) != SFlag::S_IFDIR {
        return nix::unistd::unlinkat(&dir, name.as_str(), UnlinkatFlags::NoRemoveDir)
            .map_err(|e| errno_err(&p.display(), e));
    }
    match nix::unistd::unlinkat(&dir, name.as_str(), UnlinkatFlags::RemoveDir) {
        Ok(()) => Ok(()),
        Err(Errno::ENOTEMPTY | Errno::EEXIST) if !recursive => Err(ApiError::conflict(format!(
            "{p} is a non-empty directory; pass \"recursive\": true"
        ))),
        Err(Errno::ENOTEMPTY | Errno::EEXIST) => {
            remove_tree(&dir, &name).map_err(|e| errno_err(&p.display(), e))
        }
        Err(e) => Err(errno_err(&p.display(), e)),
    }
}

/// Removes `name` in `dir` and everything below it, descending only
/// through descriptors opened with `O_NOFOLLOW`: a directory swapped for a
/// symlink mid-walk fails the walk instead of leading it elsewhere.
pub fn remove_tree<Fd: AsFd>(dir: Fd, name: &str) -> nix::Result<()> {
    let fd = open_dir_nofollow(&dir, name)?;
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut names = Vec::new();
    for ent in d.iter() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(ent.file_name().to_owned());
        }
    }
    for n in names {
        match nix::unistd::unlinkat(&d, n.as_c_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(Errno::EISDIR) => {
                // Non-UTF-8 names cannot recurse by &str; they are rare
                // enough in a browser container to report rather than handle.
                let s = n.to_str().map_err(|_| Errno::EILSEQ)?;
                remove_tree(&d, s)?;
            }
            Err(e) => return Err(e),
        }
    }
    drop(d);
    nix::unistd::unlinkat(&dir, name, UnlinkatFlags::RemoveDir)
}

/// `move`: `renameat2`, with `RENAME_NOREPLACE` unless `overwrite` so the
/// existence check cannot race. Neither side may be the root.
pub fn rename(root: &Root, from: &RelPath, to: &RelPath, overwrite: bool) -> Result<(), ApiError> {
    let (fdir, fname) = root.parent(from, "move")?;
    let (tdir, tname) = root.parent(to, "replace")?;
    if lstat_at(&fdir, fname.as_str())
        .map_err(|e| errno_err(&from.display(), e))?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "{from}: no such file or directory"
        )));
    }
    let flags = if overwrite {
        RenameFlags::empty()
    } else {
        RenameFlags::RENAME_NOREPLACE
    };
    match nix::fcntl::renameat2(&fdir, fname.as_str(), &tdir, tname.as_str(), flags) {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) => Err(ApiError::conflict(format!(
            "{to} exists; pass \"overwrite\": true to replace it"
        ))),
        Err(Errno::ENOTEMPTY) => Err(ApiError::conflict(format!(
            "{to} is a non-empty directory and cannot be replaced"
        ))),
        Err(Errno::EXDEV) => Err(ApiError::conflict(format!(
            "{from} and {to} are on different filesystems; copy instead"
        ))),
        Err(Errno::EINVAL) => Err(ApiError::bad_request(format!(
            "cannot move {from} into itself ({to})"
        ))),
        Err(e) => Err(errno_err(&format!("{from} -> {to}"), e)),
    }
}

/// `chmod`: follows a final symlink (beneath the root), like chmod(1).
/// The target is opened `O_PATH` — no read permission needed, no FIFO can
/// block — and changed through its `/proc/self/fd` link; without /proc,
/// through a read-only open.
pub fn chmod(root: &Root, p: &RelPath, m: u32) -> Result<FileStat, ApiError> {
    let fd = root.open(p, OFlag::O_PATH)?;
    let via_proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let r = nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        via_proc.as_str(),
        mode(m),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    );
    match r {
        Ok(()) => {}
        Err(Errno::ENOENT) => {
            let rd = root.open(p, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)?;
            nix::sys::stat::fchmod(&rd, mode(m)).map_err(|e| errno_err(&p.display(), e))?;
        }
        Err(e) => return Err(errno_err(&p.display(), e)),
    }
    nix::sys::stat::fstat(&fd).map_err(|e| errno_err(&p.display(), e))
}

/// A directory opened for reading without following a final symlink.
pub fn open_dir_nofollow<Fd: AsFd>(dir: Fd, name: &str) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn p(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    #[test]
    fn fs_ops_mkdir_delete_move_chmod() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("root");
        std::fs::create_dir(&base).unwrap();
        std::fs::write(t.path().join("outside"), b"x").unwrap();
        let r = Root::new(&base).unwrap();

        assert!(create_directory(&r, &p("/d"), 0o750, false).unwrap());
        assert_eq!(
            std::fs::metadata(base.join("d"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o750
        );
        assert!(!create_directory(&r, &p("/d"), 0o755, false).unwrap());
        assert_eq!(
            create_directory(&r, &p("/x/y"), 0o755, false)
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
        assert!(create_directory(&r, &p("/x/y"), 0o755, true).unwrap());
        std::fs::write(base.join("f"), b"1").unwrap();
        assert_eq!(
            create_directory(&r, &p("/f"), 0o755, false)
                .unwrap_err()
                .status,
            StatusCode::CONFLICT
        );

        // Delete: non-empty needs recursive; the root is refused; a symlink
        // to outside is removed itself and the target survives.
        std::fs::write(base.join("x/y/z"), b"1").unwrap();
        assert_eq!(
            delete(&r, &p("/x"), false).unwrap_err().status,
            StatusCode::CONFLICT
        );
        delete(&r, &p("/x"), true).unwrap();
        assert!(!base.join("x").exists());
        assert_eq!(
            delete(&r, &p("/"), true).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        symlink(t.path().join("outside"), base.join("l")).unwrap();
        delete(&r, &p("/l"), false).unwrap();
        assert!(t.path().join("outside").exists());

        // Move.
        std::fs::write(base.join("g"), b"2").unwrap();
        assert_eq!(
            rename(&r, &p("/f"), &p("/g"), false).unwrap_err().status,
            StatusCode::CONFLICT
        );
        rename(&r, &p("/f"), &p("/g"), true).unwrap();
        assert_eq!(std::fs::read(base.join("g")).unwrap(), b"1");
        assert_eq!(
            rename(&r, &p("/nope"), &p("/n2"), false)
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            rename(&r, &p("/d"), &p("/d/e"), false).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );

        // Chmod, and through an escaping symlink (refused, outside untouched).
        chmod(&r, &p("/g"), 0o600).unwrap();
        assert_eq!(
            std::fs::metadata(base.join("g"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o600
        );
        symlink("../outside", base.join("esc")).unwrap();
        assert_eq!(
            chmod(&r, &p("/esc"), 0o600).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_ne!(
            std::fs::metadata(t.path().join("outside"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
}
