//! The framing code against tungstenite: random messages (fragmented,
//! with control frames between fragments) are encoded by tungstenite, cut
//! at random boundaries, passed through a [`Reframer`], and what comes out
//! must decode with tungstenite to the same messages, end at a frame
//! boundary after every piece, and hand back the same control frames. The
//! relay's own control frames, added at random moments, come out whole,
//! in order, only between frames.

use std::io::{Cursor, Read, Write};

use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};

use super::*;

use corral_testkit::rng::Rng;

/// The frame tests' draws.
trait Draw {
    fn size(&mut self) -> usize;
    fn text(&mut self, n: usize) -> String;
}

impl Draw for Rng {
    /// Mostly small sizes, some past the 16- and 64-bit length encodings.
    fn size(&mut self) -> usize {
        match self.below(10) {
            0..=5 => self.below(126) as usize,
            6..=7 => 126 + self.below(70_000) as usize,
            8 => self.below(4) as usize,
            _ => 65_536 + self.below(200_000) as usize,
        }
    }
    /// UTF-8 text with multi-byte characters, so cuts fall inside them.
    fn text(&mut self, n: usize) -> String {
        const CHARS: [char; 6] = ['a', '{', 'é', '€', '𝄞', '"'];
        let mut s = String::new();
        while s.len() < n {
            s.push(CHARS[self.below(CHARS.len() as u64) as usize]);
        }
        s
    }
}

/// A Read + Write over memory, for tungstenite's decoder.
struct Mem(Cursor<Vec<u8>>);

impl Read for Mem {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Mem {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decodes a whole byte stream with tungstenite: masked frames as a server reads them.
fn decode(bytes: Vec<u8>, masked: bool) -> Vec<Message> {
    let role = if masked { Role::Server } else { Role::Client };
    let config = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let mut ws = WebSocket::from_raw_socket(Mem(Cursor::new(bytes)), role, Some(config));
    let mut got = Vec::new();
    loop {
        match ws.read() {
            Ok(m) => got.push(m),
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return got,
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => return got,
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => return got,
            // The end of the bytes, with no close frame: every message was read.
            Err(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => return got,
            Err(e) => panic!("tungstenite cannot decode the relay's output: {e}"),
        }
    }
}

/// Where each frame of `bytes` ends (walking the headers); the last one
/// still lacks `owed` payload bytes.
fn frame_ends_owing(bytes: &[u8], owed: u64) -> Vec<usize> {
    let mut ends = vec![0];
    let mut at = 0;
    while at < bytes.len() {
        let h = &bytes[at..];
        let (len, mut n) = match h[1] & 0x7f {
            126 => (u16::from_be_bytes([h[2], h[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(h[2..10].try_into().unwrap()) as usize,
                10,
            ),
            l => (l as usize, 2),
        };
        if h[1] & 0x80 != 0 {
            n += 4;
        }
        at += n + len;
        ends.push(at);
    }
    assert_eq!(
        at as u64,
        bytes.len() as u64 + owed,
        "the output ends inside a frame"
    );
    ends
}

fn encode(frame: Frame, masked: bool, rng: &mut Rng, into: &mut Vec<u8>) {
    let mut frame = frame;
    if masked {
        frame.header_mut().mask = Some((rng.u64() as u32).to_be_bytes());
    }
    frame.format(into).unwrap();
}

/// One whole text frame of `n` random bytes, masked or not.
fn text_frame(rng: &mut Rng, n: usize, masked: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let payload = rng.text(n).into_bytes();
    encode(
        Frame::message(payload, OpCode::Data(Data::Text), true),
        masked,
        rng,
        &mut bytes,
    );
    bytes
}

/// A control frame: opcode and payload.
type Ctl = (u8, Vec<u8>);

/// One random stream: its bytes, the messages it carries as they must come
/// out, and its control frames in order.
fn random_stream(rng: &mut Rng, masked: bool) -> (Vec<u8>, Vec<Message>, Vec<Ctl>) {
    let (mut bytes, mut want, mut controls) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..1 + rng.below(12) {
        let n = rng.size();
        let (op, payload, expect) = match rng.below(3) {
            0 if !masked => {
                let b = rng.bytes(n);
                (Data::Binary, b.clone(), Message::binary(b))
            }
            // From a client, binary that is UTF-8 comes out as text.
            0 => {
                let t = rng.text(n);
                (Data::Binary, t.clone().into_bytes(), Message::text(t))
            }
            _ => {
                let t = rng.text(n);
                (Data::Text, t.clone().into_bytes(), Message::text(t))
            }
        };
        want.push(expect);
        // Cut into 1..4 frames (at byte offsets, UTF-8 or not), with
        // control frames between some of them.
        let parts = 1 + rng.below(4) as usize;
        let mut cuts: Vec<usize> = (1..parts)
            .map(|_| rng.below(payload.len() as u64 + 1) as usize)
            .collect();
        cuts.sort();
        cuts.push(payload.len());
        let mut from = 0;
        for (i, &to) in cuts.iter().enumerate() {
            let opcode = if i == 0 {
                OpCode::Data(op)
            } else {
                OpCode::Data(Data::Continue)
            };
            let last = i + 1 == cuts.len();
            encode(
                Frame::message(payload[from..to].to_vec(), opcode, last),
                masked,
                rng,
                &mut bytes,
            );
            from = to;
            if rng.below(4) == 0 {
                let n = rng.below(126) as usize;
                let p = rng.bytes(n);
                let (op, f) = if rng.below(2) == 0 {
                    (OP_PING, Frame::ping(p.clone()))
                } else {
                    (OP_PONG, Frame::pong(p.clone()))
                };
                encode(f, masked, rng, &mut bytes);
                controls.push((op, p));
            }
        }
    }
    (bytes, want, controls)
}

/// What [`relay`] hands back: the output, the control frames read from the
/// input, and the pings the relay added of its own, in order.
struct Relayed {
    out: Vec<u8>,
    controls: Vec<Ctl>,
    own: Vec<Vec<u8>>,
}

/// Feeds `bytes` in random pieces and, at random moments (inside frames
/// too), has the relay add a ping of its own, as its pongs and keep-alive
/// pings are added.
fn relay(rng: &mut Rng, bytes: &[u8], masked: bool) -> Relayed {
    let mut r = Reframer::new(masked, crate::MAX_MESSAGE as u64);
    let (mut out, mut controls, mut own) = (Vec::new(), Vec::new(), Vec::new());
    let mut at = 0;
    while at < bytes.len() {
        // Piece sizes from 1 byte (every header cut) to whole messages.
        let max = [1, 3, 15, 200, 20_000, 300_000][rng.below(6) as usize];
        let piece = &bytes[at..(at + 1 + rng.below(max) as usize).min(bytes.len())];
        at += piece.len();
        let mut used = 0;
        while used < piece.len() {
            let (n, ev) = r.feed(&piece[used..], &mut out);
            used += n;
            match ev {
                Event::More => assert_eq!(used, piece.len()),
                Event::Control(c) => controls.push((c.opcode, c.payload().to_vec())),
                Event::Violation { reason, .. } => panic!("violation on a valid stream: {reason}"),
            }
        }
        // Output ends at a frame boundary after every piece, or inside a
        // frame passed whole, owing what has not arrived yet.
        frame_ends_owing(&out, r.owed());
        // Sometimes the relay moves payload bytes of a frame passed whole
        // itself (a splice): the bytes as they are, then `pass`.
        let passable = r.passable().min((bytes.len() - at) as u64);
        if passable > 0 && rng.below(2) == 0 {
            let n = 1 + rng.below(passable.min(100_000));
            // The bytes first: `pass` appends what follows them.
            out.extend_from_slice(&bytes[at..at + n as usize]);
            r.pass(n, &mut out);
            at += n as usize;
            frame_ends_owing(&out, r.owed());
        }
        if rng.below(3) == 0 {
            let payload = format!("own {}", own.len()).into_bytes();
            let mask = masked.then(|| (rng.u64() as u32).to_be_bytes());
            let mut ping = Vec::new();
            put_control(&mut ping, OP_PING, &payload, mask);
            let before = out.len();
            r.control(&ping, &mut out);
            // Out now between frames, held back while a frame is owed.
            assert_eq!(out.len() > before, r.owed() == 0);
            frame_ends_owing(&out, r.owed());
            own.push(payload);
        }
    }
    assert!(r.at_boundary());
    assert_eq!(r.deferred(), 0, "a held control frame never went out");
    Relayed { out, controls, own }
}

#[test]
fn random_streams_cut_at_random_boundaries_decode_to_the_same_messages() {
    for seed in 1..=400u64 {
        for masked in [false, true] {
            let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) + masked as u64);
            let (bytes, want, want_controls) = random_stream(&mut rng, masked);
            let Relayed { out, controls, own } = relay(&mut rng, &bytes, masked);
            // The relay's own pings come out whole, in order, between frames.
            let (pings, got): (Vec<Message>, Vec<Message>) = decode(out, masked)
                .into_iter()
                .partition(|m| matches!(m, Message::Ping(_)));
            let pings: Vec<Vec<u8>> = pings.into_iter().map(|m| m.into_data().to_vec()).collect();
            assert_eq!(pings, own, "seed {seed} masked {masked}: the relay's pings");
            assert_eq!(
                got.len(),
                want.len(),
                "seed {seed} masked {masked}: message count"
            );
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g == w,
                    "seed {seed} masked {masked}: message {i} differs ({} vs {} bytes)",
                    g.len(),
                    w.len()
                );
            }
            assert_eq!(
                controls, want_controls,
                "seed {seed} masked {masked}: control frames"
            );
        }
    }
}

#[test]
fn a_frame_that_arrives_whole_leaves_identical() {
    let mut rng = Rng::new(7);
    for masked in [false, true] {
        let bytes = text_frame(&mut rng, 60_000, masked);
        let mut out = Vec::new();
        let (n, ev) = Reframer::new(masked, 1 << 20).feed(&bytes, &mut out);
        assert_eq!((n, ev), (bytes.len(), Event::More));
        assert_eq!(out, bytes);
    }
}

#[test]
fn a_large_frame_leaves_as_it_arrives() {
    // 1 MB in 64 KiB pieces: each piece leaves at once, as a fragment.
    let mut rng = Rng::new(11);
    let text = rng.text(1 << 20);
    let mut bytes = Vec::new();
    encode(
        Frame::message(text.clone().into_bytes(), OpCode::Data(Data::Text), true),
        false,
        &mut rng,
        &mut bytes,
    );
    let mut r = Reframer::new(false, 1 << 21);
    let mut out = Vec::new();
    for piece in bytes.chunks(65_536) {
        let before = out.len();
        r.feed(piece, &mut out);
        assert!(
            out.len() - before >= piece.len().saturating_sub(MAX_HEADER),
            "a piece was held back"
        );
    }
    assert_eq!(decode(out, false), vec![Message::text(text)]);
}

#[test]
fn a_large_frame_fed_in_pieces_leaves_identical() {
    // Cut nowhere, FIN kept: chromedriver takes every frame for a message.
    let mut rng = Rng::new(13);
    for masked in [false, true] {
        let bytes = text_frame(&mut rng, 300_000, masked);
        let mut r = Reframer::new(masked, 1 << 20);
        let mut out = Vec::new();
        for piece in bytes.chunks(7_000) {
            let (n, ev) = r.feed(piece, &mut out);
            assert_eq!((n, ev), (piece.len(), Event::More));
        }
        assert!(out == bytes, "masked {masked}: the frame changed");
    }
}

fn violation(masked: bool, max: u64, frames: Vec<Frame>, rng: &mut Rng) -> Event {
    let mut bytes = Vec::new();
    for f in frames {
        encode(f, masked, rng, &mut bytes);
    }
    let mut r = Reframer::new(masked, max);
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let (n, ev) = r.feed(&bytes[at..], &mut out);
        at += n;
        match ev {
            Event::More if at == bytes.len() => return Event::More,
            Event::More | Event::Control(_) => {}
            v => return v,
        }
    }
}

#[test]
fn protocol_violations_are_reported_with_their_close_code() {
    let rng = &mut Rng::new(3);
    let text = |s: &str, fin| Frame::message(s.as_bytes().to_vec(), OpCode::Data(Data::Text), fin);
    let cont =
        |s: &str, fin| Frame::message(s.as_bytes().to_vec(), OpCode::Data(Data::Continue), fin);
    let code = |e: Event| match e {
        Event::Violation { code, .. } => code,
        other => panic!("expected a violation, got {other:?}"),
    };
    // A client that does not mask; Chromium masking.
    let mut unmasked = Vec::new();
    text("{}", true).format(&mut unmasked).unwrap();
    assert_eq!(
        code(Reframer::new(true, 100).feed(&unmasked, &mut Vec::new()).1),
        CLOSE_PROTOCOL
    );
    let mut masked = Vec::new();
    encode(text("{}", true), true, rng, &mut masked);
    assert_eq!(
        code(Reframer::new(false, 100).feed(&masked, &mut Vec::new()).1),
        CLOSE_PROTOCOL
    );
    // Continuation without a start; a new message inside one.
    assert_eq!(
        code(violation(true, 100, vec![cont("x", true)], rng)),
        CLOSE_PROTOCOL
    );
    assert_eq!(
        code(violation(
            true,
            100,
            vec![text("x", false), text("y", true)],
            rng
        )),
        CLOSE_PROTOCOL
    );
    // Too big, also when only the fragments add up.
    assert_eq!(
        code(violation(true, 10, vec![text("12345678901", true)], rng)),
        CLOSE_TOO_BIG
    );
    assert_eq!(
        code(violation(
            true,
            10,
            vec![text("123456", false), cont("78901", true)],
            rng
        )),
        CLOSE_TOO_BIG
    );
    assert_eq!(
        violation(
            true,
            11,
            vec![text("123456", false), cont("78901", true)],
            rng
        ),
        Event::More
    );
    // A fragmented ping; a reserved bit.
    let mut ping = Frame::ping(vec![1]);
    ping.header_mut().is_final = false;
    assert_eq!(code(violation(true, 100, vec![ping], rng)), CLOSE_PROTOCOL);
    let mut rsv = text("x", true);
    rsv.header_mut().rsv1 = true;
    assert_eq!(code(violation(true, 100, vec![rsv], rng)), CLOSE_PROTOCOL);
    // Binary from a client that is not UTF-8, even when only its end is cut off.
    let bin = |b: &[u8], op, fin| Frame::message(b.to_vec(), OpCode::Data(op), fin);
    assert_eq!(
        code(violation(
            true,
            100,
            vec![bin(&[0xff, 0xfe], Data::Binary, true)],
            rng
        )),
        CLOSE_UNSUPPORTED
    );
    assert_eq!(
        code(violation(
            true,
            100,
            vec![bin("é".as_bytes()[..1].as_ref(), Data::Binary, true)],
            rng
        )),
        CLOSE_UNSUPPORTED
    );
    let e = "é".as_bytes();
    assert_eq!(
        violation(
            true,
            100,
            vec![
                bin(&e[..1], Data::Binary, false),
                bin(&e[1..], Data::Continue, true)
            ],
            rng
        ),
        Event::More
    );
    // Binary from Chromium is passed on as it is.
    assert_eq!(
        violation(false, 100, vec![bin(&[0xff], Data::Binary, true)], rng),
        Event::More
    );
    // A close frame is handed back with its code.
    let close = Frame::close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 4000.into(),
        reason: "bye".into(),
    }));
    let mut b = Vec::new();
    encode(close, true, rng, &mut b);
    match Reframer::new(true, 100).feed(&b, &mut Vec::new()) {
        (n, Event::Control(c)) => {
            assert_eq!(n, b.len());
            assert_eq!(
                (c.opcode, c.close_code(), &c.payload()[2..]),
                (OP_CLOSE, Some(4000), &b"bye"[..])
            );
        }
        other => panic!("{other:?}"),
    }
}
