//! The kept Chromium flags: which flags may be kept, how a PATCH merges
//! into the set, and the file on the volume that holds it
//! (`{"flags": ["--a=b", "--c"]}`, replaced atomically).
//!
//! A flag's *name* is what comes before the first `=` (`--lang` in
//! `--lang=fr`); the set holds each name once, so setting a name again
//! replaces its value, as kernel-images' `PATCH /chromium/flags` does.
//! Refused names are those that would break the stack's contract: the
//! DevTools endpoint the sidecars rely on (port, address, pipe), the
//! profile on the volume, the Origin check of docs/security.md, the
//! headful display, and the extension switches the extensions endpoint
//! manages. The launcher applies the same check to what it reads, since the
//! file sits on the volume where `/fs/*` can write it too.

use std::path::Path;

/// Most flags kept at once.
pub const MAX_FLAGS: usize = 256;
/// Longest flag accepted.
pub const MAX_FLAG_LEN: usize = 4096;

/// Names refused, and why (shown in the 400).
const REFUSED: &[(&str, &str)] = &[
    ("--remote-debugging-port", "the DevTools port is fixed: corral-cdp, the snapshot sidecars and /chromium/restart reach Chromium there"),
    ("--remote-debugging-address", "DevTools listens on loopback only, behind corral-cdp's token (docs/security.md)"),
    ("--remote-debugging-pipe", "DevTools is served on the fixed port, not a pipe"),
    ("--remote-debugging-io-pipes", "DevTools is served on the fixed port, not a pipe"),
    ("--remote-allow-origins", "web pages must not reach DevTools (docs/security.md)"),
    ("--user-data-dir", "the profile lives on the volume at a fixed place (persistence, snapshots)"),
    ("--profile-directory", "the profile lives on the volume at a fixed place (persistence, snapshots)"),
    ("--headless", "the image decides headful (the live view shows the window) or headless"),
    ("--load-extension", "extensions are managed by /chromium/upload-extensions-and-restart"),
    ("--disable-extensions-except", "extensions are managed by /chromium/upload-extensions-and-restart"),
];

/// `--name` of `--name=value`.
pub fn name(flag: &str) -> &str {
    flag.split_once('=').map_or(flag, |(n, _)| n)
}

/// Why `flag` may not be kept, or `None` when it may.
pub fn refusal(flag: &str) -> Option<String> {
    if !flag.starts_with("--") || flag.len() < 3 || flag.starts_with("---") {
        return Some(format!(
            "{flag:?} is not a switch: each flag must look like --name or --name=value"
        ));
    }
    if flag.len() > MAX_FLAG_LEN {
        return Some(format!("a flag is longer than {MAX_FLAG_LEN} bytes"));
    }
    if flag.chars().any(char::is_control) {
        return Some(format!("{flag:?} holds a control character"));
    }
    let n = name(flag).to_ascii_lowercase();
    if n.chars().any(char::is_whitespace) {
        return Some(format!("{flag:?}: a flag name has no spaces"));
    }
    if n.starts_with("--remote-debugging") {
        return Some(format!(
            "{} is refused: DevTools' endpoint is part of the stack's contract",
            name(flag)
        ));
    }
    REFUSED
        .iter()
        .find(|(r, _)| *r == n)
        .map(|(r, why)| format!("{r} is refused: {why}"))
}

/// The kept set after a PATCH: `remove` names (or whole flags) go first,
/// then each of `add` replaces the kept flag of the same name, or is
/// appended. Order of the kept set is kept.
pub fn merge(kept: &[String], add: &[String], remove: &[String]) -> Vec<String> {
    let gone: Vec<&str> = remove.iter().map(|r| name(r)).collect();
    let mut out: Vec<String> = kept
        .iter()
        .filter(|k| !gone.contains(&name(k)))
        .cloned()
        .collect();
    for a in add {
        match out.iter_mut().find(|k| name(k) == name(a)) {
            Some(k) => *k = a.clone(),
            None => out.push(a.clone()),
        }
    }
    out
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct FlagsFile {
    flags: Vec<String>,
}

/// The kept flags; a missing file is an empty set.
pub fn read(file: &Path) -> std::io::Result<Vec<String>> {
    match std::fs::read(file) {
        Ok(b) => serde_json::from_slice::<FlagsFile>(&b)
            .map(|f| f.flags)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Replaces the file atomically (temp file in the same directory, fsync,
/// rename, fsync of the directory), readable by Chromium's user.
pub fn write(file: &Path, flags: &[String]) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        // Chromium's user reads the file: 0755 whatever the umask.
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let mut body = serde_json::to_vec_pretty(&FlagsFile {
        flags: flags.to_vec(),
    })
    .map_err(std::io::Error::other)?;
    body.push(b'\n');
    crate::kept::write(file, &body, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn contract_flags_are_refused_others_kept() {
        for bad in [
            "--remote-debugging-port=1",
            "--REMOTE-debugging-address=0.0.0.0",
            "--remote-debugging-pipe",
            "--remote-debugging-foo",
            "--user-data-dir=/tmp/x",
            "--remote-allow-origins=*",
            "--headless=new",
            "--load-extension=/x",
            "--disable-extensions-except=/x",
            "-v",
            "lang=fr",
            "--",
            "---x",
            "--a\nb",
            "--na me=x",
        ] {
            assert!(refusal(bad).is_some(), "{bad} accepted");
        }
        for good in [
            "--lang=fr",
            "--kiosk",
            "--proxy-server=http://127.0.0.1:8",
            "--user-agent=Mozilla/5.0 (X11) Custom",
            "--disable-features=Foo,Bar",
        ] {
            assert_eq!(refusal(good), None, "{good}");
        }
        assert!(refusal("--remote-debugging-port=1")
            .unwrap()
            .contains("contract"));
    }

    #[test]
    fn merge_replaces_by_name_and_removes() {
        let kept = v(&["--lang=fr", "--kiosk", "--window-name=a"]);
        assert_eq!(
            merge(&kept, &v(&["--lang=de", "--mute-audio"]), &[]),
            v(&["--lang=de", "--kiosk", "--window-name=a", "--mute-audio"])
        );
        assert_eq!(
            merge(&kept, &[], &v(&["--kiosk", "--window-name=zzz"])),
            v(&["--lang=fr"])
        );
        // Removed then added again: the new value, at the end.
        assert_eq!(
            merge(&kept, &v(&["--lang=it"]), &v(&["--lang"])),
            v(&["--kiosk", "--window-name=a", "--lang=it"])
        );
    }

    #[test]
    fn the_file_round_trips_and_missing_is_empty() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("state/flags.json");
        assert!(read(&f).unwrap().is_empty());
        write(&f, &v(&["--a=1", "--b"])).unwrap();
        assert_eq!(read(&f).unwrap(), v(&["--a=1", "--b"]));
        std::fs::write(&f, "not json").unwrap();
        assert!(read(&f).is_err());
    }
}
