//! `upload_zip`: the body is spooled into a private staging directory
//! created inside the destination (same filesystem, so the final moves are
//! renames), every entry is validated (`unzip_plan`), the archive is
//! extracted into the staging tree with the limits enforced again on the
//! real decompressed bytes, and only then is each entry moved into place.
//! Any failure before the moves removes the staging directory: a rejected
//! archive leaves the destination exactly as it was.
//!
//! Modes are not taken from the archive: files 0644 (0755 when the archive
//! marks them executable), directories 0755; never setuid/setgid/sticky.
//! Modification times are those of the extraction.

use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use zip::ZipArchive;

use super::confine::{errno_err, Root};
use super::ops::remove_tree;
use super::path::RelPath;
use super::unzip_plan::{bad, plan, Item, Kind};
use super::write::random_suffix;
use crate::http::ApiError;

/// Bounds on an uploaded archive.
#[derive(Clone, Debug)]
pub struct ZipLimits {
    /// The zip itself (the request body).
    pub max_body: u64,
    /// Entries, directories and symlinks included.
    pub max_entries: usize,
    /// Total uncompressed bytes of the files.
    pub max_uncompressed: u64,
}

/// An extraction's answer.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub entries: usize,
    pub bytes: u64,
}

const SPOOL: &str = "archive.zip";
const TREE: &str = "tree";

/// `.corral-unzip-XXXX` inside the destination, mode 0700, removed with
/// everything in it on drop.
pub struct Staging {
    dest_fd: OwnedFd,
    name: String,
}

impl Staging {
    pub fn create(dest: &Root) -> Result<Staging, ApiError> {
        let dest_fd = dest
            .fd()
            .try_clone()
            .map_err(|e| ApiError::internal(format!("dup: {e}")))?;
        let name = format!(".corral-unzip-{}", random_suffix());
        nix::sys::stat::mkdirat(&dest_fd, name.as_str(), Mode::from_bits_truncate(0o700))
            .map_err(|e| errno_err(&dest.show(&RelPath::root()), e))?;
        let s = Staging { dest_fd, name };
        s.mkdir(TREE)?;
        Ok(s)
    }

    fn mkdir(&self, sub: &str) -> Result<(), ApiError> {
        let fd = self.fd()?;
        nix::sys::stat::mkdirat(&fd, sub, Mode::from_bits_truncate(0o700))
            .map_err(|e| errno_err("staging directory", e))
    }

    fn fd(&self) -> Result<OwnedFd, ApiError> {
        super::ops::open_dir_nofollow(&self.dest_fd, &self.name)
            .map_err(|e| errno_err("staging directory", e))
    }

    /// The file the body is spooled into.
    pub fn spool(&self) -> Result<std::fs::File, ApiError> {
        let fd = nix::fcntl::openat(
            self.fd()?,
            SPOOL,
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| errno_err("staging file", e))?;
        Ok(fd.into())
    }

    /// The staging tree as a confined root with no symlinks crossed.
    fn tree(&self, dest: &Root) -> Result<Root, ApiError> {
        dest.sub(&RelPath::root().child(&self.name).child(TREE), true)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.dest_fd, &self.name) {
            tracing::warn!(staging = %self.name, "cannot remove the zip staging directory: {e}");
        }
    }
}

/// Validates and extracts the spooled `archive` into `dest` (the
/// destination as a root of its own). Blocking.
pub fn unpack(
    dest: &Root,
    staging: &Staging,
    mut archive: std::fs::File,
    limits: &ZipLimits,
) -> Result<Summary, ApiError> {
    archive
        .rewind()
        .map_err(|e| ApiError::internal(format!("spool: {e}")))?;
    // Before the zip crate parses the central directory into memory: a
    // 1 GiB body of bare directory records would be millions of entries.
    let count =
        declared_entries(&mut archive).map_err(|e| ApiError::internal(format!("spool: {e}")))?;
    if count > limits.max_entries as u64 {
        return Err(ApiError::too_large(format!(
            "the zip has {count} entries; at most {} are accepted; nothing was extracted",
            limits.max_entries
        )));
    }
    archive
        .rewind()
        .map_err(|e| ApiError::internal(format!("spool: {e}")))?;
    let mut zip = ZipArchive::new(std::io::BufReader::new(archive))
        .map_err(|e| ApiError::bad_request(format!("not a valid zip archive: {e}")))?;
    let items = plan(&mut zip, dest, limits)?;
    let tree = staging.tree(dest)?;
    let mut total: u64 = 0;
    for it in &items {
        total += extract(&mut zip, &tree, it, total, limits)?;
    }
    // Data on disk before any rename makes it visible (one syncfs rather
    // than 10,000 fsyncs).
    let _ = nix::unistd::syncfs(tree.fd());
    // Into place. Entries were validated against the destination; this
    // phase resolves with RESOLVE_NO_SYMLINKS too, so a symlink planted
    // since then fails the move instead of redirecting it.
    let target = dest.sub(&RelPath::root(), true)?;
    for it in &items {
        place(&tree, &target, it)?;
    }
    Ok(Summary {
        entries: items.len(),
        bytes: total,
    })
}

/// Writes one entry into the staging tree; returns its bytes.
fn extract<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    tree: &Root,
    it: &Item,
    total: u64,
    limits: &ZipLimits,
) -> Result<u64, ApiError> {
    let (i, name) = (it.index, it.name.as_str());
    if it.kind == Kind::Dir {
        tree.mkdir_all(&it.path, 0o755)?;
        return Ok(0);
    }
    let parent = it.path.parent().unwrap_or_default();
    tree.mkdir_all(&parent, 0o755)?;
    let pfd = tree.dir(&parent)?;
    let leaf = it.path.name().unwrap_or_default();
    let exec = match &it.kind {
        Kind::Symlink(target) => {
            nix::unistd::symlinkat(target.as_str(), &pfd, leaf)
                .map_err(|e| errno_err(&tree.show(&it.path), e))?;
            return Ok(0);
        }
        Kind::File { exec } => *exec,
        Kind::Dir => unreachable!(),
    };
    let fd = nix::fcntl::openat(
        &pfd,
        leaf,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| errno_err(&tree.show(&it.path), e))?;
    let mut out = std::fs::File::from(fd);
    let mut f = zip
        .by_index(i)
        .map_err(|e| bad(i, name, format!("unreadable: {e}")))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut n: u64 = 0;
    loop {
        let k = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // The zip crate stops at the declared size and says so.
            Err(e) if e.to_string().contains("larger than") => return Err(lying(i, name, it.size)),
            Err(e) => return Err(bad(i, name, format!("corrupt data: {e}"))),
        };
        n += k as u64;
        if n > it.size {
            return Err(lying(i, name, it.size));
        }
        if total + n > limits.max_uncompressed {
            return Err(ApiError::too_large(format!(
                "the zip decompresses to more than {} bytes (at entry #{i} {name:?}); nothing was extracted",
                limits.max_uncompressed
            )));
        }
        out.write_all(&buf[..k])
            .map_err(|e| match e.raw_os_error() {
                Some(c) => errno_err(&tree.show(&it.path), Errno::from_raw(c)),
                None => ApiError::internal(format!("writing: {e}")),
            })?;
    }
    if n != it.size {
        return Err(bad(
            i,
            name,
            format!("{n} bytes of data, {} declared", it.size),
        ));
    }
    let m = if exec { 0o755 } else { 0o644 };
    nix::sys::stat::fchmod(&out, Mode::from_bits_truncate(m))
        .map_err(|e| errno_err(&tree.show(&it.path), e))?;
    Ok(n)
}

/// The largest entry count any end-of-central-directory record in the
/// archive's tail claims (zip64 included; the zip crate looks there too).
/// A zip64 record that cannot be found counts as "too many": nothing
/// legitimate needs that ambiguity.
fn declared_entries(f: &mut std::fs::File) -> std::io::Result<u64> {
    use std::io::SeekFrom;
    let len = f.seek(SeekFrom::End(0))?;
    let tail_len = len.min(22 + 65_535);
    f.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    f.read_exact(&mut tail)?;
    let le16 = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let mut most: u64 = 0;
    for i in (0..tail.len().saturating_sub(21)).rev() {
        if tail[i..i + 4] != [0x50, 0x4b, 5, 6] {
            continue;
        }
        let n = le16(&tail, i + 10);
        if n != 0xFFFF {
            most = most.max(u64::from(n));
            continue;
        }
        // Zip64: the locator sits just before, pointing at the record.
        let at = (len - tail_len) + i as u64;
        let mut n64 = u64::MAX;
        if at >= 20 {
            let mut loc = [0u8; 20];
            f.seek(SeekFrom::Start(at - 20))?;
            f.read_exact(&mut loc)?;
            if loc[..4] == [0x50, 0x4b, 6, 7] {
                let off = u64::from_le_bytes(loc[8..16].try_into().unwrap_or_default());
                let mut rec = [0u8; 40];
                if off.checked_add(40).is_some_and(|end| end <= len) {
                    f.seek(SeekFrom::Start(off))?;
                    f.read_exact(&mut rec)?;
                    if rec[..4] == [0x50, 0x4b, 6, 6] {
                        n64 = u64::from_le_bytes(rec[32..40].try_into().unwrap_or_default());
                    }
                }
            }
        }
        most = most.max(n64);
    }
    Ok(most)
}

fn lying(i: usize, name: &str, size: u64) -> ApiError {
    ApiError::too_large(format!(
        "zip entry #{i} {name:?} decompresses to more than the {size} bytes its header declares (a zip bomb?); nothing was extracted"
    ))
}

/// Moves one extracted entry from the staging tree into the destination.
fn place(tree: &Root, target: &Root, it: &Item) -> Result<(), ApiError> {
    if it.kind == Kind::Dir {
        target.mkdir_all(&it.path, 0o755)?;
        return Ok(());
    }
    let parent = it.path.parent().unwrap_or_default();
    target.mkdir_all(&parent, 0o755)?;
    let leaf = it.path.name().unwrap_or_default();
    nix::fcntl::renameat(tree.dir(&parent)?, leaf, target.dir(&parent)?, leaf)
        .map_err(|e| errno_err(&target.show(&it.path), e))
}
