//! The frame relay: one task per WebSocket moves bytes between the client's
//! socket and its own socket to Chromium, both ways, as they arrive.
//!
//! Each read (up to [`CHUNK`] bytes, into a buffer of the worker thread, not
//! of the connection) goes through [`Reframer`] and is written at once; only
//! what the destination does not take right away is kept, and the source is
//! not read again until that is written. So a peer that stops reading holds
//! at most one read of memory, Chromium's side feels the back-pressure
//! (its socket fills), and an idle relay holds no buffer at all. What is
//! left of a large payload after that first read is not read at all: it is
//! spliced from socket to socket through a pipe (see [`pipe`]), with the
//! same back-pressure.
//!
//! Frames pass as their sender framed them, never cut (see
//! [`crate::frame`]: chromedriver depends on it). Control frames are
//! answered here, never passed on, and the relay's own go between frames:
//! pings get pongs from the relay, the client gets the relay's pings, a
//! close is passed on with its code and answered (a client's, in the middle
//! of an answer, once that answer's frame has passed), and when Chromium's
//! socket ends without a close the client gets 1011 (in the middle of a
//! frame, the connection just ends: nothing can complete the frame).

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::hash::BuildHasher;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::frame::{self, Control, Event, Reframer};
pub use pipe::Socket;
use pipe::{Pipe, PIPE_SIZE};

mod pipe;

/// Bytes read from a socket at a time. Large enough that a 100 MB
/// screenshot is a few thousand reads; it lives once per worker thread.
pub const CHUNK: usize = 64 * 1024;
/// A peer that takes no byte for this long is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Control frames (pongs) that may wait for a peer that is not reading
/// before the relay stops reading that peer's pings.
const CONTROL_ROOM: usize = 4 * 1024;
/// A frame with at least this much payload still to come has it moved
/// socket to socket through a pipe (see [`pipe`]); less is copied.
const SPLICE_FROM: u64 = CHUNK as u64;

/// The worker thread's read and frame buffers: shared by every relay the
/// thread runs, used only inside one synchronous poll.
struct Scratch {
    input: Box<[u8]>,
    output: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        input: vec![0; CHUNK].into_boxed_slice(),
        output: Vec::with_capacity(CHUNK + frame::SLACK),
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Chromium,
}

/// One direction: frames read from one side, for the other.
struct Pump {
    frames: Reframer,
    /// Whole frames the destination has not taken yet; empty (no capacity)
    /// whenever it keeps up.
    out: Vec<u8>,
    sent: usize,
    /// Bytes that came with the handshake, framed before the socket is read.
    early: Bytes,
    /// When the destination last stopped taking bytes.
    stalled_since: Option<Instant>,
    /// The destination failed: nothing more is written to it.
    dead: bool,
    /// Frames to Chromium must be masked: this key source, if so.
    mask: Option<u64>,
    /// The pipe of a large payload in passage. It is filled only when `out`
    /// is empty, so its bytes go out before anything queued after them.
    pipe: Option<Pipe>,
    /// Splicing failed once on this relay: copy from then on.
    no_splice: bool,
}

impl Pump {
    fn new(from_client: bool, early: Bytes, seed: u64) -> Pump {
        Pump {
            frames: Reframer::new(from_client, crate::MAX_MESSAGE as u64),
            out: Vec::new(),
            sent: 0,
            early,
            stalled_since: None,
            dead: false,
            mask: from_client.then_some(seed | 1),
            pipe: None,
            no_splice: false,
        }
    }

    /// Nothing of this direction waits for its destination.
    fn caught_up(&self) -> bool {
        self.out.is_empty() && self.pipe.as_ref().is_none_or(|p| p.held == 0)
    }

    /// Queues a control frame of the relay's own after the frames queued
    /// (after the data frame in passage, if any). A close cannot wait for
    /// the rest of a frame that will not come: in the middle of one, the
    /// connection just ends after what was relayed (the peer sees it drop,
    /// 1006), since completing or cutting the frame would hand the peer
    /// bytes the sender never sent.
    fn queue(&mut self, opcode: u8, payload: &[u8]) {
        let mask = self.mask.as_mut().map(|s| {
            // xorshift: a fresh key per frame (RFC 6455 §5.3).
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            (*s as u32).to_be_bytes()
        });
        if opcode == frame::OP_CLOSE && self.frames.owed() > 0 {
            return;
        }
        let mut control = Vec::with_capacity(frame::MAX_HEADER + payload.len());
        frame::put_control(&mut control, opcode, payload, mask);
        self.frames.control(&control, &mut self.out);
    }

    fn close(&mut self, code: u16, reason: &str) {
        self.queue(frame::OP_CLOSE, &frame::close_payload(code, reason));
    }

    /// Writes what waits in the pipe, then what is queued; Ready once all
    /// of it is written.
    fn flush<W: Socket>(&mut self, w: &mut W, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(pipe) = self.pipe.as_mut().filter(|p| p.held > 0) {
            let tcp = w
                .tcp()
                .expect("a pipe is filled only for a TCP destination");
            let stalled = &mut self.stalled_since;
            match pipe.poll_drain(tcp, cx, || *stalled = None) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.stalled_since.get_or_insert_with(Instant::now);
                    return Poll::Pending;
                }
            }
        }
        while self.sent < self.out.len() {
            match Pin::new(&mut *w).poll_write(cx, &self.out[self.sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.sent += n;
                    self.stalled_since = None;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.stalled_since.get_or_insert_with(Instant::now);
                    return Poll::Pending;
                }
            }
        }
        // Caught up: give the memory back, an idle relay holds none (nor a
        // pipe, once no large payload is in passage).
        self.out = Vec::new();
        self.sent = 0;
        if self.pipe.is_some() && self.frames.passable() < SPLICE_FROM {
            self.pipe = None;
        }
        Poll::Ready(Ok(()))
    }

    /// Moves the next part of a large payload from `src` into the pipe;
    /// `flush` sends it on. None when this is not the moment (or the place)
    /// to splice.
    fn splice_in<R: Socket, W: Socket>(
        &mut self,
        src: &R,
        dst: &W,
        cx: &mut Context<'_>,
    ) -> Option<Poll<io::Result<usize>>> {
        let left = self.frames.passable();
        if left < SPLICE_FROM || self.no_splice || !self.early.is_empty() {
            return None;
        }
        let (Some(from), Some(_)) = (src.tcp(), dst.tcp()) else {
            return None;
        };
        // No pipe (two descriptors, kernel pages) for a sender that is not
        // sending: one is made once there are bytes to move.
        if self.pipe.is_none() {
            match from.poll_read_ready(cx) {
                Poll::Pending => return Some(Poll::Pending),
                Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
                Poll::Ready(Ok(())) => {}
            }
            match Pipe::new() {
                Ok(p) => self.pipe = Some(p),
                Err(e) => {
                    tracing::debug!("no pipe, copying instead: {e}");
                    self.no_splice = true;
                    return None;
                }
            }
        }
        let pipe = self.pipe.as_mut().expect("made above");
        let max = (left.min(PIPE_SIZE as u64) as usize).min(pipe.room());
        match pipe.poll_fill(from, max, cx) {
            // splice(2) not offered for these descriptors: copy instead.
            Poll::Ready(Err(e))
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
                ) =>
            {
                tracing::debug!("splice refused, copying instead: {e}");
                self.no_splice = true;
                self.pipe = None;
                None
            }
            Poll::Ready(Ok(n)) if n > 0 => {
                // The pipe's bytes go first, then what passing them ends
                // (deferred control frames), queued in the empty `out`.
                debug_assert!(self.out.is_empty());
                self.frames.pass(n as u64, &mut self.out);
                Some(Poll::Ready(Ok(n)))
            }
            Poll::Pending => {
                // The sender paused: give the (empty) pipe back meanwhile.
                self.pipe = None;
                Some(Poll::Pending)
            }
            other => Some(other),
        }
    }

    /// Writes freshly framed bytes; what the destination does not take now
    /// is queued (copied) and the source is not read until it is written.
    fn write_now<W: AsyncWrite + Unpin>(
        &mut self,
        bytes: &[u8],
        w: &mut W,
        cx: &mut Context<'_>,
    ) -> io::Result<()> {
        debug_assert!(
            self.caught_up(),
            "a pump reads only once its queue is written"
        );
        let mut at = 0;
        while at < bytes.len() {
            match Pin::new(&mut *w).poll_write(cx, &bytes[at..]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => at += n,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {
                    self.out.extend_from_slice(&bytes[at..]);
                    self.stalled_since = Some(Instant::now());
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Why the relay stops.
#[derive(Debug)]
enum Stop {
    Close(Side, Control),
    Eof(Side),
    ReadFailed(Side, io::Error),
    /// Writing to this side failed.
    WriteFailed(Side, io::Error),
    /// This side took no byte for [`SEND_TIMEOUT`].
    Stalled(Side),
    Violation(Side, u16, &'static str),
    /// The client's close, held while a frame from Chromium was in
    /// passage: that frame has passed, the close goes on and is echoed.
    Closed(Control),
}

/// A relay between a client socket `C` and Chromium's socket `U`, both past
/// the WebSocket handshake.
pub struct Relay<C, U> {
    client: C,
    upstream: U,
    /// Client → Chromium.
    up: Pump,
    /// Chromium → client.
    down: Pump,
    stall_timer: Option<Pin<Box<Sleep>>>,
    /// The client closed in the middle of a frame from Chromium: its close
    /// waits until that frame has passed, at most [`SEND_TIMEOUT`].
    closing: Option<Control>,
}

impl<C: Socket, U: Socket> Relay<C, U> {
    /// `client_early`/`upstream_early`: bytes each side sent that were read
    /// with its handshake.
    pub fn new(client: C, client_early: Bytes, upstream: U, upstream_early: Bytes) -> Self {
        // Even an empty slice of hyper's (or the handshake's) read buffer
        // keeps that whole buffer alive: keep only the bytes, if any.
        let own = |b: Bytes| {
            if b.is_empty() {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(&b)
            }
        };
        let (client_early, upstream_early) = (own(client_early), own(upstream_early));
        let seed = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
        Relay {
            client,
            upstream,
            up: Pump::new(true, client_early, seed),
            down: Pump::new(false, upstream_early, 0),
            stall_timer: None,
            closing: None,
        }
    }

    /// Relays until one side closes or fails, then closes the other side
    /// with the matching code; returns why it ended.
    pub async fn run(
        mut self,
        ping_every: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> String {
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let closing_deadline = tokio::time::sleep(Duration::MAX);
        tokio::pin!(closing_deadline);
        let why = loop {
            tokio::select! {
                stop = poll_fn(|cx| self.poll_io(cx)) => match stop {
                    // A close is answered between frames: the client's waits
                    // until Chromium's frame has passed (Chromium, once it
                    // has a close, sends nothing more, not even the rest).
                    Stop::Close(Side::Client, c) if self.down.frames.owed() > 0 => {
                        self.closing = Some(c);
                        closing_deadline.as_mut().reset(Instant::now() + SEND_TIMEOUT);
                    }
                    Stop::Close(Side::Chromium, _) if self.closing.is_some() => {
                        let c = self.closing.take().expect("checked");
                        break self.stopped(Stop::Closed(c));
                    }
                    stop => break self.stopped(stop),
                },
                _ = &mut closing_deadline, if self.closing.is_some() => {
                    // Chromium's frame did not end in time: Chromium gets the
                    // close, the client's connection just ends.
                    let c = self.closing.take().expect("checked");
                    self.up.queue(frame::OP_CLOSE, c.payload());
                    self.down.dead = true;
                    break format!(
                        "client closed ({}); chromium's frame did not end in time",
                        c.close_code().unwrap_or(1005)
                    );
                }
                _ = ping.tick() => self.down.queue(frame::OP_PING, &[]),
                _ = shutdown.changed() => {
                    self.down.close(frame::CLOSE_AWAY, "corral-cdp is shutting down");
                    self.up.close(frame::CLOSE_AWAY, "corral-cdp is shutting down");
                    break "bridge shutting down".into();
                }
            }
        };
        self.finish().await;
        why
    }

    /// Moves bytes both ways until a side stops.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Stop> {
        loop {
            if let Some(c) = &self.closing {
                if self.down.frames.owed() == 0 {
                    return Poll::Ready(Stop::Closed(c.clone()));
                }
            }
            if let Poll::Ready(Err(e)) = self.up.flush(&mut self.upstream, cx) {
                return Poll::Ready(Stop::WriteFailed(Side::Chromium, e));
            }
            if let Poll::Ready(Err(e)) = self.down.flush(&mut self.client, cx) {
                return Poll::Ready(Stop::WriteFailed(Side::Client, e));
            }
            let mut read = false;
            // A client that closed is only watched for going away (what it
            // sends after its close is ignored).
            match if self.closing.is_some() {
                match discard(&mut self.client, cx) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Stop::Eof(Side::Client)),
                    Poll::Ready(Ok(_)) => Poll::Ready(None),
                    Poll::Ready(Err(e)) => return Poll::Ready(Stop::ReadFailed(Side::Client, e)),
                    Poll::Pending => Poll::Pending,
                }
            } else {
                pump(
                    Side::Client,
                    &mut self.up,
                    &mut self.down,
                    &mut self.client,
                    &mut self.upstream,
                    cx,
                )
            } {
                Poll::Ready(Some(stop)) => return Poll::Ready(stop),
                Poll::Ready(None) => read = true,
                Poll::Pending => {}
            }
            match pump(
                Side::Chromium,
                &mut self.down,
                &mut self.up,
                &mut self.upstream,
                &mut self.client,
                cx,
            ) {
                Poll::Ready(Some(stop)) => return Poll::Ready(stop),
                Poll::Ready(None) => read = true,
                Poll::Pending => {}
            }
            if !read {
                return self.poll_stall(cx);
            }
        }
    }

    /// Drops a peer that has taken no byte for [`SEND_TIMEOUT`].
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<Stop> {
        let stalled = [
            (Side::Chromium, self.up.stalled_since),
            (Side::Client, self.down.stalled_since),
        ];
        let Some((side, since)) = stalled
            .into_iter()
            .filter_map(|(s, t)| Some((s, t?)))
            .min_by_key(|&(_, t)| t)
        else {
            return Poll::Pending;
        };
        let deadline = since + SEND_TIMEOUT;
        let timer = self
            .stall_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Stop::Stalled(side)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Queues the close frames a stop calls for; returns it in words.
    fn stopped(&mut self, stop: Stop) -> String {
        use frame::{CLOSE_AWAY, CLOSE_ERROR, CLOSE_NORMAL, CLOSE_UNSUPPORTED};
        let code = |c: &Control| c.close_code().unwrap_or(1005);
        match stop {
            // Passed on with its code, and answered (echoed) so the closing
            // side sees its own code come back, not a dropped connection.
            Stop::Close(Side::Client, c) => {
                self.up.queue(frame::OP_CLOSE, c.payload());
                self.down.queue(frame::OP_CLOSE, c.payload());
                format!("client closed ({})", code(&c))
            }
            Stop::Close(Side::Chromium, c) => {
                self.down.queue(frame::OP_CLOSE, c.payload());
                self.up.queue(frame::OP_CLOSE, c.payload());
                format!("chromium closed ({})", code(&c))
            }
            Stop::Closed(c) => {
                self.up.queue(frame::OP_CLOSE, c.payload());
                self.down.queue(frame::OP_CLOSE, c.payload());
                format!("client closed ({})", code(&c))
            }
            Stop::Eof(Side::Client) | Stop::ReadFailed(Side::Client, _) => {
                self.down.dead = true;
                self.up.close(CLOSE_AWAY, "client went away");
                match stop {
                    Stop::ReadFailed(_, e) => format!("client error: {e}"),
                    _ => "client disconnected".into(),
                }
            }
            Stop::Eof(Side::Chromium) | Stop::ReadFailed(Side::Chromium, _) => {
                self.up.dead = true;
                self.down.close(CLOSE_ERROR, "chromium went away");
                match stop {
                    Stop::ReadFailed(_, e) => format!("chromium error: {e}"),
                    _ => "chromium disconnected".into(),
                }
            }
            Stop::WriteFailed(Side::Chromium, _) | Stop::Stalled(Side::Chromium) => {
                self.up.dead = true;
                self.down.close(CLOSE_ERROR, "chromium went away");
                match stop {
                    Stop::WriteFailed(_, e) => format!("upstream send failed: {e}"),
                    _ => "upstream send failed: peer not reading".into(),
                }
            }
            Stop::WriteFailed(Side::Client, _) | Stop::Stalled(Side::Client) => {
                self.down.dead = true;
                self.up.close(CLOSE_AWAY, "client went away");
                match stop {
                    Stop::WriteFailed(_, e) => format!("client send failed: {e}"),
                    _ => "client send failed: peer not reading".into(),
                }
            }
            // Chrome drops connections that send binary: binary that is not
            // UTF-8 cannot be passed on as text.
            Stop::Violation(Side::Client, CLOSE_UNSUPPORTED, reason) => {
                self.down.close(CLOSE_UNSUPPORTED, reason);
                self.up.close(CLOSE_NORMAL, "client sent binary data");
                "client sent non-UTF-8 binary".into()
            }
            Stop::Violation(Side::Client, code, reason) => {
                self.down.close(code, reason);
                self.up.close(CLOSE_AWAY, "client went away");
                format!("client error: {reason}")
            }
            Stop::Violation(Side::Chromium, code, reason) => {
                self.up.close(code, reason);
                self.down.close(CLOSE_ERROR, "chromium went away");
                format!("chromium error: {reason}")
            }
        }
    }

    /// Writes the queued frames (closes) to the sides still there, then
    /// ends both connections (a FIN after the close frame, so the peer
    /// reads it before EOF), within [`SEND_TIMEOUT`].
    async fn finish(&mut self) {
        let work = async {
            poll_fn(|cx| {
                let up = self.up.dead || self.up.flush(&mut self.upstream, cx).is_ready();
                let down = self.down.dead || self.down.flush(&mut self.client, cx).is_ready();
                if up && down {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            if !self.down.dead {
                let _ = self.client.shutdown().await;
            }
            if !self.up.dead {
                let _ = self.upstream.shutdown().await;
            }
        };
        let _ = tokio::time::timeout(SEND_TIMEOUT, work).await;
    }
}

/// Reads and drops what `src` has; Ready(Ok(0)) at its end.
fn discard<R: Socket>(src: &mut R, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    SCRATCH.with_borrow_mut(|s| {
        let mut buf = ReadBuf::new(&mut s.input);
        Pin::new(src)
            .poll_read(cx, &mut buf)
            .map_ok(|()| buf.filled().len())
    })
}

/// Reads once from `from` (through `p`) and writes the frames to `dst`.
/// Pings are answered on `back` (the queue towards `from`). Ready(None)
/// when bytes were relayed; Pending when there was nothing to read or the
/// queues are full.
fn pump<R: Socket, W: Socket>(
    from: Side,
    p: &mut Pump,
    back: &mut Pump,
    src: &mut R,
    dst: &mut W,
    cx: &mut Context<'_>,
) -> Poll<Option<Stop>> {
    // Back-pressure: nothing is read while the last read is not written,
    // nor while pongs pile up for a peer that does not read.
    if !p.caught_up() || back.out.len() + back.frames.deferred() > CHUNK + CONTROL_ROOM {
        return Poll::Pending;
    }
    // The rest of a large payload: socket to socket (see [`pipe`]).
    if let Some(moved) = p.splice_in(src, dst, cx) {
        return match moved {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) => Poll::Ready(Some(Stop::Eof(from))),
            Poll::Ready(Ok(_)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Stop::ReadFailed(from, e))),
        };
    }
    SCRATCH.with_borrow_mut(|s| {
        let Scratch { input, output } = s;
        let early;
        let data: &[u8] = if !p.early.is_empty() {
            early = std::mem::take(&mut p.early);
            &early
        } else {
            let mut buf = ReadBuf::new(input);
            match Pin::new(src).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Stop::ReadFailed(from, e))),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    return Poll::Ready(Some(Stop::Eof(from)))
                }
                Poll::Ready(Ok(())) => {}
            }
            let n = buf.filled().len();
            &input[..n]
        };
        output.clear();
        let mut at = 0;
        let mut stop = None;
        while at < data.len() {
            let (n, event) = p.frames.feed(&data[at..], output);
            at += n;
            match event {
                Event::More => {}
                Event::Control(c) if c.opcode == frame::OP_PING => {
                    back.queue(frame::OP_PONG, c.payload())
                }
                Event::Control(c) if c.opcode == frame::OP_PONG => {}
                Event::Control(c) => {
                    stop = Some(Stop::Close(from, c));
                    break;
                }
                Event::Violation { code, reason } => {
                    stop = Some(Stop::Violation(from, code, reason));
                    break;
                }
            }
        }
        // What came before a close or a violation still goes out first.
        if let Err(e) = p.write_now(output, dst, cx) {
            let to = if from == Side::Client {
                Side::Chromium
            } else {
                Side::Client
            };
            return Poll::Ready(Some(stop.unwrap_or(Stop::WriteFailed(to, e))));
        }
        Poll::Ready(stop)
    })
}

#[cfg(test)]
mod tests;
