//! Running the real `corralctl` against a test's corral, and following
//! `corralctl tail -f`.

use super::*;

/// The `corralctl` binary, next to the corral binary; built once if it is
/// missing or older than its sources (it is another package, so
/// `cargo test -p corral` alone would not rebuild it).
pub fn corralctl_bin() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = Path::new(corral_bin())
            .parent()
            .expect("corral binary has a directory")
            .join("corralctl");
        let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("crates directory");
        let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let newest_source = ["corralctl", "proto"]
            .iter()
            .flat_map(|c| {
                let src = crates.join(c).join("src");
                std::fs::read_dir(src).into_iter().flatten().flatten()
            })
            .filter_map(|e| e.metadata().ok()?.modified().ok())
            .max();
        let stale = match (built, newest_source) {
            (None, _) => true,
            (Some(b), Some(s)) => s > b,
            (Some(_), None) => false,
        };
        if stale {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-p", "corralctl"]);
            if path.parent().and_then(|d| d.file_name()) == Some("release".as_ref()) {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build -p corralctl");
            assert!(status.success(), "cargo build -p corralctl failed");
        }
        assert!(path.exists(), "{} missing after build", path.display());
        path.to_string_lossy().into_owned()
    })
}

/// What a finished `corralctl` run left.
#[derive(Debug)]
pub struct Ctl {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ctl {
    /// Panics with everything it printed unless it exited with `code`.
    #[track_caller]
    pub fn expect(self, code: i32) -> Ctl {
        assert_eq!(self.code, code, "corralctl exit code: {self:#?}");
        self
    }

    /// `expect(0)`.
    #[track_caller]
    pub fn ok(self) -> Ctl {
        self.expect(0)
    }

    /// stdout parsed as JSON (`--json`).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("corralctl printed no JSON ({e}): {self:#?}"))
    }
}

/// A `corralctl` command talking to `socket` (not started).
pub fn ctl_command(socket: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(corralctl_bin());
    cmd.arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("CORRAL_SOCKET")
        .stdin(Stdio::null());
    cmd
}

/// Runs `corralctl --socket SOCKET ARGS…` to completion.
pub fn ctl(socket: &Path, args: &[&str]) -> Ctl {
    let out = ctl_command(socket, args).output().expect("run corralctl");
    Ctl {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Scratch {
    /// `corralctl` against this test's control socket.
    pub fn ctl(&self, args: &[&str]) -> Ctl {
        ctl(&self.socket(), args)
    }

    /// `corralctl --json status NAME…`: the programs, by name.
    pub fn status(&self, names: &[&str]) -> Vec<Value> {
        let mut args = vec!["--json", "status"];
        args.extend_from_slice(names);
        let out = self.ctl(&args).ok();
        match out.json() {
            Value::Array(v) => v,
            other => panic!("status --json is not an array: {other}"),
        }
    }

    /// One program's status (`--json`).
    pub fn status_of(&self, name: &str) -> Value {
        self.status(&[name]).remove(0)
    }

    /// Polls `corralctl status` until `name` is in `state`; returns its status.
    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.status_of(name);
            if last["state"] == state {
                return last;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {name} to be {state}: {last}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A program's main pid as `status --json` shows it (namespace pid).
pub fn st_pid(status: &Value) -> i32 {
    status["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no pid in {status}")) as i32
}

/// A long-running `corralctl` (`tail -f`) whose stdout lines are collected
/// as they come. Dropping it kills the process.
pub struct Follower {
    pub child: Child,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Follower {
    pub fn spawn(socket: &Path, args: &[&str]) -> Follower {
        let mut child = ctl_command(socket, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn corralctl");
        let out = child.stdout.take().expect("stdout");
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let shared = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                shared.0.lock().unwrap().push(line);
                shared.1.notify_all();
            }
        });
        Follower { child, lines }
    }

    /// Lines printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().clone()
    }

    /// Waits until at least `n` printed lines match `re`.
    pub fn wait_matches(&self, re: &str, n: usize, timeout: Duration) {
        let re = Regex::new(re).expect("regex");
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.0.lock().unwrap();
        loop {
            if lines.iter().filter(|l| re.is_match(l)).count() >= n {
                return;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {n} lines /{re}/ from corralctl: {lines:?}"
            );
            lines = self.lines.1.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
