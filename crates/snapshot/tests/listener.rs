//! corral-snapshot's listener, run as the real binary: out of file
//! descriptors it waits (no busy loop) and answers again; on SIGTERM a
//! request in flight (a `?fresh=1` harvest) still gets its answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use corral_testkit::free_port;
use corral_testkit::listener::{assert_idle_when_out_of_fds, Running};

const TOKEN: &str = "snapshot-listener-test-token-0123456789";

/// corral-snapshot serving on `addr` with `cdp` as its DevTools address and
/// a `--fresh-timeout` of `fresh`.
fn start(dir: &std::path::Path, addr: SocketAddr, cdp: SocketAddr, fresh: &str) -> Running {
    let token = dir.join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let args = [
        "serve".into(),
        format!("--listen={addr}"),
        format!("--cdp=http://{cdp}"),
        format!("--out={}", dir.join("state.json").display()),
        "--interval=1h".into(),
        format!("--fresh-timeout={fresh}"),
        format!("--token-file={}", token.display()),
    ];
    let bin = env!("CARGO_BIN_EXE_corral-snapshot");
    Running::start(bin, args, addr, "/healthz")
}

#[test]
fn out_of_descriptors_it_waits_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let nothing = SocketAddr::from(([127, 0, 0, 1], 9));
    let snap = start(dir.path(), addr, nothing, "5s");
    assert_idle_when_out_of_fds(snap.pid(), addr, "/healthz");
}

#[test]
fn a_request_in_flight_at_sigterm_gets_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    // A DevTools port that accepts and never answers.
    let devtools = TcpListener::bind("127.0.0.1:0").unwrap();
    let cdp = devtools.local_addr().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut snap = start(dir.path(), addr, cdp, "2s");
    // The periodic harvest starts at once and hangs on that port (10 s);
    // a ?fresh=1 request joins it and answers 504 after --fresh-timeout.
    let (_held, _) = devtools.accept().unwrap();
    // On one connection: /healthz answered shows it was accepted and is
    // being served; the slow request follows on it at once.
    let mut conn = TcpStream::connect(addr).unwrap();
    write!(conn, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while !first.ends_with(b"ok\n") {
        conn.read_exact(&mut byte).expect("the /healthz answer");
        first.push(byte[0]);
    }
    let started = Instant::now();
    write!(
        conn,
        "GET /api/snapshot?fresh=1 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let answer = std::thread::spawn(move || {
        let mut out = String::new();
        conn.read_to_string(&mut out).map(|_| out)
    });
    std::thread::sleep(Duration::from_millis(300));
    snap.term();
    let answer = answer
        .join()
        .unwrap()
        .expect("an answer, not a dropped connection");
    assert!(
        answer.starts_with("HTTP/1.1 504"),
        "the harvest's own answer: {answer}"
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(snap.wait_exit(Duration::from_secs(10)), Some(0));
}
