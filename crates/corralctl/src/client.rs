//! A blocking connection to corral's control socket.
//!
//! Blocking std I/O on purpose: a `corralctl status` is connect, one write,
//! one read, exit — a runtime would cost more than the round trip. Every wait
//! is bounded unless the caller asks otherwise (`tail -f`), so a stuck
//! supervisor turns into exit 3 with a message instead of a hung probe.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use corral_proto::frame::{self, FrameError};
use corral_proto::{Request, RequestFrame, Response, ResponseFrame, VERSION};

/// Failing to talk to corral; always exit 3.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach corral at {}: {reason} ({hint})", path.display())]
    Connect {
        path: PathBuf,
        reason: String,
        hint: &'static str,
    },
    #[error(
        "cannot reach corral at {}: no connection after {} (is it stuck?)",
        path.display(), humantime::format_duration(*after)
    )]
    ConnectTimeout { path: PathBuf, after: Duration },
    #[error("corral at {} closed the connection before answering", path.display())]
    Closed { path: PathBuf },
    #[error(
        "corral at {} did not answer within {} (is it stuck?)",
        path.display(), humantime::format_duration(*after)
    )]
    NoAnswer { path: PathBuf, after: Duration },
    #[error("lost the connection to corral at {}: {}", path.display(), describe(source))]
    Io { path: PathBuf, source: io::Error },
    #[error("bad answer from corral at {}: {detail}", path.display())]
    Protocol { path: PathBuf, detail: String },
}

/// One connection; requests and answers in order.
pub struct Client {
    stream: UnixStream,
    /// For messages: which socket the user should check.
    path: PathBuf,
    /// The read timeout in force, to name it when it expires.
    reply_timeout: Option<Duration>,
}

impl Client {
    /// Connects, giving up after `timeout`.
    ///
    /// std has no `connect_timeout` for Unix sockets, and a connect blocks
    /// when the supervisor stopped accepting and its backlog is full. So the
    /// connect runs on a helper thread; if it is late we return and the
    /// process exits, taking the thread with it.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let (tx, rx) = mpsc::channel();
        let target = path.to_owned();
        thread::spawn(move || {
            let _ = tx.send(UnixStream::connect(&target));
        });
        let stream = match rx.recv_timeout(timeout) {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(connect_error(path, &e)),
            Err(_) => {
                return Err(ClientError::ConnectTimeout {
                    path: path.to_owned(),
                    after: timeout,
                })
            }
        };
        // Requests are tiny, but a peer that never reads must not block us.
        let _ = stream.set_write_timeout(Some(timeout.max(Duration::from_millis(1))));
        Ok(Client {
            stream,
            path: path.to_owned(),
            reply_timeout: None,
        })
    }

    /// Bounds each following read; `None` waits forever (`tail -f`).
    pub fn set_reply_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        // A zero timeout is an error for the socket API; 1 ms means "now".
        let timeout = timeout.map(|t| t.max(Duration::from_millis(1)));
        self.stream
            .set_read_timeout(timeout)
            .map_err(|e| self.io_error(e))?;
        self.reply_timeout = timeout;
        Ok(())
    }

    /// Bounds reads by what is left of `budget` since `started`, and names
    /// the whole budget if it runs out (the user gave `--timeout 5s`, not
    /// "4s 998ms").
    pub fn set_reply_deadline(
        &mut self,
        budget: Duration,
        started: Instant,
    ) -> Result<(), ClientError> {
        self.set_reply_timeout(Some(budget.saturating_sub(started.elapsed())))?;
        self.reply_timeout = Some(budget);
        Ok(())
    }

    pub fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        let msg = RequestFrame {
            v: VERSION,
            request: request.clone(),
        };
        frame::write(&mut self.stream, &msg).map_err(|e| self.frame_error(e))
    }

    /// The next answer; the connection ending first is an error.
    pub fn recv(&mut self) -> Result<Response, ClientError> {
        self.recv_or_eof()?.ok_or_else(|| self.closed())
    }

    /// The next answer, or `None` when corral closed the connection cleanly.
    pub fn recv_or_eof(&mut self) -> Result<Option<Response>, ClientError> {
        let Some(msg) =
            frame::read::<_, ResponseFrame>(&mut self.stream).map_err(|e| self.frame_error(e))?
        else {
            return Ok(None);
        };
        // An error answer is worth showing whatever version it came in (a
        // server refusing our version says so in one); anything else from a
        // different protocol version cannot be trusted to mean the same.
        if msg.v != VERSION && !matches!(msg.response, Response::Error { .. }) {
            return Err(self.protocol(format!(
                "it speaks protocol version {}, corralctl speaks {VERSION}",
                msg.v
            )));
        }
        Ok(Some(msg.response))
    }

    /// For an answer of the wrong kind (a version skew the version number
    /// did not catch, or a server bug).
    pub fn unexpected(&self, response: &Response) -> ClientError {
        let kind = serde_json::to_value(response)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
            .unwrap_or_else(|| "?".into());
        self.protocol(format!("unexpected `{kind}` answer"))
    }

    /// For a connection that ended before the answer it owed.
    pub fn closed(&self) -> ClientError {
        ClientError::Closed {
            path: self.path.clone(),
        }
    }

    fn protocol(&self, detail: String) -> ClientError {
        ClientError::Protocol {
            path: self.path.clone(),
            detail,
        }
    }

    fn frame_error(&self, e: FrameError) -> ClientError {
        match e {
            FrameError::Io(e) => self.io_error(e),
            other => self.protocol(other.to_string()),
        }
    }

    fn io_error(&self, e: io::Error) -> ClientError {
        let path = self.path.clone();
        match e.kind() {
            // What a read timeout looks like on Unix (EAGAIN).
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::NoAnswer {
                path,
                after: self.reply_timeout.unwrap_or_default(),
            },
            // Half a frame, or the peer vanished: either way corral is gone.
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe => ClientError::Closed { path },
            _ => ClientError::Io { path, source: e },
        }
    }
}

/// Names the usual causes in words and says what to try.
fn connect_error(path: &Path, e: &io::Error) -> ClientError {
    let hint = match e.kind() {
        io::ErrorKind::PermissionDenied => {
            "the socket is mode 0600: run as the user corral runs as, usually root"
        }
        _ => "is corral running? set --socket or CORRAL_SOCKET",
    };
    ClientError::Connect {
        path: path.to_owned(),
        reason: describe(e),
        hint,
    }
}

/// `No such file or directory (os error 2)` → `no such file or directory`:
/// the errno number helps nobody and the capital reads oddly mid-sentence.
pub(crate) fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_is_tidied() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(describe(&e), "no such file or directory");
        let e = io::Error::from_raw_os_error(111);
        assert_eq!(describe(&e), "connection refused");
    }

    #[test]
    fn connect_error_names_the_socket_and_the_fix() {
        let e = connect_error(
            Path::new("/run/corral/control.sock"),
            &io::Error::from_raw_os_error(2),
        );
        assert_eq!(
            e.to_string(),
            "cannot reach corral at /run/corral/control.sock: no such file or directory \
             (is corral running? set --socket or CORRAL_SOCKET)"
        );
        let e = connect_error(Path::new("/s"), &io::Error::from_raw_os_error(13));
        assert!(e
            .to_string()
            .contains("permission denied (the socket is mode 0600"));
    }
}
