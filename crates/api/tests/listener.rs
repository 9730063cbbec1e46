//! corral-api's listener, run as the real binary: out of file descriptors
//! it waits (no busy loop) and answers again; on SIGTERM a request in
//! flight (a slow `/process/exec`) still gets its answer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use corral_testkit::free_port;
use corral_testkit::listener::{assert_idle_when_out_of_fds, send_in_background, Running};

fn start(dir: &std::path::Path, addr: SocketAddr) -> Running {
    let args = [
        format!("--listen={addr}"),
        format!("--fs-root={}", dir.display()),
        format!("--socket={}", dir.join("no-corral.sock").display()),
    ];
    Running::start(env!("CARGO_BIN_EXE_corral-api"), args, addr, "/healthz")
}

#[test]
fn out_of_descriptors_it_waits_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let api = start(dir.path(), addr);
    assert_idle_when_out_of_fds(api.pid(), addr, "/healthz");
}

#[test]
fn a_request_in_flight_at_sigterm_gets_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut api = start(dir.path(), addr);
    let marker = dir.path().join("running");
    let script = format!("touch {}; sleep 1.5; echo done", marker.display());
    let body = serde_json::json!({ "argv": ["sh", "-c", script] }).to_string();
    let started = Instant::now();
    let answer = send_in_background(
        addr,
        format!(
            "POST /process/exec HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    corral_testkit::wait_until("the command to run", Duration::from_secs(10), || {
        marker.exists()
    });
    api.term();
    let answer = answer
        .join()
        .unwrap()
        .expect("an answer, not a dropped connection");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("done"), "the command's output: {answer}");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(api.wait_exit(Duration::from_secs(10)), Some(0));
}
