//! Where is the profile? `--user-data-dir` of the Chromium behind `--cdp`,
//! found without being told, so that `harvest --cdp URL --out FILE` (the
//! contract's command) reads origins whose tab is closed.
//!
//! Two routes, in order:
//!
//! 1. **/proc, when Chromium is a local process we may inspect** (the same
//!    machine or container; root, or the same user): the process listening
//!    on the DevTools port (its socket inode in `/proc/net/tcp{,6}`, matched
//!    against `/proc/PID/fd`), then its `--user-data-dir` from
//!    `/proc/PID/cmdline` (only a process with `--remote-debugging-*`: a
//!    bridge such as corral-cdp listens too; relative to its cwd; without the flag, Chromium's
//!    default `$XDG_CONFIG_HOME/chromium` or `$HOME/.config/chromium` from
//!    its environment). The path is read through `/proc/PID/root`, so it
//!    holds even when Chromium runs in another mount namespace (a container
//!    seen from its host).
//! 2. **`chrome://version`, read by the scratch page** (works for a remote
//!    Chromium too): its "Profile Path" is `<user-data-dir>/Default`. The
//!    path is Chromium's; it is used only if it is a profile here as well (a
//!    volume mounted at the same path).
//!
//! The first path that names a directory with a `Default` profile wins.

use std::path::{Path, PathBuf};

/// Where the profile was found, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Proc { pid: u32, dir: PathBuf },
    ChromeVersion { dir: PathBuf },
}

impl Found {
    pub fn dir(&self) -> &Path {
        match self {
            Found::Proc { dir, .. } | Found::ChromeVersion { dir } => dir,
        }
    }
}

/// Whether `dir` looks like a Chromium user-data-dir (its default profile).
pub fn is_profile(dir: &Path) -> bool {
    dir.join("Default").is_dir()
}

/// The TCP port of a `http://host:port` or `ws://host:port/…` URL, if the
/// host is this machine's loopback (the only case where /proc can tell).
pub fn local_port(cdp: &str) -> Option<u16> {
    let rest = cdp
        .strip_prefix("http://")
        .or_else(|| cdp.strip_prefix("ws://"))?;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = matches!(host, "localhost" | "127.0.0.1" | "::1") || host.starts_with("127.");
    local.then(|| port.parse().ok()).flatten()
}

/// Route 1: the user-data-dir of the local process listening on `port`.
pub fn from_proc(port: u16) -> Option<Found> {
    from_proc_at(Path::new("/proc"), port)
}

fn from_proc_at(proc: &Path, port: u16) -> Option<Found> {
    let inodes = listening_inodes(proc, port);
    if inodes.is_empty() {
        return None;
    }
    let pid = owner_of(proc, &inodes)?;
    let dir = user_data_dir(proc, pid)?;
    is_profile(&dir).then_some(Found::Proc { pid, dir })
}

/// Socket inodes in LISTEN state (`0A`) on `port`, IPv4 and IPv6.
fn listening_inodes(proc: &Path, port: u16) -> Vec<u64> {
    let mut found = Vec::new();
    for table in ["net/tcp", "net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(proc.join(table)) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let local_port = f[1]
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                if let Ok(inode) = f[9].parse() {
                    found.push(inode);
                }
            }
        }
    }
    found
}

/// The pid with a descriptor on one of `inodes` (the lowest, when Chromium's
/// helpers inherited it: the browser process starts first).
fn owner_of(proc: &Path, inodes: &[u64]) -> Option<u32> {
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let mut pids: Vec<u32> = std::fs::read_dir(proc)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        let Ok(fds) = std::fs::read_dir(proc.join(pid.to_string()).join("fd")) else {
            return false; // not ours to read, or gone
        };
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|t| wanted.iter().any(|w| t.as_os_str() == w.as_str()))
        })
    })
}

/// `--user-data-dir` of `pid`, as a path this process can open.
fn user_data_dir(proc: &Path, pid: u32) -> Option<PathBuf> {
    let base = proc.join(pid.to_string());
    let cmdline = std::fs::read(base.join("cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // Only Chromium itself: a bridge in front of it (corral-cdp on :9222)
    // listens too, and its HOME's default dir would be some other profile.
    if !args.iter().any(|a| a.starts_with("--remote-debugging-")) {
        return None;
    }
    let named = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--user-data-dir=")
            .map(str::to_string)
            .or_else(|| (a == "--user-data-dir").then(|| args.get(i + 1).cloned())?)
    });
    let dir = match named {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => std::fs::read_link(base.join("cwd")).ok()?.join(d),
        None => default_dir(&base)?,
    };
    // Through /proc/PID/root unless Chromium shares our root: the path is
    // Chromium's, and it may live in another mount namespace.
    let same_root = std::fs::read_link(base.join("root")).is_ok_and(|r| r == Path::new("/"))
        && std::fs::metadata(base.join("root")).ok().map(ino)
            == std::fs::metadata("/").ok().map(ino);
    Some(if same_root {
        dir
    } else {
        base.join("root")
            .join(dir.strip_prefix("/").unwrap_or(&dir))
    })
}

fn ino(m: std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// Chromium's default user-data-dir from the process's environment.
fn default_dir(base: &Path) -> Option<PathBuf> {
    let env = std::fs::read(base.join("environ")).ok()?;
    let var = |name: &str| {
        env.split(|b| *b == 0).find_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.strip_prefix(&format!("{name}="))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        })
    };
    let config = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some(config.join("chromium"))
}

/// Route 2: `chrome://version`'s "Profile Path" (`…/Default`) → the
/// user-data-dir, if it is a profile on this machine too.
pub fn from_profile_path(profile_path: &str) -> Option<Found> {
    let dir = Path::new(profile_path.trim()).parent()?.to_path_buf();
    is_profile(&dir).then_some(Found::ChromeVersion { dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ports() {
        assert_eq!(local_port("http://127.0.0.1:9223"), Some(9223));
        assert_eq!(local_port("http://localhost:9223/"), Some(9223));
        assert_eq!(
            local_port("ws://127.0.0.1:9223/devtools/browser/x"),
            Some(9223)
        );
        assert_eq!(local_port("http://[::1]:9223"), Some(9223));
        assert_eq!(local_port("http://chrome.example:9223"), None);
    }

    #[test]
    fn finds_the_process_listening_on_a_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inodes = listening_inodes(Path::new("/proc"), port);
        assert_eq!(inodes.len(), 1, "the listening socket in /proc/net/tcp");
        assert_eq!(
            owner_of(Path::new("/proc"), &inodes),
            Some(std::process::id())
        );
        drop(listener);
        assert!(listening_inodes(Path::new("/proc"), port).is_empty());
    }

    #[test]
    fn chrome_version_profile_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("Default")).unwrap();
        let shown = format!("{}/Default", dir.path().display());
        assert_eq!(
            from_profile_path(&shown),
            Some(Found::ChromeVersion {
                dir: dir.path().to_path_buf()
            })
        );
        assert_eq!(from_profile_path("/nonexistent/corral/Default"), None);
    }
}
