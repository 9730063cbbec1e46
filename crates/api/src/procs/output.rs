//! A spawned process's output: a bounded replay buffer of ready-made
//! Server-Sent Events, and the per-client task that streams it.
//!
//! Wire format of `GET /process/{id}/stdout/stream`:
//!
//! ```text
//! event: stdout            one event per chunk read from the pipe
//! data: first line         the chunk as UTF-8 (lossy), split at line ends
//! data: second line        into several data: lines, as SSE requires
//!
//! event: lagged            the client missed output (buffer overflowed)
//! data: {"dropped_bytes":N}
//!
//! event: exit              always last; the stream then ends
//! data: {"exit_code":0,"signal":null,"timed_out":false,"duration_ms":12}
//! ```
//!
//! An SSE client joins the `data:` lines of an event with `\n`, so
//! concatenating the events of a channel gives back the output. Exceptions:
//! `\r\n` and a lone `\r` arrive as `\n` (SSE treats all three as line ends),
//! and invalid UTF-8 becomes U+FFFD. Chunks are cut at character boundaries,
//! so valid multi-byte text is never split. For exact bytes use
//! `/process/exec` with `encoding: "base64"`.
//!
//! Every event is formatted once, when read from the pipe, and kept in the
//! process's [`Replay`] (at most [`REPLAY_BYTES`], oldest dropped first).
//! Each client has a cursor into it (a byte offset of the output) and a
//! small bounded queue: a slow client only delays itself; when the buffer
//! has moved past its cursor it gets a `lagged` event and carries on from
//! the oldest event still kept. A client that joins late starts the same
//! way, at offset 0, so it gets the replay (after a `lagged` if the start
//! was dropped) and then live output.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Exit, Proc};
use crate::http::{sse, Resp};

/// Formatted events kept per process for clients that join late or lag.
pub const REPLAY_BYTES: usize = 1024 * 1024;
/// Events queued per client before its feeder waits (and may lag).
const CLIENT_QUEUE: usize = 32;
/// A comment line this often keeps idle connections (and proxies) open
/// and notices a client that has gone.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Stdout,
    Stderr,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Stdout => "stdout",
            Channel::Stderr => "stderr",
        }
    }
}

/// One SSE event; `data` is split at `\r\n`, `\r` and `\n` into `data:`
/// lines (a field may not hold a line end).
pub fn event(name: &str, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + name.len() + 16);
    s.push_str("event: ");
    s.push_str(name);
    s.push('\n');
    let normalised = data.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalised.split('\n') {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    Bytes::from(s)
}

pub fn exit_event(exit: &Exit) -> Bytes {
    event(
        "exit",
        &serde_json::to_string(&exit.summary()).unwrap_or_default(),
    )
}

fn lagged_event(dropped: u64) -> Bytes {
    event("lagged", &format!("{{\"dropped_bytes\":{dropped}}}"))
}

const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// Output events, oldest first, bounded by [`REPLAY_BYTES`].
#[derive(Default)]
pub struct Replay {
    chunks: VecDeque<Chunk>,
    /// Formatted bytes held (what the bound applies to).
    held: usize,
    /// Output bytes seen so far: the offset the next chunk starts at.
    end: u64,
}

struct Chunk {
    /// Offset of this chunk's first output byte.
    start: u64,
    frame: Bytes,
}

impl Replay {
    pub fn push(&mut self, channel: Channel, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let frame = event(channel.name(), &String::from_utf8_lossy(data));
        self.held += frame.len();
        self.chunks.push_back(Chunk {
            start: self.end,
            frame,
        });
        self.end += data.len() as u64;
        while self.held > REPLAY_BYTES {
            let Some(old) = self.chunks.pop_front() else {
                break;
            };
            self.held -= old.frame.len();
        }
    }

    /// Offset of the oldest output still held (= output bytes dropped).
    pub fn start(&self) -> u64 {
        self.chunks.front().map_or(self.end, |c| c.start)
    }

    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Events from `cursor` on: (output bytes skipped, events, new cursor).
    pub(super) fn since(&self, cursor: u64) -> (u64, Vec<Bytes>, u64) {
        let lagged = self.start().saturating_sub(cursor);
        let first = self.chunks.partition_point(|c| c.start < cursor);
        let frames = self
            .chunks
            .range(first..)
            .map(|c| c.frame.clone())
            .collect();
        (lagged, frames, self.end.max(cursor))
    }
}

/// Holds back an incomplete UTF-8 sequence at the end of a read until the
/// next one, so a character split across reads is not mangled.
#[derive(Default)]
pub struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// The complete part of what has arrived so far.
    pub fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(data);
        let cut = complete_prefix(&buf);
        self.pending = buf.split_off(cut);
        buf
    }

    /// Whatever is left at end of file (invalid, shown as U+FFFD).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

/// Length of `b` without a trailing incomplete UTF-8 sequence.
fn complete_prefix(b: &[u8]) -> usize {
    let len = b.len();
    for back in 1..=len.min(3) {
        let c = b[len - back];
        if c & 0xC0 == 0x80 {
            continue; // a continuation byte: its lead is further back
        }
        // Bytes that can never start a sequence (0xC0, 0xC1, 0xF5..) count
        // as complete: they are invalid and will show as U+FFFD anyway.
        let need = match c {
            0xF0..=0xF4 => 4,
            0xE0..=0xEF => 3,
            0xC2..=0xDF => 2,
            _ => 1,
        };
        return if back < need { len - back } else { len };
    }
    len
}

/// The `text/event-stream` answer for one client of `proc`.
pub fn sse_response(proc: Arc<Proc>) -> Resp {
    let (tx, rx) = mpsc::channel::<Bytes>(CLIENT_QUEUE);
    tokio::spawn(feed(proc, tx));
    sse(rx)
}

/// Copies events to one client until the exit event or until it leaves.
async fn feed(proc: Arc<Proc>, tx: mpsc::Sender<Bytes>) {
    let mut changed = proc.changed.subscribe();
    let mut cursor = 0u64;
    loop {
        // Mark seen *before* reading, so a push after the read wakes us.
        changed.borrow_and_update();
        let (lagged, frames, exit) = {
            let st = proc.lock();
            let (lagged, frames, next) = st.replay.since(cursor);
            cursor = next;
            (lagged, frames, st.exit.clone())
        };
        if lagged > 0 && tx.send(lagged_event(lagged)).await.is_err() {
            return;
        }
        for f in frames {
            if tx.send(f).await.is_err() {
                return; // the client left
            }
        }
        if let Some(exit) = exit {
            // Output and exit were read under one lock, and nothing is
            // recorded after the exit: this really is the last event.
            let _ = tx.send(exit_event(&exit)).await;
            return;
        }
        tokio::select! {
            Ok(()) = changed.changed() => {}
            _ = tokio::time::sleep(KEEPALIVE_EVERY) => {
                if tx.send(Bytes::from_static(KEEPALIVE)).await.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_format() {
        assert_eq!(&event("stdout", "hi")[..], b"event: stdout\ndata: hi\n\n");
        // A trailing newline is an empty last data line: the client's
        // joined data is "a\nb\n" again.
        assert_eq!(
            &event("stderr", "a\nb\n")[..],
            b"event: stderr\ndata: a\ndata: b\ndata: \n\n"
        );
        assert_eq!(
            &event("stdout", "x\r\ny\rz")[..],
            b"event: stdout\ndata: x\ndata: y\ndata: z\n\n"
        );
        assert_eq!(&event("stdout", "")[..], b"event: stdout\ndata: \n\n");
        // A leading space survives: the parser strips only the one after ':'.
        assert_eq!(&event("stdout", " x")[..], b"event: stdout\ndata:  x\n\n");
    }

    #[test]
    fn utf8_carry_never_splits_a_character() {
        let text = "aé€😀z".as_bytes();
        for cut in 0..=text.len() {
            let mut c = Utf8Carry::default();
            let mut got = c.feed(&text[..cut]);
            assert!(std::str::from_utf8(&got).is_ok(), "cut {cut}");
            let rest = c.feed(&text[cut..]);
            assert!(std::str::from_utf8(&rest).is_ok(), "cut {cut}");
            got.extend(rest);
            got.extend(c.finish());
            assert_eq!(got, text);
        }
        // Invalid bytes are not held forever.
        let mut c = Utf8Carry::default();
        assert_eq!(c.feed(b"a\xff"), b"a\xff");
        assert_eq!(c.feed(b"\xe2"), b"");
        assert_eq!(c.finish(), b"\xe2");
    }

    #[test]
    fn replay_is_bounded_and_reports_what_was_dropped() {
        let mut r = Replay::default();
        r.push(Channel::Stdout, b"one\n");
        r.push(Channel::Stderr, b"two");
        let (lagged, frames, cursor) = r.since(0);
        assert_eq!((lagged, frames.len(), cursor), (0, 2, 7));
        assert_eq!(&frames[1][..], b"event: stderr\ndata: two\n\n");
        assert_eq!(r.since(7).1.len(), 0);

        let big = vec![b'x'; 100 * 1024];
        for _ in 0..20 {
            r.push(Channel::Stdout, &big);
        }
        assert!(r.held_bytes() <= REPLAY_BYTES);
        let (lagged, frames, cursor) = r.since(0);
        assert!(lagged > 7, "the start was dropped");
        assert_eq!(lagged, r.start());
        assert_eq!(cursor, 7 + 20 * 100 * 1024);
        assert_eq!(frames.len() as u64, (cursor - lagged) / (100 * 1024));
        // A cursor inside the kept range gets no lag.
        assert_eq!(r.since(cursor).0, 0);
    }
}
