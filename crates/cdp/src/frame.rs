//! WebSocket framing for the relay, without I/O: a [`Reframer`] reads one
//! direction's byte stream in whatever pieces the socket hands over and
//! passes each data frame on as it is, its header as soon as the header is
//! complete, its payload as it arrives.
//!
//! A frame is never held whole and never cut: memory does not depend on the
//! message size, the first byte of a 100 MB screenshot leaves as soon as it
//! arrived, and the client receives exactly the frames the sender framed.
//! That last point matters: chromedriver's WebSocket treats every frame as
//! a whole message (it does not reassemble fragments), so a relay that cut
//! Chromium's one-frame answers into fragments broke Selenium on every
//! answer over one read; and `ws` (Playwright, Puppeteer) reassembles
//! fragments with an extra copy of the message.
//!
//! The relay's own control frames (pongs, pings, close) can only go between
//! frames: in the middle of one they wait ([`Reframer::control`]) until it
//! has passed. The relay may also move a frame's payload itself, socket to
//! socket ([`Reframer::passable`], [`Reframer::pass`]).
//!
//! Payload bytes are copied, never changed: client frames stay masked with
//! their own key, Chromium's stay unmasked. Control frames are not passed
//! on: they are returned to the relay, which answers them. A binary message
//! from a client becomes text (Chrome closes connections that send binary)
//! as its bytes are checked to be UTF-8.

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close codes the relay sends (RFC 6455 §7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL: u16 = 1002;
pub const CLOSE_UNSUPPORTED: u16 = 1003;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_ERROR: u16 = 1011;

/// Largest frame header: 2 bytes, 8 of length, 4 of mask.
pub const MAX_HEADER: usize = 14;
/// Output exceeds input only by the relay's own control frames let out when
/// a frame ends; callers keep this much room over the input.
pub const SLACK: usize = 4 * MAX_HEADER;

/// A control frame received whole (its payload unmasked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub opcode: u8,
    len: u8,
    payload: [u8; 125],
}

impl Control {
    pub fn payload(&self) -> &[u8] {
        &self.payload[..self.len as usize]
    }

    /// A close frame's status code, if it carries one.
    pub fn close_code(&self) -> Option<u16> {
        let p = self.payload();
        (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]))
    }
}

/// What stopped [`Reframer::feed`] before the end of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Everything given was consumed.
    More,
    Control(Control),
    /// The stream broke the protocol; the relay closes with `code`.
    Violation {
        code: u16,
        reason: &'static str,
    },
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct Frame {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// Payload bytes still to come.
    left: u64,
    /// Payload bytes already seen: where the mask stands.
    seen: u64,
}

/// One direction's framing state.
#[derive(Debug)]
pub struct Reframer {
    /// Client frames must be masked; Chromium's must not be.
    masked: bool,
    /// Client side: binary messages go on as text, checked to be UTF-8.
    binary_as_text: bool,
    max_message: u64,
    head: [u8; MAX_HEADER],
    head_len: usize,
    frame: Option<Frame>,
    /// The data message in progress: its opcode and size so far.
    message: Option<(u8, u64)>,
    /// A binary message being checked: an incomplete UTF-8 sequence carried over.
    utf8_carry: ([u8; 4], usize),
    control: Control,
    /// Control frames of the relay's, for this direction's output, waiting
    /// for the data frame in passage to end (empty, no capacity, otherwise).
    deferred: Vec<u8>,
}

impl Reframer {
    /// `masked`: this stream comes from a client. Messages above
    /// `max_message` bytes are refused with 1009.
    pub fn new(masked: bool, max_message: u64) -> Reframer {
        Reframer {
            masked,
            binary_as_text: masked,
            max_message,
            head: [0; MAX_HEADER],
            head_len: 0,
            frame: None,
            message: None,
            utf8_carry: ([0; 4], 0),
            control: Control {
                opcode: 0,
                len: 0,
                payload: [0; 125],
            },
            deferred: Vec::new(),
        }
    }

    /// Whether the stream stands between frames (not inside a header or payload).
    #[cfg(test)]
    pub fn at_boundary(&self) -> bool {
        self.frame.is_none() && self.head_len == 0
    }

    /// Reads `input` up to its end or the first control frame or violation;
    /// appends the frames to pass on to `out`. Returns how much of `input` was
    /// consumed and why it stopped. After a violation the stream is broken.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, Event) {
        let mut pos = 0;
        loop {
            let Some(mut frame) = self.frame else {
                if pos == input.len() {
                    return (pos, Event::More);
                }
                match self.header(&input[pos..]) {
                    Ok((used, None)) => {
                        pos += used;
                        continue;
                    }
                    Ok((used, Some(mut frame))) => {
                        pos += used;
                        self.start(&frame, out);
                        self.frame = Some(frame);
                        // An empty data frame is complete already: pass it on now.
                        if frame.left == 0 && frame.opcode < OP_CLOSE {
                            if let Err(v) = self.data(&mut frame, &[], out) {
                                return (pos, v);
                            }
                            self.frame = None;
                        }
                        continue;
                    }
                    Err(v) => return (pos, v),
                }
            };
            if pos == input.len() && frame.left > 0 {
                return (pos, Event::More);
            }
            let take = (frame.left.min((input.len() - pos) as u64)) as usize;
            let chunk = &input[pos..pos + take];
            pos += take;
            if frame.opcode >= OP_CLOSE {
                let at = frame.seen as usize;
                for (i, b) in chunk.iter().enumerate() {
                    let k = frame.mask.map_or(0, |m| m[(at + i) % 4]);
                    self.control.payload[at + i] = b ^ k;
                }
                frame.seen += take as u64;
                frame.left -= take as u64;
                if frame.left == 0 {
                    self.frame = None;
                    self.control.opcode = frame.opcode;
                    self.control.len = frame.seen as u8;
                    return (pos, Event::Control(self.control.clone()));
                }
                self.frame = Some(frame);
                continue;
            }
            if let Err(v) = self.data(&mut frame, chunk, out) {
                return (pos, v);
            }
            self.frame = (frame.left > 0).then_some(frame);
        }
    }

    /// Takes header bytes from `input`; returns how many, and the frame once
    /// its header is complete and checked.
    fn header(&mut self, input: &[u8]) -> Result<(usize, Option<Frame>), Event> {
        let need = |h: &[u8]| -> usize {
            if h.len() < 2 {
                return 2;
            }
            let ext = match h[1] & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            2 + ext + if h[1] & 0x80 != 0 { 4 } else { 0 }
        };
        let mut used = 0;
        while self.head_len < need(&self.head[..self.head_len]) {
            if used == input.len() {
                return Ok((used, None));
            }
            self.head[self.head_len] = input[used];
            self.head_len += 1;
            used += 1;
        }
        let h = &self.head[..self.head_len];
        self.head_len = 0;
        let fin = h[0] & 0x80 != 0;
        let opcode = h[0] & 0x0f;
        let masked = h[1] & 0x80 != 0;
        let (len, at) = match h[1] & 0x7f {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => (
                u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
                10,
            ),
            n => (u64::from(n), 2),
        };
        let mask = masked.then(|| [h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let violation = |reason| {
            Err(Event::Violation {
                code: CLOSE_PROTOCOL,
                reason,
            })
        };
        if h[0] & 0x70 != 0 {
            return violation("reserved bits set (no extension was agreed)");
        }
        if masked != self.masked {
            return violation(if self.masked {
                "client frames must be masked"
            } else {
                "server frames must not be masked"
            });
        }
        match opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin || len > 125 {
                    return violation("control frames must be whole and at most 125 bytes");
                }
                if opcode == OP_CLOSE && len == 1 {
                    return violation("a close frame's payload cannot be one byte");
                }
            }
            OP_CONTINUATION if self.message.is_none() => {
                return violation("continuation frame outside a message")
            }
            OP_TEXT | OP_BINARY if self.message.is_some() => {
                return violation("new message inside a fragmented one")
            }
            OP_CONTINUATION | OP_TEXT | OP_BINARY => {}
            _ => return violation("unknown opcode"),
        }
        if opcode < OP_CLOSE {
            let (op, size) = self.message.unwrap_or((opcode, 0));
            let size = size.saturating_add(len);
            if size > self.max_message {
                return Err(Event::Violation {
                    code: CLOSE_TOO_BIG,
                    reason: "message too big",
                });
            }
            self.message = Some((op, size));
        }
        Ok((
            used,
            Some(Frame {
                fin,
                opcode,
                mask,
                left: len,
                seen: 0,
            }),
        ))
    }

    /// A data frame's header goes out as it came (a client's binary
    /// message as text); its payload follows as it comes.
    fn start(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        if frame.opcode >= OP_CLOSE {
            return;
        }
        let opcode = if frame.opcode == OP_BINARY && self.binary_as_text {
            OP_TEXT
        } else {
            frame.opcode
        };
        put_header(out, frame.fin, opcode, frame.left, frame.mask);
    }

    /// `frame`'s payload has all been passed on: ends its message if it was
    /// the last frame, then lets the deferred control frames out.
    fn end(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        if frame.fin {
            self.message = None;
        }
        out.append(&mut self.deferred);
        self.deferred = Vec::new();
    }

    /// Passes `chunk`, the next payload bytes of `frame`, on as they are
    /// (a binary message's checked to be UTF-8 first).
    fn data(&mut self, frame: &mut Frame, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Event> {
        let (op, _) = self.message.expect("a data frame belongs to a message");
        if self.binary_as_text && op == OP_BINARY {
            let last = frame.fin && frame.left == chunk.len() as u64;
            self.check_utf8(chunk, frame, last)?;
        }
        out.extend_from_slice(chunk);
        frame.seen += chunk.len() as u64;
        frame.left -= chunk.len() as u64;
        if frame.left == 0 {
            self.end(frame, out);
        }
        Ok(())
    }

    /// Payload bytes of the frame in passage that may be passed on without
    /// being looked at: all that is left of it, unless they are a binary
    /// message's, still to be checked. The relay moves them itself (see
    /// [`Reframer::pass`]), socket to socket.
    pub fn passable(&self) -> u64 {
        match self.message {
            Some((OP_BINARY, _)) if self.binary_as_text => 0,
            _ => self.owed(),
        }
    }

    /// Counts the next `n` payload bytes (at most [`Reframer::passable`]) as
    /// passed on by the caller, unchanged; appends what follows them when
    /// they end the frame (deferred control frames).
    pub fn pass(&mut self, n: u64, out: &mut Vec<u8>) {
        assert!(
            n > 0 && n <= self.passable(),
            "only payload bytes of the frame in passage are passed"
        );
        let mut frame = self.frame.expect("a frame in passage");
        frame.seen += n;
        frame.left -= n;
        if frame.left == 0 {
            self.end(&frame, out);
            self.frame = None;
        } else {
            self.frame = Some(frame);
        }
    }

    /// Payload bytes the output still owes to the data frame whose header
    /// went out; 0 at a frame boundary of the output.
    pub fn owed(&self) -> u64 {
        match self.frame {
            Some(f) if f.opcode < OP_CLOSE => f.left,
            _ => 0,
        }
    }

    /// A control frame of the relay's (encoded) for this direction's
    /// output: appended to `out` now, or, in the middle of a data frame,
    /// once that frame has passed.
    pub fn control(&mut self, frame: &[u8], out: &mut Vec<u8>) {
        if self.owed() > 0 {
            self.deferred.extend_from_slice(frame);
        } else {
            out.extend_from_slice(frame);
        }
    }

    /// Control frames waiting for the frame in passage to end.
    pub fn deferred(&self) -> usize {
        self.deferred.len()
    }

    /// Checks the next bytes of a binary message for UTF-8, across pieces.
    fn check_utf8(&mut self, chunk: &[u8], frame: &Frame, last: bool) -> Result<(), Event> {
        let bad = Event::Violation {
            code: CLOSE_UNSUPPORTED,
            reason: "CDP messages are UTF-8 text",
        };
        let mut buf = [0u8; 1024 + 4];
        let mut at = frame.seen as usize;
        for piece in chunk.chunks(1024) {
            let (carry, n) = self.utf8_carry;
            buf[..n].copy_from_slice(&carry[..n]);
            for (i, b) in piece.iter().enumerate() {
                buf[n + i] = b ^ frame.mask.map_or(0, |m| m[(at + i) % 4]);
            }
            at += piece.len();
            let text = &buf[..n + piece.len()];
            self.utf8_carry.1 = match std::str::from_utf8(text) {
                Ok(_) => 0,
                Err(e) if e.error_len().is_none() => {
                    let rest = &text[e.valid_up_to()..];
                    self.utf8_carry.0[..rest.len()].copy_from_slice(rest);
                    rest.len()
                }
                Err(_) => return Err(bad),
            };
        }
        if last && self.utf8_carry.1 != 0 {
            return Err(bad);
        }
        Ok(())
    }
}

/// Appends a frame header.
pub fn put_header(out: &mut Vec<u8>, fin: bool, opcode: u8, len: u64, mask: Option<[u8; 4]>) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let m = if mask.is_some() { 0x80 } else { 0 };
    match len {
        0..=125 => out.push(m | len as u8),
        126..=0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
}

/// Appends a whole control frame, masked with `mask` if given.
pub fn put_control(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    let payload = &payload[..payload.len().min(125)];
    put_header(out, true, opcode, payload.len() as u64, mask);
    let k = mask.unwrap_or([0; 4]);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
}

/// A close frame's payload: the code, then as much of `reason` as fits.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    p.extend_from_slice(&reason.as_bytes()[..end]);
    p
}

#[cfg(test)]
mod tests;
