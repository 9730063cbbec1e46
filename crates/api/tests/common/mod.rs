//! Harness for corral-api's integration tests: the real `corral` runs as
//! PID 1 of a fresh PID namespace (`unshare --pid --fork --mount-proc`) with
//! the real `corral-api` as one of its programs (ready when `/healthz`
//! answers), plus whatever helper programs a test adds; the tests speak
//! plain HTTP/1.1 to it over `std::net::TcpStream`.
//!
//! Nothing sleeps to synchronise: conditions are polled with a deadline
//! ([`wait_until`]), SSE streams are read by a thread into a shared list
//! guarded by a `Condvar` that a test waits on. Dropping an [`Env`] stops
//! corral (TERM, then KILL of PID 1, which takes the whole namespace with
//! it), even when a test fails.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Long enough for a loaded CI machine, short enough to fail in reasonable time.
pub const TIMEOUT: Duration = Duration::from_secs(30);

// ---- binaries -------------------------------------------------------------

/// `corral-api`, the binary of this package.
pub fn api_bin() -> &'static str {
    env!("CARGO_BIN_EXE_corral-api")
}

/// A binary of the workspace next to `corral-api` (same target dir and
/// profile); the three test binaries are built once if any is missing
/// (`cargo test -p corral-api` alone does not build other packages).
pub fn workspace_bin(name: &str) -> String {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = Path::new(api_bin()).parent().expect("target dir");
    let path = dir.join(name);
    let wanted = ["corral", "corral-testprog", "corralctl"];
    BUILT.get_or_init(|| {
        if wanted.iter().any(|b| !dir.join(b).exists()) {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args([
                "build",
                "-p",
                "corral-api",
                "-p",
                "corral",
                "-p",
                "corral-testprog",
            ]);
            cmd.args(["-p", "corralctl"]);
            if dir.file_name() == Some("release".as_ref()) {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(
                status.success(),
                "cargo build of the workspace binaries failed"
            );
        }
    });
    assert!(path.exists(), "{} missing after build", path.display());
    path.to_string_lossy().into_owned()
}

pub fn corral_bin() -> String {
    workspace_bin("corral")
}

pub fn testprog() -> String {
    workspace_bin("corral-testprog")
}

// ---- small helpers ----------------------------------------------------------

/// A TCP port on 127.0.0.1 that was free a moment ago, never handed out
/// before in this test binary.
pub fn free_port() -> u16 {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut taken = TAKEN.lock().unwrap();
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

/// An X display number with no server (no socket, no lock file), not handed
/// out before in this test binary.
pub fn free_display() -> u32 {
    static TAKEN: Mutex<Option<HashSet<u32>>> = Mutex::new(None);
    let mut taken = TAKEN.lock().unwrap();
    let taken = taken.get_or_insert_with(HashSet::new);
    let start = 200 + (std::process::id() % 50) * 8;
    (start..start + 400)
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
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A TOML basic string.
pub fn q(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

/// A TOML array of strings.
pub fn argv<S: AsRef<str>>(words: &[S]) -> String {
    let items: Vec<String> = words.iter().map(|w| q(w.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---- the environment: corral + corral-api ----------------------------------

/// How to set up an [`Env`].
pub struct Setup {
    /// Require a bearer token (written to a token file).
    pub token: bool,
    /// Extra `[programs.*]` tables (TOML) next to the API.
    pub programs: String,
    /// Extra arguments for corral-api (a `--socket` here replaces corral's).
    pub api_args: Vec<String>,
    /// Extra `[supervisor]` lines.
    pub supervisor: String,
    /// Listen on 0.0.0.0 (the tests still connect to 127.0.0.1).
    pub listen_any: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            token: true,
            programs: String::new(),
            api_args: Vec::new(),
            supervisor: String::new(),
            listen_any: false,
        }
    }
}

/// One test's world: a scratch directory holding `root/` (corral-api's
/// `--fs-root`), `outside/` (a sibling no request may touch), the control
/// socket and the config; corral running as PID 1 with corral-api ready.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub outside: PathBuf,
    pub socket: PathBuf,
    pub port: u16,
    pub token: Option<String>,
    pub corral: Corral,
}

impl Env {
    pub fn start(setup: Setup) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("corral-api-it-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), "outside the root\n").unwrap();
        let socket = dir.path().join("control.sock");
        let port = free_port();
        let mut args: Vec<String> = vec![
            api_bin().into(),
            "--listen".into(),
            format!(
                "{}:{port}",
                if setup.listen_any {
                    "0.0.0.0"
                } else {
                    "127.0.0.1"
                }
            ),
            "--fs-root".into(),
            root.to_string_lossy().into(),
        ];
        if !setup.api_args.iter().any(|a| a == "--socket") {
            args.push("--socket".into());
            args.push(socket.to_string_lossy().into());
        }
        let token = setup
            .token
            .then(|| format!("tok-{}-{port}", std::process::id()));
        if let Some(t) = &token {
            let file = dir.path().join("token");
            std::fs::write(&file, format!("{t}\n")).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            args.push("--token-file".into());
            args.push(file.to_string_lossy().into());
        }
        args.extend(setup.api_args);
        let config = format!(
            "[supervisor]\ncontrol_socket = {sock}\nstop_timeout = \"5s\"\n{extra}\n\n\
             [programs.api]\ncommand = {cmd}\nenv = {{ CORRAL_LOG_FORMAT = \"json\" }}\n\
             ready = {{ http = \"http://127.0.0.1:{port}/healthz\", timeout = \"20s\" }}\n\n{programs}\n",
            sock = q(&socket.to_string_lossy()),
            extra = setup.supervisor,
            cmd = argv(&args),
            programs = setup.programs,
        );
        let path = dir.path().join("supervisor.toml");
        std::fs::write(&path, config).unwrap();
        let corral = Corral::spawn(&path);
        let env = Env {
            dir,
            root,
            outside,
            socket,
            port,
            token,
            corral,
        };
        env.wait_healthy();
        env
    }

    /// A path in the scratch directory (outside the fs root).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(r) = try_request(self.port, "GET", "/healthz", &[], b"") {
                if r.status == 200 {
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!("corral-api did not answer /healthz\n{}", self.corral.dump());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn auth(&self) -> Vec<(String, String)> {
        match &self.token {
            Some(t) => vec![("Authorization".into(), format!("Bearer {t}"))],
            None => Vec::new(),
        }
    }

    /// A request with the token (when there is one) and these headers.
    pub fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut h = self.auth();
        h.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        request(self.port, method, path, &h, body)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.call("GET", path, &[], b"")
    }

    pub fn json(&self, method: &str, path: &str, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).unwrap();
        self.call(method, path, &[("Content-Type", "application/json")], &b)
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.json("POST", path, body)
    }

    pub fn put(&self, path: &str, body: &Value) -> Resp {
        self.json("PUT", path, body)
    }

    /// An SSE stream (with the token).
    pub fn sse(&self, path: &str) -> Sse {
        let h = self.auth();
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Sse::open(self.port, path, &h)
    }
}

/// A running corral (and the `unshare` around it).
pub struct Corral {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Corral {
    pub fn spawn(config: &Path) -> Corral {
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc"])
            .arg(corral_bin())
            .arg("-c")
            .arg(config)
            .env("CORRAL_LOG_FORMAT", "json")
            .env_remove("CORRAL_API_TOKEN")
            .env_remove("CORRAL_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn unshare corral");
        let log = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    log.lock().unwrap().push(line);
                }
            });
        }
        Corral { child, log }
    }

    /// Lines corral (and its programs, `[name]`-prefixed) printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn dump(&self) -> String {
        let lines = self.lines();
        let mut out = String::from("---- corral output ----\n");
        for l in lines.iter().rev().take(150).rev() {
            out.extend(l.chars().take(400));
            out.push('\n');
        }
        out
    }

    /// corral's host pid (the child of `unshare`).
    fn pid(&self) -> Option<i32> {
        let u = self.child.id();
        std::fs::read_to_string(format!("/proc/{u}/task/{u}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

impl Drop for Corral {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.dump());
        }
        // A graceful shutdown first (Xvfb removes its lock files, Chromium its
        // profile locks), bounded; then KILL of PID 1 ends the namespace.
        if let Some(pid) = self.pid() {
            // SAFETY: plain kill(2) of a positive pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // SAFETY: our child's own process group (unshare and corral).
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

// ---- HTTP/1.1 over TcpStream ------------------------------------------------

/// A whole answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// Asserts the status; returns self for chaining.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text());
        self
    }

    /// Asserts an error answer: this status, JSON `{error, detail}`.
    #[track_caller]
    pub fn expect_error(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "error content type"
        );
        let v = self.json();
        assert!(v["error"].is_string(), "no error field: {v}");
        assert!(v["detail"].is_string(), "no detail field: {v}");
        v
    }
}

/// A response body being read: by length, chunked, or until close.
pub struct Body {
    r: BufReader<TcpStream>,
    mode: Mode,
}

enum Mode {
    Length(u64),
    Chunked { left: u64, done: bool },
    Close,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.mode {
            Mode::Close => self.r.read(buf),
            Mode::Length(left) => {
                if *left == 0 {
                    return Ok(0);
                }
                let n = (*left).min(buf.len() as u64) as usize;
                let n = self.r.read(&mut buf[..n])?;
                if n == 0 {
                    // Fewer bytes than Content-Length promised: a broken answer.
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the body ended {left} bytes short of its Content-Length"),
                    ));
                }
                *left -= n as u64;
                Ok(n)
            }
            Mode::Chunked { left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut line = String::new();
                    self.r.read_line(&mut line)?;
                    let size = line.trim().split(';').next().unwrap_or("");
                    let size = u64::from_str_radix(size, 16).map_err(|_| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("chunk {line:?}"),
                        )
                    })?;
                    if size == 0 {
                        *done = true;
                        // Trailers end with an empty line.
                        loop {
                            line.clear();
                            if self.r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                                break;
                            }
                        }
                        return Ok(0);
                    }
                    *left = size;
                }
                let n = (*left).min(buf.len() as u64) as usize;
                let n = self.r.read(&mut buf[..n])?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                *left -= n as u64;
                if *left == 0 {
                    let mut crlf = [0u8; 2];
                    self.r.read_exact(&mut crlf)?;
                }
                Ok(n)
            }
        }
    }
}

/// Response headers, in order.
pub type Headers = Vec<(String, String)>;

/// Sends a request (`Connection: close`) and reads the status and headers.
pub fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Headers, Body)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    let mut has_length = false;
    for (k, v) in headers {
        has_length |= k.eq_ignore_ascii_case("content-length");
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_length && (!body.is_empty() || matches!(method, "POST" | "PUT")) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    // The server may answer (413, 401) before reading the whole body.
    let _ = s.write_all(body);
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("status line {line:?}"),
            )
        })?;
    let mut hs = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            hs.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let get = |n: &str| {
        hs.iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mode = if method == "HEAD" || status == 204 || status == 304 {
        Mode::Length(0)
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        Mode::Chunked {
            left: 0,
            done: false,
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse().ok()) {
        Mode::Length(n)
    } else {
        Mode::Close
    };
    Ok((status, hs, Body { r, mode }))
}

pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let (status, headers, mut b) = send(port, method, path, headers, body)?;
    let mut body = Vec::new();
    b.read_to_end(&mut body)?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// One request, the whole answer; panics when the connection fails.
#[track_caller]
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    try_request(port, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

// ---- Server-Sent Events -------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Event {
    pub event: String,
    pub data: String,
}

struct SseLog {
    events: Vec<Event>,
    ended: bool,
}

/// An open SSE stream whose events a thread collects as they arrive.
/// Dropping it closes the connection.
pub struct Sse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    shared: Arc<(Mutex<SseLog>, Condvar)>,
    stream: Option<TcpStream>,
    /// The body of a non-200 answer.
    pub error: Vec<u8>,
}

impl Sse {
    pub fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut h = vec![("Accept", "text/event-stream")];
        h.extend_from_slice(headers);
        let (status, headers, mut body) =
            send(port, "GET", path, &h, b"").unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let shared = Arc::new((
            Mutex::new(SseLog {
                events: Vec::new(),
                ended: false,
            }),
            Condvar::new(),
        ));
        if status != 200 {
            let mut error = Vec::new();
            let _ = body.read_to_end(&mut error);
            shared.0.lock().unwrap().ended = true;
            return Sse {
                status,
                headers,
                shared,
                stream: None,
                error,
            };
        }
        let stream = body.r.get_ref().try_clone().ok();
        let s2 = shared.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(body);
            let (mut event, mut data): (String, Vec<String>) = (String::new(), Vec::new());
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let l = line.strip_suffix('\n').unwrap_or(&line);
                if l.is_empty() {
                    if !data.is_empty() || !event.is_empty() {
                        let ev = Event {
                            event: if event.is_empty() {
                                "message".into()
                            } else {
                                event.clone()
                            },
                            data: data.join("\n"),
                        };
                        s2.0.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .events
                            .push(ev);
                        s2.1.notify_all();
                    }
                    event.clear();
                    data.clear();
                } else if let Some(v) = l.strip_prefix("event:") {
                    event = v.trim_start().to_string();
                } else if let Some(v) = l.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                }
                // Comments (":keepalive") and other fields are ignored.
            }
            s2.0.lock().unwrap_or_else(|p| p.into_inner()).ended = true;
            s2.1.notify_all();
        });
        Sse {
            status,
            headers,
            shared,
            stream,
            error: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn events(&self) -> Vec<Event> {
        self.shared.0.lock().unwrap().events.clone()
    }

    pub fn ended(&self) -> bool {
        self.shared.0.lock().unwrap().ended
    }

    /// Waits until `pick` finds something in the events so far.
    pub fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&[Event]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut log = self.shared.0.lock().unwrap();
        loop {
            if let Some(v) = pick(&log.events) {
                return v;
            }
            let now = Instant::now();
            assert!(
                now < deadline && !log.ended,
                "{} waiting for {what}; events so far: {:?}",
                if log.ended {
                    "stream ended"
                } else {
                    "timed out"
                },
                log.events
            );
            log = self.shared.1.wait_timeout(log, deadline - now).unwrap().0;
        }
    }

    /// Waits for an event named `event` whose data is `data`.
    pub fn wait_data(&self, event: &str, data: &str, timeout: Duration) {
        self.wait(&format!("{event}: {data:?}"), timeout, |evs| {
            evs.iter()
                .any(|e| e.event == event && e.data == data)
                .then_some(())
        })
    }

    /// The data of every `event` event so far, concatenated (for process
    /// output, whose chunks end with the line end that was read).
    pub fn output(&self, event: &str) -> String {
        concat(&self.events(), event)
    }

    /// Waits until the concatenated `event` data contains `needle`.
    pub fn wait_output(&self, event: &str, needle: &str, timeout: Duration) {
        self.wait(&format!("{event} output {needle:?}"), timeout, |evs| {
            concat(evs, event).contains(needle).then_some(())
        })
    }

    /// Waits until the server ends the stream; returns every event.
    pub fn wait_end(&self, timeout: Duration) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut log = self.shared.0.lock().unwrap();
        while !log.ended {
            let now = Instant::now();
            assert!(
                now < deadline,
                "the stream did not end; events: {:?}",
                log.events
            );
            log = self.shared.1.wait_timeout(log, deadline - now).unwrap().0;
        }
        log.events.clone()
    }
}

/// The data of the events named `event`, concatenated.
pub fn concat(events: &[Event], event: &str) -> String {
    events
        .iter()
        .filter(|e| e.event == event)
        .map(|e| e.data.as_str())
        .collect()
}

impl Drop for Sse {
    fn drop(&mut self) {
        if let Some(s) = &self.stream {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

// ---- filesystem snapshots -------------------------------------------------------

/// What a tree holds, for "nothing changed" checks: each path's type, mode,
/// owner and contents (files) or target (symlinks). Times are left out: a
/// directory's mtime moves when a staging directory comes and goes in it.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().to_path_buf();
            let head = format!("mode={:o} uid={} gid={}", md.mode(), md.uid(), md.gid());
            let what = if md.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                walk(base, &p, out);
                "dir".to_string()
            } else if md.is_file() {
                format!("file {:?}", std::fs::read(&p).unwrap())
            } else {
                "other".to_string()
            };
            out.insert(rel, format!("{head} {what}"));
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The whole scratch directory but the control socket and config (the fs
/// root, the sibling outside it, and anything else a request could reach).
pub fn world(env: &Env) -> BTreeMap<PathBuf, String> {
    let mut s = snapshot(env.dir.path());
    s.retain(|p, _| p != Path::new("control.sock"));
    s
}
