//! Atomic file writes: data goes to a temporary file in the target's own
//! directory (so the final `renameat` is atomic — same filesystem), is
//! fsynced, and only then renamed over the target. A reader sees the old
//! file or the new one, never a torn one; a failed or abandoned write
//! leaves nothing behind (the temp file is unlinked on drop), and one
//! killed outright is cleaned up by the next write of the same name.

use std::os::fd::OwnedFd;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use tokio::io::AsyncWriteExt;

use super::confine::{errno_err, kind, lstat_at};
use super::meta::mode;
use crate::http::ApiError;

/// A temporary file next to its final name, not yet visible there.
pub struct TempFile {
    dir: OwnedFd,
    name: String,
    tmp: String,
    file: Option<std::fs::File>,
    /// Mode and owner of the file being replaced, kept across the rename
    /// (the API runs as root; without this every edit of a browser-owned
    /// file would hand it to root).
    existing: Option<(u32, u32, u32)>,
}

impl TempFile {
    /// Creates `.NAME.corral-XXXX` in `dir` (a confined directory
    /// descriptor). An existing directory at `name` is 400.
    pub fn create(dir: OwnedFd, name: &str, shown: &str) -> Result<TempFile, ApiError> {
        let existing = match lstat_at(&dir, name).map_err(|e| errno_err(shown, e))? {
            Some(st) if kind(&st) == SFlag::S_IFDIR => {
                return Err(ApiError::bad_request(format!("{shown} is a directory")))
            }
            Some(st) if kind(&st) == SFlag::S_IFREG => {
                Some((st.st_mode & 0o777, st.st_uid, st.st_gid))
            }
            _ => None,
        };
        remove_stale_temps(&dir, name);
        for _ in 0..16 {
            let tmp = format!(".{}.corral-{}", truncate(name, 200), random_suffix());
            match nix::fcntl::openat(
                &dir,
                tmp.as_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            ) {
                Ok(fd) => {
                    return Ok(TempFile {
                        dir,
                        name: name.to_string(),
                        tmp,
                        file: Some(fd.into()),
                        existing,
                    })
                }
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(errno_err(shown, e)),
            }
        }
        Err(ApiError::internal(format!(
            "{shown}: cannot pick a temporary name"
        )))
    }

    /// Whether the final name already held a regular file.
    pub fn replaces(&self) -> bool {
        self.existing.is_some()
    }

    /// Streams `body` into the file, refusing more than `limit` bytes (413).
    pub async fn fill<S>(&mut self, body: S, limit: u64) -> Result<u64, ApiError>
    where
        S: Stream<Item = Result<Bytes, ApiError>> + Unpin,
    {
        let std_file = self.file.take().expect("temp file already committed");
        let mut f = tokio::fs::File::from_std(std_file);
        let r = copy_limited(body, &mut f, limit).await;
        let flushed = f.flush().await;
        self.file = Some(f.into_std().await);
        let n = r?;
        flushed.map_err(|e| ApiError::internal(format!("writing: {e}")))?;
        Ok(n)
    }

    /// Sets the mode (`requested`, else the replaced file's, else 0644),
    /// fsyncs, renames over the final name and fsyncs the directory.
    /// Blocking.
    pub fn commit(mut self, requested: Option<u32>, shown: &str) -> Result<(), ApiError> {
        let file = self.file.take().expect("temp file already committed");
        let m = requested.or(self.existing.map(|e| e.0)).unwrap_or(0o644);
        nix::sys::stat::fchmod(&file, mode(m)).map_err(|e| errno_err(shown, e))?;
        if let Some((_, uid, gid)) = self.existing {
            // Best effort: only root may give a file away.
            let _ = nix::unistd::fchown(&file, Some(uid.into()), Some(gid.into()));
        }
        file.sync_all()
            .map_err(|e| ApiError::internal(format!("{shown}: fsync: {e}")))?;
        drop(file);
        nix::fcntl::renameat(&self.dir, self.tmp.as_str(), &self.dir, self.name.as_str())
            .map_err(|e| errno_err(shown, e))?;
        // Committed: Drop must no longer unlink.
        self.tmp.clear();
        if let Ok(d) = nix::fcntl::openat(
            &self.dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            // So the rename itself survives a crash.
            let _ = nix::unistd::fsync(&d);
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.tmp.is_empty() {
            let _ = nix::unistd::unlinkat(
                &self.dir,
                self.tmp.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
    }
}

/// Copies a byte stream into `out`, failing with 413 past `limit`.
pub async fn copy_limited<S, W>(mut body: S, out: &mut W, limit: u64) -> Result<u64, ApiError>
where
    S: Stream<Item = Result<Bytes, ApiError>> + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut n: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        n += chunk.len() as u64;
        if n > limit {
            return Err(ApiError::too_large(format!("at most {limit} bytes")));
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| match e.raw_os_error().map(Errno::from_raw) {
                Some(e) => errno_err("writing", e),
                None => ApiError::internal(format!("writing: {e}")),
            })?;
    }
    Ok(n)
}

/// A request body as a stream of chunks with errors as 400s.
pub fn body_stream(
    req: crate::http::Req,
) -> impl Stream<Item = Result<Bytes, ApiError>> + Unpin + Send {
    use http_body_util::BodyExt;
    req.into_body()
        .into_data_stream()
        .map(|r| r.map_err(|e| ApiError::bad_request(format!("reading the body: {e}"))))
}

/// Refuses early, from `Content-Length`, a body that cannot fit.
pub fn check_length(req: &crate::http::Req, limit: u64) -> Result<(), ApiError> {
    let len = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match len {
        Some(n) if n > limit => Err(ApiError::too_large(format!(
            "the body is {n} bytes; at most {limit}"
        ))),
        _ => Ok(()),
    }
}

/// Unpredictable enough that two writers never pick the same temp name
/// (O_EXCL catches the rest): std's per-process random hasher keys mixed
/// with a counter and the time.
pub fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

/// Temporary files older than this are leftovers of a killed writer.
const STALE_SECS: i64 = 600;

/// A write killed between creating its temporary file and renaming it (a
/// SIGKILL of the container) leaves `.NAME.corral-XXXX` behind — Drop never
/// ran. The next write of NAME removes such siblings, but only old ones,
/// never a write in progress. Best effort: errors are ignored.
fn remove_stale_temps(dir: &OwnedFd, name: &str) {
    use nix::sys::stat::fstatat;
    let prefix = format!(".{}.corral-", truncate(name, 200));
    let Ok(here) = nix::fcntl::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let Ok(mut entries) = nix::dir::Dir::from_fd(here) else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let stale: Vec<std::ffi::CString> = entries
        .iter()
        .flatten()
        .filter(|e| e.file_name().to_bytes().starts_with(prefix.as_bytes()))
        .map(|e| e.file_name().to_owned())
        .collect();
    for file in stale {
        let Ok(st) = fstatat(
            dir,
            file.as_c_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) else {
            continue;
        };
        if kind(&st) == SFlag::S_IFREG && now - st.st_mtime > STALE_SECS {
            let _ = nix::unistd::unlinkat(
                dir,
                file.as_c_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::confine::Root;
    use crate::fs::path::RelPath;
    use std::os::unix::fs::PermissionsExt;

    fn chunks(v: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, ApiError>> + Unpin {
        futures_util::stream::iter(
            v.iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_killed_writes_old_temp_file_is_removed_by_the_next_write() {
        let t = tempfile::tempdir().unwrap();
        let old = t.path().join(".f.corral-dead1");
        let fresh = t.path().join(".f.corral-live2");
        let other = t.path().join(".g.corral-dead3");
        for p in [&old, &fresh, &other] {
            std::fs::write(p, b"partial").unwrap();
        }
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for p in [&old, &other] {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(hour_ago)
                .unwrap();
        }
        let r = Root::new(t.path()).unwrap();
        let (dir, name) = r.parent(&RelPath::parse("/f").unwrap(), "write").unwrap();
        let tf = TempFile::create(dir, &name, "/f").unwrap();
        assert!(!old.exists(), "the stale temp file of f is left");
        assert!(
            fresh.exists(),
            "a recent one (a write in progress) was removed"
        );
        assert!(other.exists(), "another file's temp file was touched");
        drop(tf);
    }

    #[tokio::test]
    async fn fs_write_is_atomic() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), b"old").unwrap();
        std::fs::set_permissions(t.path().join("f"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        let r = Root::new(t.path()).unwrap();
        let (dir, name) = r.parent(&RelPath::parse("/f").unwrap(), "write").unwrap();
        let mut tf = TempFile::create(dir, &name, "/f").unwrap();
        assert!(tf.replaces());
        tf.fill(chunks(&[b"new ", b"content"]), 100).await.unwrap();
        // Until the commit, readers see the old file in full.
        assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"old");
        tf.commit(None, "/f").unwrap();
        assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"new content");
        assert_eq!(
            std::fs::metadata(t.path().join("f"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o640
        );
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            1,
            "no temp file left"
        );

        // Too large: 413, the old file intact, no temp file left.
        let (dir, name) = r.parent(&RelPath::parse("/f").unwrap(), "write").unwrap();
        let mut tf = TempFile::create(dir, &name, "/f").unwrap();
        let e = tf
            .fill(chunks(&[b"0123456789", b"0123456789"]), 15)
            .await
            .unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::PAYLOAD_TOO_LARGE);
        drop(tf);
        assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"new content");
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
