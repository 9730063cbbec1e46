//! Recordings on the volume: `<dir>/<id>.mp4` and its metadata
//! `<dir>/<id>.json` (written by corral-api at start, completed at stop).
//! Ids are checked before any path is built from them, so no request can
//! name a file outside the directory.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::http::ApiError;

/// Longest id accepted.
const MAX_ID: usize = 64;

/// What corral-api keeps about one recording.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    pub started_at_unix: f64,
    pub framerate: u32,
    pub max_duration_s: u64,
    pub max_bytes: u64,
    /// Set when stopped through the API; a recording that ended by itself
    /// (duration or size reached, ffmpeg died) ends at its file's mtime.
    #[serde(default)]
    pub stopped_at_unix: Option<f64>,
    /// The video's own duration (ffprobe), once it is finished.
    #[serde(default)]
    pub video_duration_s: Option<f64>,
}

/// A recording as `GET /recording/list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: String,
    /// `recording`, `finished`, or `failed` (no video was written).
    pub state: &'static str,
    pub size_bytes: u64,
    pub started_at: String,
    pub duration_s: f64,
    pub framerate: u32,
    pub max_duration_s: u64,
}

/// An id: 1 to 64 of `[A-Za-z0-9_-]`, not starting with `-`.
pub fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid recording id {id:?}: 1 to {MAX_ID} letters, digits, '_' or '-' (as given by /recording/start)"
        )))
    }
}

pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A new id from the current time (recordings start one at a time, under
/// the recorder's lock; a clash adds a counter).
pub fn new_id(dir: &Path) -> String {
    let ms = (now_unix() * 1000.0) as u64;
    let secs = (ms / 1000) as i64;
    let t = UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    // 2026-12-04T09:15:00Z -> 20261204T091500Z
    let stamp: String = humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let base = format!("rec-{stamp}-{:03}", ms % 1000);
    let mut id = base.clone();
    let mut n = 1;
    // symlink_metadata: a dangling symlink planted at a predictable name
    // counts as taken (ffmpeg would write through it).
    let taken = |id: &str| {
        std::fs::symlink_metadata(mp4(dir, id)).is_ok()
            || std::fs::symlink_metadata(meta_path(dir, id)).is_ok()
    };
    while taken(&id) {
        n += 1;
        id = format!("{base}-{n}");
    }
    id
}

pub fn mp4(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.mp4"))
}

pub fn meta_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

/// Writes `value` to `path` whole (see [`crate::kept`]).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    crate::kept::write(path, &serde_json::to_vec(value)?, 0o600)
}

pub fn read_meta(dir: &Path, id: &str) -> Option<Meta> {
    let bytes = std::fs::read(meta_path(dir, id)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Opens recording `id`'s mp4 for reading without following a symlink,
/// neither the directory's last component nor the file (the directory is
/// under `--fs-root`, where a zip upload can plant symlinks); only a
/// regular file is served. Returns it with its size.
pub fn open_mp4(dir: &Path, id: &str) -> std::io::Result<(std::fs::File, u64)> {
    use nix::fcntl::{open, openat, OFlag};
    use nix::sys::stat::Mode;
    let d = open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let fd = openat(
        &d,
        format!("{id}.mp4").as_str(),
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let file = std::fs::File::from(fd);
    let md = file.metadata()?;
    if !md.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((file, md.len()))
}

/// Bytes an unprivileged writer may still use on the volume holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

/// The list entry of `meta`; `active` when it is the recording in progress.
pub fn entry(dir: &Path, meta: &Meta, active: bool) -> Entry {
    let file = std::fs::metadata(mp4(dir, &meta.id)).ok();
    let size = file.as_ref().map(|m| m.len()).unwrap_or(0);
    let end = if active {
        now_unix()
    } else {
        meta.stopped_at_unix
            .or_else(|| {
                file.as_ref()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs_f64())
            })
            .unwrap_or(meta.started_at_unix)
    };
    let state = match (active, size) {
        (true, _) => "recording",
        (false, 0) => "failed",
        (false, _) => "finished",
    };
    Entry {
        id: meta.id.clone(),
        state,
        size_bytes: size,
        started_at: humantime::format_rfc3339_millis(
            UNIX_EPOCH + std::time::Duration::from_secs_f64(meta.started_at_unix.max(0.0)),
        )
        .to_string(),
        duration_s: match (active, meta.video_duration_s) {
            (false, Some(d)) => (d * 1000.0).round() / 1000.0,
            _ => ((end - meta.started_at_unix).max(0.0) * 1000.0).round() / 1000.0,
        },
        framerate: meta.framerate,
        max_duration_s: meta.max_duration_s,
    }
}

/// Every recording's metadata in `dir`, oldest first (a missing directory
/// is an empty list).
pub fn all(dir: &Path) -> std::io::Result<Vec<Meta>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name.strip_suffix(".json") {
            if check_id(id).is_ok() {
                // The id inside must be the file's own: a planted
                // `x.json` cannot list a path elsewhere.
                if let Some(m) = read_meta(dir, id).filter(|m| m.id == id) {
                    out.push(m);
                }
            }
        }
    }
    out.sort_by(|a, b| a.started_at_unix.total_cmp(&b.started_at_unix));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_leave_the_directory() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "-rf",
            "a.mp4",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        for good in ["rec-20261204T091500Z-123", "a", "A_b-9"] {
            assert!(check_id(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn new_ids_are_valid_and_unique() {
        let d = tempfile::tempdir().unwrap();
        let a = new_id(d.path());
        check_id(&a).unwrap();
        std::fs::write(mp4(d.path(), &a), b"x").unwrap();
        let b = new_id(d.path());
        check_id(&b).unwrap();
        assert_ne!(a, b);
    }
}
