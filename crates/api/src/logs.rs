//! `/logs/stream`: a program's output or a file, as Server-Sent Events.
//!
//! - `?program=NAME`: corral's own record of the program's output, through
//!   the control socket (`tail`, following with `follow=true`) — works
//!   whether or not corral writes log files.
//! - `?path=FILE`: a file under the fs root. With `follow=true` it is tailed
//!   with inotify (no polling): appended lines are sent as they land; a
//!   rotation (the file renamed away and a new one created) is followed to
//!   the new file; a truncation restarts from its beginning.
//!
//! Each line is one event: `event: line` / `data: <line>`. `lines=N` (default
//! 10, like tail) first sends the last N lines. Without `follow` the stream
//! ends after them; with it, when the client hangs up.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use corral_proto::{Request, Response};
use inotify::{Inotify, WatchMask};
use tokio::sync::mpsc;

use crate::http::{param, query, sse, ApiError, Req, Resp};
use crate::AppState;

/// Most lines sent up front.
const MAX_BACKLOG_LINES: usize = 10_000;
/// A line longer than this is cut (like corral's own logs).
const MAX_LINE: usize = 16 * 1024;
/// Events buffered for a client; a slow one only slows its own stream (the
/// file tail or the control-socket reader waits for it, nothing else does).
const CLIENT_QUEUE: usize = 1024;

pub async fn stream(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    let q = query(&req);
    let follow = matches!(q.get("follow").map(String::as_str), Some("true" | "1"));
    let lines = match q.get("lines") {
        Some(n) => n
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("lines={n:?} is not a number")))?
            .min(MAX_BACKLOG_LINES),
        None => 10,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(CLIENT_QUEUE);
    match (q.get("program"), q.get("path")) {
        (Some(program), None) => {
            let mut conn = state
                .control
                .open(Request::Tail {
                    name: program.clone(),
                    lines,
                    follow,
                })
                .await?;
            // The first answer tells whether the program exists: an error
            // must be an HTTP status, not an event in a 200 stream.
            let first = state.control.next(&mut conn).await?;
            let backlog = match first {
                Some(Response::Lines { lines }) => lines,
                Some(Response::Error { code, message }) => {
                    return Err(crate::control::from_code(code, message))
                }
                other => return Err(ApiError::internal(format!("unexpected answer: {other:?}"))),
            };
            let control = state.control.clone();
            tokio::spawn(async move {
                if !send_lines(&tx, backlog).await || !follow {
                    return;
                }
                while let Ok(Some(Response::Lines { lines })) = control.next(&mut conn).await {
                    if !send_lines(&tx, lines).await {
                        return; // the client left; dropping `conn` ends corral's side
                    }
                }
            });
        }
        (None, Some(_)) => {
            let path = param(&q, "path")?.to_string();
            let root = state.fs.root.clone();
            let reopen_root = root.clone();
            let (file, real) = tokio::task::spawn_blocking(move || {
                crate::fs::open_for_reading(&root, &path).map(|(f, r)| (f, r, path))
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map(|(f, r, p)| (f, (r, p)))?;
            let (real, raw) = real;
            let reopen = move || {
                crate::fs::open_for_reading(&reopen_root, &raw)
                    .ok()
                    .map(|(f, _)| f)
            };
            tokio::task::spawn_blocking(move || tail_file(file, real, lines, follow, tx, reopen));
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of program=NAME or path=FILE",
            ))
        }
    }
    Ok(sse(rx))
}

/// One SSE event per line. Returns false once the client is gone.
async fn send_lines(tx: &mpsc::Sender<Bytes>, lines: Vec<String>) -> bool {
    for line in lines {
        if tx.send(event(&line)).await.is_err() {
            return false;
        }
    }
    true
}

/// `event: line` + `data: …`; a line cannot contain `\n` here, but a stray
/// `\r` would end an SSE field early, so it is dropped.
pub fn event(line: &str) -> Bytes {
    let clean: String = line.chars().filter(|&c| c != '\r').collect();
    Bytes::from(format!("event: line\ndata: {clean}\n\n"))
}

/// Runs on a blocking thread: backlog, then (with `follow`) new lines as
/// inotify reports changes, until the client is gone. `reopen` opens the
/// file again after a rotation, through the same confinement as the first.
fn tail_file(
    mut file: std::fs::File,
    path: PathBuf,
    lines: usize,
    follow: bool,
    tx: mpsc::Sender<Bytes>,
    reopen: impl Fn() -> Option<std::fs::File>,
) {
    let send = |line: &[u8]| {
        tx.blocking_send(event(&String::from_utf8_lossy(line)))
            .is_ok()
    };
    let mut offset = backlog_start(&mut file, lines);
    let mut partial: Vec<u8> = Vec::new();
    // Watch the directory, not the file: a rotation replaces the file.
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(d), Some(n)) => (d.to_path_buf(), n.to_os_string()),
        _ => return,
    };
    let mut inotify = if follow {
        match Inotify::init() {
            Ok(i) => {
                let mask = WatchMask::MODIFY
                    | WatchMask::CREATE
                    | WatchMask::MOVED_TO
                    | WatchMask::CLOSE_WRITE;
                if i.watches().add(&dir, mask).is_err() {
                    return;
                }
                Some(i)
            }
            Err(_) => return,
        }
    } else {
        None
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Read everything there is now.
        if file.seek(SeekFrom::Start(offset)).is_err() {
            return;
        }
        loop {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    offset += n as u64;
                    for chunk in buf[..n].split_inclusive(|&b| b == b'\n') {
                        partial.extend_from_slice(chunk);
                        if partial.ends_with(b"\n") || partial.len() >= MAX_LINE {
                            let line = partial.strip_suffix(b"\n").unwrap_or(&partial);
                            if !send(line) {
                                return;
                            }
                            partial.clear();
                        }
                    }
                }
            }
        }
        let Some(inotify) = inotify.as_mut() else {
            if !partial.is_empty() {
                send(&partial);
            }
            return;
        };
        // Sleep in the kernel until the directory changes; wake now and then
        // only to notice a client that left while nothing was written.
        let mut events_buf = [0u8; 4096];
        let events = match wait_events(inotify, &mut events_buf, &tx) {
            Some(e) => e,
            None => return,
        };
        let mut rotated = false;
        for ev in events {
            if ev.1.as_deref() == Some(name.as_os_str()) && ev.0 {
                rotated = true;
            }
        }
        if rotated {
            // A new file took the name: start it from the beginning.
            if let Some(f) = reopen() {
                file = f;
                offset = 0;
                partial.clear();
            }
        } else if file.metadata().map(|m| m.len() < offset).unwrap_or(false) {
            // Truncated in place (copytruncate): start again from the top.
            offset = 0;
            partial.clear();
        }
    }
}

/// (created-or-moved-in?, name) of the events that arrived.
fn wait_events(
    inotify: &mut Inotify,
    buf: &mut [u8],
    tx: &mpsc::Sender<Bytes>,
) -> Option<Vec<(bool, Option<std::ffi::OsString>)>> {
    use std::os::fd::AsRawFd;
    loop {
        if tx.is_closed() {
            return None;
        }
        let mut pfd = libc::pollfd {
            fd: inotify.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, CLIENT_CHECK.as_millis() as i32) };
        if n > 0 {
            let events = inotify.read_events(buf).ok()?;
            return Some(
                events
                    .map(|e| {
                        let created = e
                            .mask
                            .intersects(inotify::EventMask::CREATE | inotify::EventMask::MOVED_TO);
                        (created, e.name.map(|n| n.to_os_string()))
                    })
                    .collect(),
            );
        }
    }
}

/// How often a follower with nothing to send checks its client is still there.
const CLIENT_CHECK: Duration = Duration::from_secs(5);

/// The offset where the last `lines` lines begin (reading back at most 1 MiB).
fn backlog_start(file: &mut std::fs::File, lines: usize) -> u64 {
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if lines == 0 {
        return len;
    }
    let window = len.min(1 << 20);
    let start = len - window;
    let mut tail = Vec::with_capacity(window as usize);
    if file.seek(SeekFrom::Start(start)).is_err()
        || file.take(window).read_to_end(&mut tail).is_err()
    {
        return len;
    }
    // Skip a trailing newline, then find the `lines`-th newline from the end.
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    let mut seen = 0;
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == lines {
                return start + i as u64 + 1;
            }
        }
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn backlog_finds_the_last_lines() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"a\nb\nc\nd\n").unwrap();
        assert_eq!(backlog_start(&mut f, 2), 4);
        assert_eq!(backlog_start(&mut f, 10), 0);
        assert_eq!(backlog_start(&mut f, 0), 8);
    }

    #[test]
    fn events_are_one_per_line_without_cr() {
        assert_eq!(&event("hi\r")[..], b"event: line\ndata: hi\n\n");
    }

    async fn next(rx: &mut mpsc::Receiver<Bytes>) -> Bytes {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a line within 5 s")
            .expect("stream open")
    }

    #[tokio::test]
    async fn follows_appends_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "old1\nold2\n").unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let file = std::fs::File::open(&path).unwrap();
        let (p, again) = (path.clone(), path.clone());
        let reopen = move || std::fs::File::open(&again).ok();
        tokio::task::spawn_blocking(move || tail_file(file, p, 1, true, tx, reopen));
        assert_eq!(&next(&mut rx).await[..], b"event: line\ndata: old2\n\n");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"new\n")
            .unwrap();
        assert_eq!(&next(&mut rx).await[..], b"event: line\ndata: new\n\n");
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        std::fs::write(&path, "rotated\n").unwrap();
        assert_eq!(&next(&mut rx).await[..], b"event: line\ndata: rotated\n\n");
        std::fs::write(&path, "").unwrap(); // truncate in place
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"again\n")
            .unwrap();
        assert_eq!(&next(&mut rx).await[..], b"event: line\ndata: again\n\n");
    }
}
