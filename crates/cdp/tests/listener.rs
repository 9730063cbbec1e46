//! corral-cdp's listener, run as the real binary: out of file descriptors
//! it waits (no busy loop) and answers again once connections close.

use std::net::SocketAddr;

use corral_testkit::free_port;
use corral_testkit::listener::{assert_idle_when_out_of_fds, Running};

#[test]
fn out_of_descriptors_it_waits_and_recovers() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let bin = env!("CARGO_BIN_EXE_corral-cdp");
    // Nothing upstream: /json/version answers 502, which is an answer.
    let args = [format!("--listen={addr}"), "--upstream=127.0.0.1:9".into()];
    let cdp = Running::start(bin, args, addr, "/json/version");
    assert_idle_when_out_of_fds(cdp.pid(), addr, "/json/version");
}
