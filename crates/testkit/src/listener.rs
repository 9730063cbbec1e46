//! Holding a real listener at its file-descriptor limit: the check every
//! corral listener's tests run (corral's probe port as PID 1, corral-cdp,
//! corral-snapshot, corral-api, corral-live) that accept errors are waited
//! out, not retried in a busy loop, and that it answers again afterwards.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The descriptor limit the listener is put under.
pub const NOFILE: u64 = 40;
/// Connections held: more than the limit allows it to accept.
const HOLD: usize = 80;
/// How long its CPU time is watched while it is out of descriptors.
const WINDOW: Duration = Duration::from_secs(3);
/// CPU time allowed over [`WINDOW`]: 5%; a busy loop spends ~100%.
const MAX_CPU: Duration = Duration::from_millis(150);

/// User + system CPU time of `pid` (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    let rest = &stat[stat.rfind(')').expect("stat has a comm") + 1..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|t| t.parse().expect("a tick count"))
        .collect();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis((f[0] + f[1]) * 1000 / hz)
}

/// Open descriptors of `pid`.
pub fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Sets `pid`'s RLIMIT_NOFILE (soft and hard) from outside, as
/// `prlimit --pid PID --nofile=N:N` does.
pub fn limit_nofile(pid: i32, n: u64) {
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: valid pointers; a null old-limit pointer is allowed.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit {pid}: {}", std::io::Error::last_os_error());
}

/// The status of `GET path` on `addr` (any status: the listener answered),
/// `None` if nothing answers within a second.
pub fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Puts the listener of process `pid` at `addr` under [`NOFILE`]
/// descriptors, holds [`HOLD`] connections to it, and asserts that its CPU
/// time stays near zero over [`WINDOW`] and that `GET path` is answered
/// again once the connections close.
pub fn assert_idle_when_out_of_fds(pid: i32, addr: SocketAddr, path: &str) {
    assert!(
        http_status(addr, path).is_some(),
        "{addr} does not answer before the test"
    );
    let before = open_fds(pid);
    assert!(
        (before as u64) < NOFILE - 5,
        "pid {pid} already has {before} descriptors"
    );
    limit_nofile(pid, NOFILE);
    let held: Vec<TcpStream> = (0..HOLD)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok())
        .collect();
    assert!(
        held.len() > NOFILE as usize,
        "only {} connections",
        held.len()
    );
    // It has taken what it can: every descriptor is in use.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (open_fds(pid) as u64) < NOFILE {
        assert!(
            Instant::now() < deadline,
            "pid {pid} never reached its descriptor limit ({} open)",
            open_fds(pid)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Past the first failure's log line and the first back-off steps.
    std::thread::sleep(Duration::from_millis(200));
    let start = cpu_time(pid);
    std::thread::sleep(WINDOW);
    let spent = cpu_time(pid) - start;
    assert!(
        spent <= MAX_CPU,
        "pid {pid} spent {spent:?} of CPU in {WINDOW:?} while out of descriptors: a busy loop"
    );
    drop(held);
    // The back-off is at most 1 s; the connections it holds close at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_status(addr, path).is_none() {
        assert!(
            Instant::now() < deadline,
            "{addr} does not answer again after the connections closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A binary under test, killed when dropped.
pub struct Running {
    pub child: std::process::Child,
}

impl Running {
    /// Starts `bin` with `args` (warnings only on stderr, no stdin or
    /// stdout) and waits until `GET path` on `addr` is answered.
    pub fn start<S: AsRef<std::ffi::OsStr>>(
        bin: &str,
        args: impl IntoIterator<Item = S>,
        addr: SocketAddr,
        path: &str,
    ) -> Running {
        let child = std::process::Command::new(bin)
            .args(args)
            .env("CORRAL_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn the binary under test");
        let me = Running { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_status(addr, path).is_none() {
            assert!(Instant::now() < deadline, "{addr} never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        me
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGTERM.
    pub fn term(&self) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
    }

    /// The exit code once it has exited (-1 if killed by a signal), or
    /// `None` after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return Some(s.code().unwrap_or(-1));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `request` (a whole HTTP/1.1 request) on a new connection and
/// returns what comes back until the server closes, read on a thread: the
/// caller can act (send SIGTERM) while the request is in flight.
pub fn send_in_background(
    addr: SocketAddr,
    request: String,
) -> std::thread::JoinHandle<std::io::Result<String>> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(request.as_bytes()).expect("send the request");
    std::thread::spawn(move || {
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
}
