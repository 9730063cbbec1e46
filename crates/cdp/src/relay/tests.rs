//! The relay over in-memory sockets (tokio's duplex pipes): frames both
//! ways, pongs, close codes, 1011 in the middle of a frame, back-pressure,
//! shutdown. Decoding is tungstenite's.

use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

use super::*;

pub(super) fn encode(frame: Frame, masked: bool) -> Vec<u8> {
    let mut frame = frame;
    if masked {
        frame.header_mut().mask = Some([0x37, 0xfa, 0x21, 0x3d]);
    }
    let mut out = Vec::new();
    frame.format(&mut out).unwrap();
    out
}

fn text(s: &str) -> Frame {
    Frame::message(s.as_bytes().to_vec(), OpCode::Data(Data::Text), true)
}

/// Every message in `bytes`, decoded as the receiving side would.
pub(super) fn decode(bytes: Vec<u8>, masked: bool) -> Vec<Message> {
    struct Mem(Cursor<Vec<u8>>);
    impl std::io::Read for Mem {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            std::io::Read::read(&mut self.0, b)
        }
    }
    impl std::io::Write for Mem {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let role = if masked { Role::Server } else { Role::Client };
    let config = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let mut ws = WebSocket::from_raw_socket(Mem(Cursor::new(bytes)), role, Some(config));
    let mut got = Vec::new();
    while let Ok(m) = ws.read() {
        got.push(m);
    }
    got
}

struct Pipes {
    client: DuplexStream,
    chromium: DuplexStream,
    stop: watch::Sender<bool>,
    relay: JoinHandle<String>,
}

fn start(capacity: usize) -> Pipes {
    let (client, relay_client) = duplex(capacity);
    let (chromium, relay_up) = duplex(capacity);
    let (stop, mut rx) = watch::channel(false);
    let relay = tokio::spawn(async move {
        Relay::new(relay_client, Bytes::new(), relay_up, Bytes::new())
            .run(Duration::from_secs(3600), &mut rx)
            .await
    });
    Pipes {
        client,
        chromium,
        stop,
        relay,
    }
}

async fn read_exact(s: &mut DuplexStream, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    s.read_exact(&mut b).await.unwrap();
    b
}

async fn read_to_end(s: &mut DuplexStream) -> Vec<u8> {
    let mut b = Vec::new();
    s.read_to_end(&mut b).await.unwrap();
    b
}

#[tokio::test]
async fn frames_both_ways_pongs_and_the_clients_close() {
    let mut p = start(1 << 20);
    // A whole frame passes identical, both ways.
    let hello = encode(text(r#"{"id":1}"#), true);
    p.client.write_all(&hello).await.unwrap();
    assert_eq!(read_exact(&mut p.chromium, hello.len()).await, hello);
    let world = encode(text(r#"{"id":1,"result":{}}"#), false);
    p.chromium.write_all(&world).await.unwrap();
    assert_eq!(read_exact(&mut p.client, world.len()).await, world);
    // The client's ping is answered by the relay, not passed on.
    p.client
        .write_all(&encode(Frame::ping(b"p1".to_vec()), true))
        .await
        .unwrap();
    assert_eq!(
        read_exact(&mut p.client, 4).await,
        encode(Frame::pong(b"p1".to_vec()), false)
    );
    // The client's close goes on with its code, and comes back to it.
    let close = Frame::close(Some(CloseFrame {
        code: 4000.into(),
        reason: "bye".into(),
    }));
    p.client.write_all(&encode(close, true)).await.unwrap();
    assert_eq!(p.relay.await.unwrap(), "client closed (4000)");
    let to_client = decode(read_to_end(&mut p.client).await, false);
    assert!(
        matches!(&to_client[..], [Message::Close(Some(c))] if u16::from(c.code) == 4000),
        "{to_client:?}"
    );
    let to_chromium = decode(read_to_end(&mut p.chromium).await, true);
    assert!(
        matches!(&to_chromium[..], [Message::Close(Some(c))] if u16::from(c.code) == 4000),
        "{to_chromium:?}"
    );
}

#[tokio::test]
async fn chromium_gone_in_the_middle_of_a_frame_ends_the_clients_connection() {
    let mut p = start(1 << 20);
    let big = encode(text(&"x".repeat(1 << 20)), false);
    p.chromium.write_all(&big[..100_000]).await.unwrap();
    drop(p.chromium);
    let (why, got) = tokio::join!(p.relay, read_to_end(&mut p.client));
    assert_eq!(why.unwrap(), "chromium disconnected");
    // What came is relayed as it came, then the connection ends (the
    // client sees 1006): a close frame cannot go inside a frame, and
    // completing the frame would hand the client bytes Chromium never sent.
    assert!(got == big[..100_000], "{} bytes", got.len());
}

#[tokio::test]
async fn chromium_gone_between_frames_closes_the_client_with_1011() {
    let mut p = start(1 << 20);
    let hello = encode(text(r#"{"id":1,"result":{}}"#), false);
    p.chromium.write_all(&hello).await.unwrap();
    drop(p.chromium);
    let (why, got) = tokio::join!(p.relay, read_to_end(&mut p.client));
    assert_eq!(why.unwrap(), "chromium disconnected");
    let got = decode(got, false);
    assert!(
        matches!(&got[..], [Message::Text(_), Message::Close(Some(c))] if u16::from(c.code) == 1011),
        "{got:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_read_holds_chromium_back() {
    const PIPE: usize = 64 * 1024;
    let p = start(PIPE);
    let text_of = "y".repeat(10 << 20);
    let big = encode(text(&text_of), false);
    let written = Arc::new(AtomicUsize::new(0));
    let (mut chromium, w) = (p.chromium, written.clone());
    let writer = tokio::spawn(async move {
        for piece in big.chunks(8192) {
            chromium.write_all(piece).await.unwrap();
            w.fetch_add(piece.len(), Ordering::SeqCst);
        }
        chromium
    });
    // With the clock paused, this returns once every task waits: the writer
    // is blocked because the relay stopped reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let taken = written.load(Ordering::SeqCst);
    assert!(
        taken <= 2 * PIPE + CHUNK + frame::SLACK + 8192,
        "the relay took {taken} bytes for a client that reads nothing"
    );
    assert!(!writer.is_finished());
    // Once the client reads, the whole message arrives (then Chromium's end
    // closes, so the client's stream ends with 1011).
    let mut client = p.client;
    let reader = tokio::spawn(async move { read_to_end(&mut client).await });
    drop(writer.await.unwrap());
    let got = decode(reader.await.unwrap(), false);
    assert_eq!(got.len(), 2);
    assert!(
        got[0] == Message::text(text_of),
        "the message arrived whole"
    );
    assert!(matches!(&got[1], Message::Close(Some(c)) if u16::from(c.code) == 1011));
}

#[tokio::test]
async fn shutdown_closes_both_sides_with_1001() {
    let mut p = start(1 << 20);
    p.stop.send(true).unwrap();
    assert_eq!(p.relay.await.unwrap(), "bridge shutting down");
    for (side, masked) in [(&mut p.client, false), (&mut p.chromium, true)] {
        let got = decode(read_to_end(side).await, masked);
        assert!(
            matches!(&got[..], [Message::Close(Some(c))] if u16::from(c.code) == 1001),
            "{got:?}"
        );
    }
}

#[tokio::test]
async fn a_pong_waits_for_the_frame_passed_whole_then_follows_it() {
    let mut p = start(4 << 20);
    let body = "z".repeat(1 << 20);
    let big = encode(text(&body), false);
    p.chromium.write_all(&big[..300_000]).await.unwrap();
    // The frame is in passage once its first bytes reach the client.
    let mut seen = read_exact(&mut p.client, 100_000).await;
    p.client
        .write_all(&encode(Frame::ping(b"mid".to_vec()), true))
        .await
        .unwrap();
    // The relay has read the ping (its pong is deferred) once a later frame
    // from the client has reached Chromium.
    let hello = encode(text(r#"{"id":2}"#), true);
    p.client.write_all(&hello).await.unwrap();
    assert_eq!(read_exact(&mut p.chromium, hello.len()).await, hello);
    p.chromium.write_all(&big[300_000..]).await.unwrap();
    drop(p.chromium);
    let (why, rest) = tokio::join!(p.relay, read_to_end(&mut p.client));
    assert_eq!(why.unwrap(), "chromium disconnected");
    seen.extend_from_slice(&rest);
    let got = decode(seen, false);
    assert!(
        matches!(&got[..], [Message::Text(t), Message::Pong(pong), Message::Close(Some(c))]
            if t.as_str() == body && &pong[..] == b"mid" && u16::from(c.code) == 1011),
        "{:?}",
        got.iter().map(|m| format!("{m:.40?}")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_client_closing_in_the_middle_of_a_frame_gets_its_close_back_after_it() {
    let mut p = start(4 << 20);
    let body = "q".repeat(1 << 20);
    let big = encode(text(&body), false);
    p.chromium.write_all(&big[..200_000]).await.unwrap();
    let mut seen = read_exact(&mut p.client, 100_000).await;
    let close = Frame::close(Some(CloseFrame {
        code: 4001.into(),
        reason: "enough".into(),
    }));
    p.client.write_all(&encode(close, true)).await.unwrap();
    // The close goes on to Chromium, and back to the client, once
    // Chromium's frame has passed.
    p.chromium.write_all(&big[200_000..]).await.unwrap();
    let (why, rest, to_chromium) = tokio::join!(
        p.relay,
        read_to_end(&mut p.client),
        read_to_end(&mut p.chromium)
    );
    assert_eq!(why.unwrap(), "client closed (4001)");
    assert!(
        matches!(&decode(to_chromium, true)[..], [Message::Close(Some(c))] if u16::from(c.code) == 4001)
    );
    seen.extend_from_slice(&rest);
    let got = decode(seen, false);
    assert!(
        matches!(&got[..], [Message::Text(t), Message::Close(Some(c))]
            if t.as_str() == body && u16::from(c.code) == 4001),
        "{:?}",
        got.iter().map(|m| format!("{m:.40?}")).collect::<Vec<_>>()
    );
}

/// A relay whose client has closed (with `code`) while the first 200,000
/// bytes of a 1 MiB frame from Chromium are in passage.
async fn closed_mid_frame(code: u16) -> Pipes {
    let mut p = start(4 << 20);
    let big = encode(text(&"s".repeat(1 << 20)), false);
    p.chromium.write_all(&big[..200_000]).await.unwrap();
    read_exact(&mut p.client, 100_000).await;
    let close = Frame::close(Some(CloseFrame {
        code: code.into(),
        reason: "".into(),
    }));
    p.client.write_all(&encode(close, true)).await.unwrap();
    p
}

#[tokio::test(start_paused = true)]
async fn a_client_gone_after_its_close_is_noticed_while_chromiums_frame_stalls() {
    let p = closed_mid_frame(4003).await;
    drop(p.client);
    // Chromium sends nothing more; the client's end is seen, not waited out.
    let why = tokio::time::timeout(Duration::from_secs(5), p.relay).await;
    assert_eq!(
        why.expect("the relay ended").unwrap(),
        "client disconnected"
    );
}

#[tokio::test(start_paused = true)]
async fn a_close_waits_for_chromiums_frame_at_most_the_send_timeout() {
    let mut p = closed_mid_frame(4004).await;
    let started = tokio::time::Instant::now();
    let why = p.relay.await.unwrap();
    assert_eq!(
        why,
        "client closed (4004); chromium's frame did not end in time"
    );
    assert!(started.elapsed() >= SEND_TIMEOUT);
    // Chromium gets the close; the client's connection just ends.
    let to_chromium = decode(read_to_end(&mut p.chromium).await, true);
    assert!(
        matches!(&to_chromium[..], [Message::Close(Some(c))] if u16::from(c.code) == 4004),
        "{to_chromium:?}"
    );
}
