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

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

mod chromium;
mod http;
mod sse;
mod zips;
// Each test file uses a different part of the harness.
#[allow(unused_imports)]
pub use chromium::*;
#[allow(unused_imports)]
pub use http::*;
#[allow(unused_imports)]
pub use sse::*;
#[allow(unused_imports)]
pub use zips::*;
// Ports, displays, polling with a deadline, TOML quoting: shared with corral's harness.
#[allow(unused_imports)]
pub use corral_testkit::{argv, free_display, free_port, q, wait_for, wait_until};

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
    /// `corralctl ARGS…` against this corral; panics with its stderr
    /// unless it succeeds.
    pub fn ctl(&self, args: &[&str]) {
        let out = Command::new(workspace_bin("corralctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "corralctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

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
        // The live view's lease in the scratch directory, never /run/corral.
        if !setup.api_args.iter().any(|a| a == "--live-lease-file") {
            args.push("--live-lease-file".into());
            args.push(dir.path().join("live-lease.json").to_string_lossy().into());
        }
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
        cmd.args(["--pid", "--ipc", "--fork", "--mount-proc"])
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
