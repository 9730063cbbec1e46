//! The relay on real loopback TCP sockets, where large payloads go through
//! a pipe: byte-identical both ways, large fragments (the copying path never
//! makes one over a read), 1011 when Chromium goes in the middle.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

use super::super::tests::decode;

use crate::relay::{Relay, CHUNK};

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (a, b) = tokio::join!(TcpStream::connect(l.local_addr().unwrap()), l.accept());
    (a.unwrap(), b.unwrap().0)
}

/// The client's and Chromium's ends of a relay running on TCP sockets.
async fn start() -> (TcpStream, TcpStream, tokio::task::JoinHandle<String>) {
    let (client, relay_client) = tcp_pair().await;
    let (chromium, relay_up) = tcp_pair().await;
    let relay = tokio::spawn(async move {
        let (_stop, mut rx) = watch::channel(false);
        Relay::new(relay_client, Bytes::new(), relay_up, Bytes::new())
            .run(Duration::from_secs(3600), &mut rx)
            .await
    });
    (client, chromium, relay)
}

fn encode(payload: Vec<u8>, masked: bool) -> Vec<u8> {
    super::super::tests::encode(
        Frame::message(payload, OpCode::Data(Data::Text), true),
        masked,
    )
}

/// Deterministic UTF-8 text of `n` bytes that no stretch of repeats.
fn text(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            b'a' + (s % 26) as u8
        })
        .collect()
}

/// Every frame's payload length in a stream.
fn frame_sizes(bytes: &[u8]) -> Vec<u64> {
    let mut sizes = Vec::new();
    let mut at = 0;
    while at + 2 <= bytes.len() {
        let masked = bytes[at + 1] & 0x80 != 0;
        let (len, head) = match bytes[at + 1] & 0x7f {
            126 => (
                u64::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]])),
                4,
            ),
            127 => (
                u64::from_be_bytes(bytes[at + 2..at + 10].try_into().unwrap()),
                10,
            ),
            n => (u64::from(n), 2),
        };
        sizes.push(len);
        at += head + if masked { 4 } else { 0 } + len as usize;
    }
    assert_eq!(at, bytes.len(), "the stream ends at a frame boundary");
    sizes
}

/// Reads `n` bytes while the other side writes.
async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    s.read_exact(&mut b).await.unwrap();
    b
}

#[tokio::test]
async fn large_frames_pass_byte_identical_both_ways_in_large_fragments() {
    let (mut client, mut chromium, relay) = start().await;
    for (from_client, size) in [(false, 20 << 20), (true, 8 << 20)] {
        let payload = text(size, size as u64);
        let bytes = encode(payload.clone(), from_client);
        let (src, dst) = if from_client {
            (&mut client, &mut chromium)
        } else {
            (&mut chromium, &mut client)
        };
        let (mut w, mut r) = (src.split().1, dst.split().0);
        // The relay's output is as long as its input plus a header per fragment.
        let (_, got) = tokio::join!(w.write_all(&bytes), async {
            let mut got = Vec::new();
            let mut buf = vec![0; 1 << 20];
            loop {
                let n = r.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                if ends_a_message(&got) {
                    break got;
                }
            }
        });
        let sizes = frame_sizes(&got);
        assert!(
            sizes.iter().any(|&s| s > CHUNK as u64),
            "no fragment above one read: the payload was copied, not spliced ({} fragments)",
            sizes.len()
        );
        assert_eq!(
            decode(got, from_client),
            vec![Message::text(String::from_utf8(payload).unwrap())],
            "from_client {from_client}: the message differs"
        );
    }
    // A small frame after them still passes whole and identical.
    let small = encode(b"{\"id\":7}".to_vec(), false);
    chromium.write_all(&small).await.unwrap();
    assert_eq!(read_n(&mut client, small.len()).await, small);
    drop(client);
    assert_eq!(relay.await.unwrap(), "client disconnected");
}

/// Whether `bytes` ends exactly after a frame with FIN set.
fn ends_a_message(bytes: &[u8]) -> bool {
    let mut at = 0;
    let mut fin = false;
    while at + 2 <= bytes.len() {
        fin = bytes[at] & 0x80 != 0;
        let masked = bytes[at + 1] & 0x80 != 0;
        let (len, head) = match bytes[at + 1] & 0x7f {
            126 if at + 4 <= bytes.len() => (
                u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize,
                4,
            ),
            127 if at + 10 <= bytes.len() => (
                u64::from_be_bytes(bytes[at + 2..at + 10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return false,
            n => (n as usize, 2),
        };
        at += head + if masked { 4 } else { 0 } + len;
    }
    fin && at == bytes.len()
}

#[tokio::test]
async fn chromium_gone_in_the_middle_of_a_spliced_frame_closes_the_client_with_1011() {
    let (mut client, mut chromium, relay) = start().await;
    let bytes = encode(text(20 << 20, 3), false);
    chromium.write_all(&bytes[..5 << 20]).await.unwrap();
    drop(chromium);
    let mut got = Vec::new();
    let (why, read) = tokio::join!(relay, client.read_to_end(&mut got));
    read.unwrap();
    assert_eq!(why.unwrap(), "chromium disconnected");
    // Whole fragments of the 5 MiB that came, then the close between two.
    let sizes = frame_sizes(&got);
    assert!(sizes.iter().any(|&s| s > CHUNK as u64), "{sizes:?}");
    let got = decode(got, false);
    assert!(
        matches!(&got[..], [Message::Close(Some(c))] if u16::from(c.code) == 1011),
        "{got:?}"
    );
}
