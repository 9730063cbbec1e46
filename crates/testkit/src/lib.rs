//! What the integration-test harnesses of `corral` and `corral-api` share:
//! free ports and X displays that no other test of the same binary was
//! given, deadline-bounded polling, and TOML quoting for generated configs;
//! for every listener's tests, the descriptor-exhaustion check
//! ([`listener`]); and a seeded random source for fuzz tests ([`rng::Rng`]).
//!
//! Nothing here sleeps to synchronise: [`wait_until`] and [`wait_for`] poll a
//! real condition and fail with what they waited for once the deadline passes.

pub mod listener;
pub mod rng;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often [`wait_until`] and [`wait_for`] look again.
const POLL: Duration = Duration::from_millis(5);

/// A TCP port on 127.0.0.1 that was free a moment ago and was never handed
/// out before in this test binary: tests run in parallel threads, and a port
/// given to one and not yet bound must not be given to another.
pub fn free_port() -> u16 {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if taken.insert(port) {
            return port;
        }
    }
}

/// An X display number with no server (no socket, no lock file) that was
/// never handed out before in this test binary. The search starts at a
/// place that depends on the pid, so two test binaries rarely race for one.
pub fn free_display() -> u32 {
    static TAKEN: Mutex<Option<HashSet<u32>>> = Mutex::new(None);
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    let start = 50 + (std::process::id() % 100) * 8;
    (start..start + 800)
        .find(|n| {
            !taken.contains(n)
                && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .inspect(|n| {
            taken.insert(*n);
        })
        .expect("a free X display")
}

/// Polls `cond` until it holds; panics with `what` after `timeout`.
/// For conditions that have no event to wait on (file contents, /proc).
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    wait_for(what, timeout, || cond().then_some(()))
}

/// Like [`wait_until`] for a value.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// Stops `child` the way a supervisor would: SIGTERM, up to `grace` for it
/// to exit, then SIGKILL; reaped either way. For programs that clean up on
/// SIGTERM what a SIGKILL leaves behind (x11vnc's System V shared memory).
pub fn stop(child: &mut std::process::Child, grace: Duration) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill(2) on our own, not yet reaped, child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A TOML basic string holding `s` (JSON strings are valid TOML ones).
pub fn q(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

/// A TOML array of strings.
pub fn argv<S: AsRef<str>>(words: &[S]) -> String {
    let items: Vec<String> = words.iter().map(|w| q(w.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice() {
        let ports: HashSet<u16> = (0..200).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 200);
    }

    #[test]
    fn toml_quoting_escapes() {
        assert_eq!(q("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(argv(&["x", "y z"]), r#"["x", "y z"]"#);
    }

    #[test]
    fn wait_for_returns_the_value_and_times_out_with_the_reason() {
        let mut n = 0;
        assert_eq!(
            wait_for("n to reach 3", Duration::from_secs(5), || {
                n += 1;
                (n >= 3).then_some(n)
            }),
            3
        );
        let err =
            std::panic::catch_unwind(|| wait_until("never", Duration::from_millis(20), || false))
                .unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("timed out waiting for never"), "{msg}");
    }
}
