//! The running corral under test ([`Corral`]): spawned as PID 1 of a fresh
//! PID namespace or as a plain child; its stdout/stderr read by threads
//! into a shared log guarded by a `Condvar`, so a test waits for a line or a
//! JSON log event instead of sleeping; dropping it SIGKILLs whatever it
//! started. Plus the readers of those events ([`is`], [`ev_pid`], [`ev_time`]).

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use regex_lite::Regex;
use serde_json::Value;

use super::*;

/// Which of corral's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A line as kept by the harness (very long lines are cut to keep memory small).
#[derive(Debug, Clone)]
pub struct Line {
    pub stream: Stream,
    pub text: String,
    /// corral's own log lines (stderr), parsed.
    pub json: Option<Value>,
}

const KEEP_LINE: usize = 4096;

#[derive(Default)]
struct Log {
    lines: Vec<Line>,
    /// Reader threads that reached end of file.
    closed: usize,
}

struct Shared {
    log: Mutex<Log>,
    cv: Condvar,
}

/// A running corral (and the `unshare` around it in PID-1 mode).
pub struct Corral {
    child: Child,
    /// Host pid of corral itself (0 if it had already exited when looked for).
    pub pid: i32,
    pub pid1: bool,
    shared: Arc<Shared>,
    exit: Option<i32>,
    /// The read end of a stdout pipe nobody reads (`read_stdout: false`).
    _stalled: Option<OwnedFd>,
}

impl Corral {
    pub fn spawn(config: &Path, opts: Options) -> Corral {
        let mut cmd = if opts.pid1 {
            let mut c = Command::new("unshare");
            // --ipc: the System V shared memory of what it runs (x11vnc's,
            // when a test kills it) goes with the namespace, not into the host's.
            c.args(["--pid", "--ipc", "--fork", "--mount-proc", corral_bin()]);
            c
        } else {
            Command::new(corral_bin())
        };
        cmd.arg("-c")
            .arg(config)
            .env("CORRAL_LOG_FORMAT", "json")
            .env("CORRAL_LOG", "info")
            .envs(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            // Its own group, so Drop can kill unshare and corral together.
            .process_group(0);
        let mut stalled = None;
        if opts.read_stdout {
            cmd.stdout(Stdio::piped());
        } else {
            let mut fds = [0; 2];
            // SAFETY: pipe2 fills two fds on success.
            let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
            assert_eq!(rc, 0, "pipe2");
            // SAFETY: both fds are fresh and owned by nobody else.
            let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            cmd.stdout(Stdio::from(w));
            stalled = Some(r);
        }
        if let Some(state) = opts.signals {
            // SAFETY: only async-signal-safe syscalls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    state.apply();
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn corral");
        drop(cmd); // closes our copy of the stalled pipe's write end
        let shared = Arc::new(Shared {
            log: Mutex::new(Log::default()),
            cv: Condvar::new(),
        });
        let mut readers = 1;
        if let Some(out) = child.stdout.take() {
            reader(out, Stream::Stdout, shared.clone());
            readers += 1;
        }
        reader(child.stderr.take().unwrap(), Stream::Stderr, shared.clone());
        let mut me = Corral {
            pid: child.id() as i32,
            child,
            pid1: opts.pid1,
            shared,
            exit: None,
            _stalled: stalled,
        };
        // Count a missing stdout reader as already closed.
        me.shared.log.lock().unwrap().closed += 2 - readers;
        if opts.pid1 {
            let unshare = me.child.id();
            me.pid = wait_for("corral to be forked by unshare", TIMEOUT, || {
                let kids = read(Path::new(&format!(
                    "/proc/{unshare}/task/{unshare}/children"
                )));
                match kids.split_whitespace().next().and_then(|p| p.parse().ok()) {
                    Some(pid) => Some(pid),
                    // corral came and went already (a quick critical exit).
                    None if state(unshare as i32) == Some('Z') => Some(0),
                    None => None,
                }
            });
        }
        me
    }

    // ---- output -------------------------------------------------------

    pub fn lines(&self) -> Vec<Line> {
        self.shared.log.lock().unwrap().lines.clone()
    }

    /// corral's JSON log events so far.
    pub fn events(&self) -> Vec<Value> {
        let log = self.shared.log.lock().unwrap();
        log.lines.iter().filter_map(|l| l.json.clone()).collect()
    }

    /// Events with this `message` (and `program`, if given).
    pub fn events_of(&self, message: &str, program: Option<&str>) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| is(e, message, program))
            .collect()
    }

    /// Waits until `pick` finds something in the lines seen so far.
    pub fn wait_lines<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&[Line]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut log = self.shared.log.lock().unwrap();
        loop {
            if let Some(v) = pick(&log.lines) {
                return v;
            }
            let now = Instant::now();
            if now >= deadline || log.closed == 2 {
                drop(log);
                let why = if now >= deadline {
                    "timed out"
                } else {
                    "corral's output ended"
                };
                panic!("{why} waiting for {what}\n{}", self.dump());
            }
            log = self.shared.cv.wait_timeout(log, deadline - now).unwrap().0;
        }
    }

    /// Waits for a line on `stream` matching `re`; returns it.
    pub fn wait_line(&self, stream: Stream, re: &str, timeout: Duration) -> String {
        let re = Regex::new(re).expect("regex");
        self.wait_lines(&format!("{stream:?} line /{re}/"), timeout, |lines| {
            lines
                .iter()
                .find(|l| l.stream == stream && re.is_match(&l.text))
                .map(|l| l.text.clone())
        })
    }

    /// Waits until at least `n` events with this message (and program) exist;
    /// returns the first `n`.
    pub fn wait_events(
        &self,
        message: &str,
        program: Option<&str>,
        n: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        let what = format!("{n} {message:?} events of {program:?}");
        self.wait_lines(&what, timeout, |lines| {
            let found: Vec<Value> = lines
                .iter()
                .filter_map(|l| l.json.as_ref())
                .filter(|e| is(e, message, program))
                .take(n)
                .cloned()
                .collect();
            (found.len() == n).then_some(found)
        })
    }

    /// Waits for the first event with this message (and program).
    pub fn wait_event(&self, message: &str, program: Option<&str>, timeout: Duration) -> Value {
        self.wait_events(message, program, 1, timeout).remove(0)
    }

    /// Waits for an event whose message contains `text` (and program matches).
    pub fn wait_message(&self, text: &str, program: Option<&str>, timeout: Duration) -> Value {
        self.wait_lines(
            &format!("a message containing {text:?}"),
            timeout,
            |lines| {
                lines
                    .iter()
                    .filter_map(|l| l.json.as_ref())
                    .find(|e| {
                        e["message"].as_str().is_some_and(|m| m.contains(text))
                            && program.is_none_or(|p| e["program"] == p)
                    })
                    .cloned()
            },
        )
    }

    /// Everything seen, for failure messages.
    pub fn dump(&self) -> String {
        let log = self.shared.log.lock().unwrap();
        let mut out = String::from("---- corral output ----\n");
        for l in log.lines.iter().rev().take(200).rev() {
            let tag = match l.stream {
                Stream::Stdout => "out",
                Stream::Stderr => "err",
            };
            let text: String = l.text.chars().take(300).collect();
            out.push_str(&format!("{tag}| {text}\n"));
        }
        out
    }

    // ---- processes ----------------------------------------------------

    /// Host pid of the process that corral's log calls `ns_pid` (namespace pid
    /// in PID-1 mode, the same pid otherwise).
    pub fn host_pid(&self, ns_pid: i32) -> i32 {
        wait_for(
            &format!("host pid of namespace pid {ns_pid}"),
            TIMEOUT,
            || self.try_host_pid(ns_pid),
        )
    }

    /// [`Corral::host_pid`] if that process exists now.
    pub fn try_host_pid(&self, ns_pid: i32) -> Option<i32> {
        if !self.pid1 {
            return alive(ns_pid).then_some(ns_pid);
        }
        let ns = pid_ns(self.pid)?;
        all_pids().into_iter().find(|&p| {
            pid_ns(p).as_ref() == Some(&ns)
                && nspid(p).and_then(|v| v.last().copied()) == Some(ns_pid)
                && alive(p)
        })
    }

    /// Host pid of the program's latest start (from corral's "started" event).
    pub fn pid_of(&self, program: &str) -> i32 {
        let started = self.wait_event("started", Some(program), TIMEOUT);
        let last = self
            .events_of("started", Some(program))
            .pop()
            .unwrap_or(started);
        self.host_pid(last["pid"].as_i64().expect("pid field") as i32)
    }

    /// Host pids of every process corral is responsible for: its pid
    /// namespace in PID-1 mode, else its descendants. Not corral itself.
    pub fn processes(&self) -> Vec<i32> {
        if self.pid1 {
            let Some(ns) = pid_ns(self.pid) else {
                return Vec::new();
            };
            all_pids()
                .into_iter()
                .filter(|&p| p != self.pid && pid_ns(p).as_ref() == Some(&ns))
                .collect()
        } else {
            descendants(self.pid)
        }
    }

    /// Zombies among [`Corral::processes`].
    pub fn zombies(&self) -> Vec<i32> {
        self.processes()
            .into_iter()
            .filter(|&p| state(p) == Some('Z'))
            .collect()
    }

    pub fn signal(&self, sig: i32) {
        assert!(self.pid > 0, "corral's pid is unknown (it exited at once)");
        // SAFETY: plain kill(2) of a positive pid.
        unsafe { libc::kill(self.pid, sig) };
    }

    pub fn term(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Is corral still running (not exited, not a zombie)?
    pub fn alive(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        matches!(state(self.pid), Some(s) if s != 'Z' && s != 'X')
    }

    /// Waits for corral (in PID-1 mode: `unshare`, which passes corral's exit
    /// code on) to exit; returns its exit code (128+N if killed by signal N).
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        if let Some(code) = self.exit {
            return code;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                use std::os::unix::process::ExitStatusExt;
                let code = status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                self.exit = Some(code);
                return code;
            }
            if Instant::now() >= deadline {
                panic!("corral did not exit within {timeout:?}\n{}", self.dump());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until both output streams are closed (everything was read).
    pub fn wait_output_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut log = self.shared.log.lock().unwrap();
        while log.closed < 2 {
            let now = Instant::now();
            assert!(now < deadline, "corral's output did not close");
            log = self.shared.cv.wait_timeout(log, deadline - now).unwrap().0;
        }
    }
}

impl Drop for Corral {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.dump());
        }
        if self.exit.is_none() {
            if !self.pid1 {
                // Programs (own process groups) and orphans do not die with corral.
                for p in descendants(self.pid) {
                    // SAFETY: plain kill(2)/killpg.
                    unsafe {
                        libc::kill(-p, libc::SIGKILL);
                        libc::kill(p, libc::SIGKILL);
                    }
                }
            }
            // PID 1 of the namespace: the kernel kills the rest of it.
            // SAFETY: plain kill(2) of positive pids / our child's group.
            unsafe {
                if self.pid > 0 {
                    libc::kill(self.pid, libc::SIGKILL);
                }
                libc::kill(-(self.child.id() as i32), libc::SIGKILL);
            }
            let _ = self.child.wait();
        }
    }
}

fn reader(stream: impl Read + Send + 'static, which: Stream, shared: Arc<Shared>) {
    std::thread::spawn(move || {
        let mut r = BufReader::with_capacity(64 * 1024, stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            buf.truncate(KEEP_LINE);
            let text = String::from_utf8_lossy(&buf).into_owned();
            let json = if which == Stream::Stderr && text.starts_with('{') {
                serde_json::from_str(&text).ok()
            } else {
                None
            };
            let mut log = shared.log.lock().unwrap();
            log.lines.push(Line {
                stream: which,
                text,
                json,
            });
            shared.cv.notify_all();
        }
        shared.log.lock().unwrap().closed += 1;
        shared.cv.notify_all();
    });
}

/// Does event `e` have this message (and program)?
pub fn is(e: &Value, message: &str, program: Option<&str>) -> bool {
    e["message"] == message && program.is_none_or(|p| e["program"] == p)
}

/// The namespace pid corral logged in an event.
pub fn ev_pid(e: &Value) -> i32 {
    e["pid"].as_i64().expect("event has a pid") as i32
}

/// An event's timestamp (RFC 3339, UTC) as seconds since the epoch.
pub fn ev_time(e: &Value) -> f64 {
    let ts = e["timestamp"].as_str().expect("timestamp");
    let (date, time) = ts.trim_end_matches('Z').split_once('T').expect("T");
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let t: Vec<f64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days as f64 * 86400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2]
}
