//! Readiness checks: the real condition a dependent waits for.
//!
//! `log` readiness is event-driven (the output pump matches lines as they
//! arrive). The others test a condition that has no event to wait on — a port
//! accepting, a URL answering, a socket or file appearing, a command exiting
//! 0 — so they test it at once and then again at short, growing intervals,
//! only while the program is starting. The engine owns the deadline: when it
//! passes, or the program leaves the starting phase, the task is aborted.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::reaper::Reaper;
use super::spawn::SpawnSpec;
use crate::config::{ProgramConfig, ReadyKind};

/// First retry after this long; doubles up to [`MAX_INTERVAL`].
const FIRST_INTERVAL: Duration = Duration::from_millis(1);
/// Keeps detection within a few milliseconds of the real moment.
const MAX_INTERVAL: Duration = Duration::from_millis(10);
/// An `exec` check is a whole process: try it less often.
const EXEC_INTERVAL: Duration = Duration::from_millis(100);
/// One attempt of an `http` check may not hang the check.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until `cfg`'s readiness condition holds. `Err` means it never can
/// (a malformed address); "not yet" is not an error.
pub async fn wait_ready(cfg: Arc<ProgramConfig>, reaper: Arc<Reaper>) -> Result<(), String> {
    let Some(ready) = &cfg.ready else {
        return Ok(());
    };
    let mut interval = FIRST_INTERVAL;
    loop {
        let ok = match &ready.kind {
            ReadyKind::Tcp(addr) => TcpStream::connect(addr.as_str()).await.is_ok(),
            ReadyKind::Http(url) => http_ok(url).await?,
            ReadyKind::X11(display) => UnixStream::connect(x11_socket(display)?).await.is_ok(),
            ReadyKind::File(path) => tokio::fs::try_exists(path).await.unwrap_or(false),
            // Matched by the output pump; nothing to poll.
            ReadyKind::Log(_) => std::future::pending().await,
            ReadyKind::Exec(argv) => {
                interval = EXEC_INTERVAL;
                exec_ok(&cfg, argv, &reaper).await?
            }
        };
        if ok {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(MAX_INTERVAL.max(interval));
    }
}

/// `:99` or `:99.0` → `/tmp/.X11-unix/X99`.
pub fn x11_socket(display: &str) -> Result<String, String> {
    let n = display
        .strip_prefix(':')
        .map(|d| d.split('.').next().unwrap_or(d))
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("x11 display {display:?} is not of the form :N"))?;
    Ok(format!("/tmp/.X11-unix/X{n}"))
}

/// One GET; true for a 2xx or 3xx answer.
async fn http_ok(url: &str) -> Result<bool, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("http check {url:?}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let attempt = async {
        let mut stream = TcpStream::connect(&addr).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let k = stream.read(&mut buf[n..]).await.ok()?;
            if k == 0 {
                break;
            }
            n += k;
        }
        let line = std::str::from_utf8(&buf[..n]).ok()?;
        let code: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some((200..400).contains(&code))
    };
    Ok(tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false))
}

/// Runs the check command as the program would run (same env, cwd, user).
async fn exec_ok(cfg: &ProgramConfig, argv: &[String], reaper: &Reaper) -> Result<bool, String> {
    let spec = SpawnSpec::like(cfg, argv, false);
    let (_, status) = reaper
        .spawn_helper(&spec)
        .map_err(|e| format!("ready exec: {e}"))?;
    Ok(status.await.map(|s| s.success()).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x11_display_names() {
        assert_eq!(x11_socket(":99").unwrap(), "/tmp/.X11-unix/X99");
        assert_eq!(x11_socket(":0.0").unwrap(), "/tmp/.X11-unix/X0");
        assert!(x11_socket("99").is_err());
        assert!(x11_socket(":x").is_err());
    }
}
