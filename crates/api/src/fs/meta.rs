//! What `list_files` and `file_info` report about a file, and the two
//! formats that need care: modes (octal strings, never setuid/setgid/
//! sticky from a client) and times (RFC 3339 UTC, seconds precision —
//! readable and sortable, and what JSON clients parse natively).

use std::os::fd::AsFd;

use nix::dir::Dir;
use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode, SFlag};
use serde::Serialize;

use super::confine::{errno_err, kind, lstat_at, Root};
use super::path::RelPath;
use crate::http::ApiError;

/// One file as the API reports it.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub name: String,
    /// Relative to the root, with a leading "/".
    pub path: String,
    /// "file", "dir", "symlink" or "other".
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    /// Permission bits as a 4-digit octal string, e.g. "0644".
    pub mode: String,
    /// Last modification, RFC 3339 UTC, e.g. "2025-01-31T12:00:00Z".
    pub modified: String,
    /// A symlink's target, as stored (not resolved).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Entry {
    /// Builds an entry from an `lstat` of `name` in `dir`.
    pub fn from_stat<Fd: AsFd>(dir: Fd, name: &str, path: &RelPath, st: &FileStat) -> Entry {
        let k = kind(st);
        let target = (k == SFlag::S_IFLNK)
            .then(|| nix::fcntl::readlinkat(dir, name).ok())
            .flatten()
            .map(|t| t.to_string_lossy().into_owned());
        Entry {
            name: if path.is_root() {
                "/".into()
            } else {
                name.to_string()
            },
            path: path.display(),
            kind: kind_name(k),
            size: st.st_size.max(0) as u64,
            mode: format!("{:04o}", st.st_mode & 0o7777),
            modified: rfc3339(st.st_mtime),
            target,
        }
    }
}

pub fn kind_name(k: SFlag) -> &'static str {
    match k {
        SFlag::S_IFREG => "file",
        SFlag::S_IFDIR => "dir",
        SFlag::S_IFLNK => "symlink",
        _ => "other",
    }
}

/// `file_info`: an `lstat`, so a symlink is reported as one.
pub fn file_info(root: &Root, p: &RelPath) -> Result<Entry, ApiError> {
    if p.is_root() {
        let fd = root.dir(p)?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| errno_err("/", e))?;
        return Ok(Entry::from_stat(&fd, ".", p, &st));
    }
    let (dir, name) = root.parent(p, "stat")?;
    match lstat_at(&dir, name.as_str()) {
        Ok(Some(st)) => Ok(Entry::from_stat(&dir, &name, p, &st)),
        Ok(None) => Err(ApiError::not_found(format!(
            "{p}: no such file or directory"
        ))),
        Err(e) => Err(errno_err(&p.display(), e)),
    }
}

/// `list_files`: the directory's entries (not recursive), sorted by name.
/// Names that are not UTF-8 are reported lossily.
pub fn list(root: &Root, p: &RelPath) -> Result<Vec<Entry>, ApiError> {
    let fd = root.open(p, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
    let mut dir = Dir::from_fd(fd).map_err(|e| errno_err(&p.display(), e))?;
    let mut names = Vec::new();
    for ent in dir.iter() {
        let ent = ent.map_err(|e| errno_err(&p.display(), e))?;
        let name = ent.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(ent.file_name().to_owned());
        }
    }
    let mut out = Vec::with_capacity(names.len());
    for raw in names {
        let name = raw.to_string_lossy().into_owned();
        // Gone since readdir: skip rather than fail the whole listing.
        let Ok(Some(st)) = lstat_at(&dir, raw.as_c_str()) else {
            continue;
        };
        out.push(Entry::from_stat(&dir, &name, &p.child(&name), &st));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A mode from a client: an octal string ("0755", "755", "0o755") or a
/// JSON number taken as the numeric value (493 == 0o755). Anything above
/// 0o777 — setuid, setgid, sticky — is refused: the API runs as root, and
/// a setuid file written through it would be a privilege escalation.
pub fn parse_mode(v: &serde_json::Value) -> Result<u32, ApiError> {
    let m = match v {
        serde_json::Value::String(s) => parse_mode_str(s)?,
        serde_json::Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ApiError::bad_request(format!("invalid mode {n}")))?,
        other => return Err(ApiError::bad_request(format!("invalid mode {other}"))),
    };
    check_mode(m)
}

pub fn parse_mode_str(s: &str) -> Result<u32, ApiError> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let m = u32::from_str_radix(digits, 8)
        .ok()
        .filter(|_| !digits.is_empty() && digits.len() <= 6)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid mode {s:?}: want an octal string like \"0644\""
            ))
        })?;
    check_mode(m)
}

fn check_mode(m: u32) -> Result<u32, ApiError> {
    if m > 0o777 {
        return Err(ApiError::bad_request(format!(
            "mode {m:04o} refused: setuid, setgid and sticky bits cannot be set through the API"
        )));
    }
    Ok(m)
}

pub fn mode(m: u32) -> Mode {
    Mode::from_bits_truncate(m)
}

/// Unix seconds to RFC 3339 UTC (times before 1970 clamp to the epoch).
pub fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_meta_time_and_modes() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_mode_str("0755").unwrap(), 0o755);
        assert_eq!(parse_mode_str("644").unwrap(), 0o644);
        assert_eq!(parse_mode(&serde_json::json!(493)).unwrap(), 0o755);
        for bad in ["4755", "2755", "1777", "x", "", "0999"] {
            assert!(parse_mode_str(bad).is_err(), "{bad}");
        }
        assert!(parse_mode(&serde_json::json!(0o4755)).is_err());
    }
}
