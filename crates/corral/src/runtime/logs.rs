//! Program output: `[name] line` on corral's stdout/stderr and the raw lines
//! in `log_dir/NAME.log`, rotated by size.
//!
//! Two things must never happen: a noisy program blocking the supervisor,
//! and a program that never writes a newline growing corral's memory. So a
//! pump reads each pipe as fast as the program writes, a partial line is cut
//! at [`MAX_LINE`], and the console gets lines through a queue bounded in
//! bytes to one writer thread: if the console (the container runtime's log
//! reader) falls behind, lines for the console are dropped and counted, never
//! queued without bound, while the log file still gets every byte.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regex_lite::Regex;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::mpsc::UnboundedSender;

use crate::engine::Event;

/// A line longer than this is cut into pieces of this size.
pub const MAX_LINE: usize = 16 * 1024;
/// Bytes of program output waiting for the console writer; past this, lines
/// for the console are dropped (the log files still get them).
const CONSOLE_QUEUE_BYTES: usize = 1024 * 1024;
/// How long [`Console::flush`] waits for the writer at exit.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

enum Msg {
    Line(Stream, Vec<u8>),
    /// Everything sent before has been written: say so.
    Flush(SyncSender<()>),
}

/// The console side: one thread that owns corral's stdout and stderr.
pub struct Console {
    tx: SyncSender<Msg>,
    /// Bytes queued and not yet written; bounds memory by bytes, not lines.
    queued: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
}

impl Console {
    pub fn start() -> Arc<Console> {
        // The byte bound is the real limit; the line bound only sizes the channel.
        let (tx, rx) = sync_channel::<Msg>(4096);
        let dropped = Arc::new(AtomicU64::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        let (seen, pending) = (dropped.clone(), queued.clone());
        std::thread::Builder::new()
            .name("console".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut reported = 0;
                for msg in rx {
                    let (stream, line) = match msg {
                        Msg::Line(stream, line) => (stream, line),
                        Msg::Flush(ack) => {
                            let _ = ack.send(());
                            continue;
                        }
                    };
                    let now = seen.load(Ordering::Relaxed);
                    let note = (now != reported).then(|| {
                        let n = now - reported;
                        reported = now;
                        format!("[corral] {n} lines of program output dropped from the console (it was not keeping up); log files have them\n")
                    });
                    let _ = match stream {
                        Stream::Stdout => write_all(std::io::stdout().lock(), note, &line),
                        Stream::Stderr => write_all(std::io::stderr().lock(), note, &line),
                    };
                    pending.fetch_sub(line.len(), Ordering::Relaxed);
                }
            })
            .expect("spawn console thread");
        Arc::new(Console {
            tx,
            queued,
            dropped,
        })
    }

    fn send(&self, stream: Stream, line: Vec<u8>) {
        let len = line.len();
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > CONSOLE_QUEUE_BYTES {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.tx.try_send(Msg::Line(stream, line)).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits (boundedly) until every line queued so far is written: called
    /// before corral exits, so a dying program's last words reach the log.
    pub fn flush(&self) {
        let (ack_tx, ack_rx) = sync_channel(1);
        if self.tx.try_send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(FLUSH_TIMEOUT);
        }
    }
}

fn write_all(mut out: impl Write, note: Option<String>, line: &[u8]) -> std::io::Result<()> {
    if let Some(note) = note {
        out.write_all(note.as_bytes())?;
    }
    out.write_all(line)
}

/// `NAME.log` with size rotation: `NAME.log` → `NAME.log.1` → … `NAME.log.N`.
pub struct LogFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_bytes: u64,
    backups: u32,
}

impl LogFile {
    pub fn new(path: PathBuf, max_bytes: u64, backups: u32) -> LogFile {
        LogFile {
            path,
            file: None,
            size: 0,
            max_bytes,
            backups,
        }
    }

    pub fn write(&mut self, data: &[u8]) {
        if self.file.is_none() {
            self.open();
        }
        if self.size > 0 && self.size + data.len() as u64 > self.max_bytes {
            self.rotate();
        }
        if let Some(f) = &mut self.file {
            if f.write_all(data).is_ok() {
                self.size += data.len() as u64;
            }
        }
    }

    fn open(&mut self) {
        match OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            Ok(f) => {
                self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
                self.file = Some(f);
            }
            Err(e) => tracing::warn!(path = %self.path.display(), "cannot open log file: {e}"),
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let name = |i: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        if self.backups == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            for i in (1..self.backups).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            let _ = std::fs::rename(&self.path, name(1));
        }
        self.size = 0;
        self.open();
    }
}

/// Watches output for the `log` readiness regex of one start attempt.
pub struct ReadyMatcher {
    pub regex: Regex,
    pub name: String,
    pub generation: u64,
    /// Shared by the stdout and stderr pumps: report once.
    pub matched: Arc<AtomicBool>,
    pub events: UnboundedSender<Event>,
}

/// Everything one pump needs.
pub struct Pump {
    pub output: Arc<super::output::Output>,
    pub prefix: Vec<u8>,
    pub stream: Stream,
    pub console: Arc<Console>,
    pub file: Option<Arc<Mutex<LogFile>>>,
    pub matcher: Option<Arc<ReadyMatcher>>,
}

impl Pump {
    /// Reads the pipe until the program (and everything that inherited the
    /// pipe) closes it.
    pub async fn run(self, fd: OwnedFd) {
        let Ok(mut rx) = pipe::Receiver::from_owned_fd(fd) else {
            return;
        };
        let mut buf = vec![0u8; 8 * 1024];
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let n = match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut rest = &buf[..n];
            while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                partial.extend_from_slice(&rest[..i]);
                self.line(&partial);
                partial.clear();
                rest = &rest[i + 1..];
            }
            partial.extend_from_slice(rest);
            while partial.len() >= MAX_LINE {
                let tail = partial.split_off(MAX_LINE);
                self.line(&partial);
                partial = tail;
            }
        }
        if !partial.is_empty() {
            self.line(&partial);
        }
    }

    fn line(&self, line: &[u8]) {
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            let mut raw = Vec::with_capacity(line.len() + 1);
            raw.extend_from_slice(line);
            raw.push(b'\n');
            f.write(&raw);
        }
        self.output.push(line);
        let mut out = Vec::with_capacity(self.prefix.len() + line.len() + 1);
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(line);
        out.push(b'\n');
        self.console.send(self.stream, out);
        if let Some(m) = &self.matcher {
            if !m.matched.load(Ordering::Relaxed)
                && m.regex.is_match(&String::from_utf8_lossy(line))
            {
                m.matched.store(true, Ordering::Relaxed);
                let _ = m.events.send(Event::Ready {
                    name: m.name.clone(),
                    generation: m.generation,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        let mut f = LogFile::new(path.clone(), 10, 2);
        for line in ["aaaaaa\n", "bbbbbb\n", "cccccc\n", "dddddd\n"] {
            f.write(line.as_bytes());
        }
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(read("p.log"), "dddddd\n");
        assert_eq!(read("p.log.1"), "cccccc\n");
        assert_eq!(read("p.log.2"), "bbbbbb\n");
        assert!(!dir.path().join("p.log.3").exists());
    }
}
