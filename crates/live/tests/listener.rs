//! corral-live's listener, run as the real binary: out of file descriptors
//! it waits (no busy loop) and answers again once connections close.

use std::net::SocketAddr;

use corral_testkit::free_port;
use corral_testkit::listener::{assert_idle_when_out_of_fds, Running};

#[test]
fn out_of_descriptors_it_waits_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vnc.html"), "<html></html>").unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "live-listener-test-token-0123456789").unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args = [
        format!("--listen={addr}"),
        "--upstream=127.0.0.1:9".into(),
        format!("--web={}", dir.path().display()),
        format!("--token-file={}", token.display()),
    ];
    let live = Running::start(env!("CARGO_BIN_EXE_corral-live"), args, addr, "/");
    assert_idle_when_out_of_fds(live.pid(), addr, "/");
}
