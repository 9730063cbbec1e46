//! The relay on real loopback TCP sockets, where large payloads go through
//! a pipe: byte-identical both ways and spliced, the same with splice
//! refused (the relay copies), and what happens when Chromium goes in the
//! middle of a spliced frame.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;

use std::sync::atomic::Ordering;

use super::SPLICED;
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

/// Reads `n` bytes while the other side writes.
async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    s.read_exact(&mut b).await.unwrap();
    b
}

/// Sends a `size`-byte text frame one way through the relay (from the
/// client, masked, or from Chromium) and checks it arrives unchanged.
async fn pass_one_way(
    client: &mut TcpStream,
    chromium: &mut TcpStream,
    from_client: bool,
    size: usize,
    seed: u64,
) {
    let bytes = encode(text(size, seed), from_client);
    let (src, dst) = if from_client {
        (client, chromium)
    } else {
        (chromium, client)
    };
    let (mut w, mut r) = (src.split().1, dst.split().0);
    let (_, got) = tokio::join!(w.write_all(&bytes), async {
        let mut got = vec![0; bytes.len()];
        r.read_exact(&mut got).await.unwrap();
        got
    });
    assert!(got == bytes, "from_client {from_client}: the frame changed");
}

#[tokio::test]
async fn large_frames_pass_byte_identical_both_ways_mostly_spliced() {
    let (mut client, mut chromium, relay) = start().await;
    for (from_client, size) in [(false, 20 << 20), (true, 8 << 20)] {
        let before = SPLICED.load(Ordering::Relaxed);
        pass_one_way(&mut client, &mut chromium, from_client, size, size as u64).await;
        // All but the first read's worth went through the pipe (other tests
        // running at once only add to the count).
        let spliced = SPLICED.load(Ordering::Relaxed) - before;
        assert!(
            spliced >= (size - 2 * CHUNK) as u64,
            "from_client {from_client}: only {spliced} of {size} bytes spliced"
        );
    }
    // A small frame after them still passes whole and identical.
    let small = encode(b"{\"id\":7}".to_vec(), false);
    chromium.write_all(&small).await.unwrap();
    assert_eq!(read_n(&mut client, small.len()).await, small);
    drop(client);
    assert_eq!(relay.await.unwrap(), "client disconnected");
}

#[tokio::test]
async fn where_splice_is_refused_the_relay_copies_and_stops_trying() {
    // The relay task runs on this thread (a current-thread runtime).
    super::REFUSE.set((true, 0));
    let (mut client, mut chromium, relay) = start().await;
    for (from_client, size) in [(false, 6 << 20), (true, 3 << 20), (false, 5 << 20)] {
        pass_one_way(
            &mut client,
            &mut chromium,
            from_client,
            size,
            size as u64 + 1,
        )
        .await;
    }
    // Refused once per direction: from then on each copies without asking.
    assert_eq!(super::REFUSE.get(), (true, 2));
    drop(client);
    assert_eq!(relay.await.unwrap(), "client disconnected");
}

#[tokio::test]
async fn chromium_gone_in_the_middle_of_a_spliced_frame_ends_the_clients_connection() {
    let (mut client, mut chromium, relay) = start().await;
    let bytes = encode(text(20 << 20, 3), false);
    chromium.write_all(&bytes[..5 << 20]).await.unwrap();
    drop(chromium);
    let mut got = Vec::new();
    let (why, read) = tokio::join!(relay, client.read_to_end(&mut got));
    read.unwrap();
    assert_eq!(why.unwrap(), "chromium disconnected");
    // Everything Chromium sent, as it sent it, then the end of the stream.
    assert!(got == bytes[..5 << 20], "{} bytes", got.len());
}

#[tokio::test]
async fn a_pong_waits_for_a_spliced_frame_then_follows_it() {
    let (mut client, mut chromium, relay) = start().await;
    let bytes = encode(text(300_000, 5), false);
    chromium.write_all(&bytes[..10_000]).await.unwrap();
    let mut got = read_n(&mut client, 10_000).await;
    let ping = super::super::tests::encode(Frame::ping(b"mid".to_vec()), true);
    client.write_all(&ping).await.unwrap();
    chromium.write_all(&bytes[10_000..]).await.unwrap();
    // The frame, unchanged, then the pong (2 + 3 bytes) right after it.
    got.extend_from_slice(&read_n(&mut client, bytes.len() - 10_000 + 5).await);
    assert!(got[..bytes.len()] == bytes[..], "the frame changed");
    assert_eq!(&got[bytes.len()..], &[0x8a, 3, b'm', b'i', b'd']);
    drop(client);
    assert_eq!(relay.await.unwrap(), "client disconnected");
}
