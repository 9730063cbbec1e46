//! Harness for corral's integration tests: runs the real `corral` binary, as
//! PID 1 of a fresh PID namespace (`unshare --pid --fork --mount-proc`) or as
//! a plain child, and lets a test wait on what it prints and does.
//!
//! Nothing here sleeps to synchronise: corral's stdout/stderr are read by
//! threads into a shared log guarded by a `Condvar`, so a test waits for a
//! line or a log event to arrive; conditions with no event (a file's
//! contents, a pid in /proc) are polled with a deadline by [`wait_until`].
//! Dropping a [`Corral`] SIGKILLs whatever it started, even when a test fails.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use regex_lite::Regex;
use serde_json::Value;

mod corral;
mod ctl;
mod procfs;
// Each test file uses a different part of the harness.
#[allow(unused_imports)]
pub use corral::*;
#[allow(unused_imports)]
pub use ctl::*;
#[allow(unused_imports)]
pub use procfs::*;
// Ports, displays, polling with a deadline, TOML quoting: shared with corral-api's harness.
#[allow(unused_imports)]
pub use corral_testkit::{argv, free_display, free_port, q, wait_for, wait_until};

/// Long enough for a loaded CI machine, short enough to fail in reasonable time.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The `corral` binary under test.
pub fn corral_bin() -> &'static str {
    env!("CARGO_BIN_EXE_corral")
}

/// `corral-testprog`, next to the corral binary; built once if missing.
pub fn testprog() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = Path::new(corral_bin())
            .parent()
            .expect("corral binary has a directory")
            .join("corral-testprog");
        if !path.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "corral-testprog"])
                .status()
                .expect("run cargo build -p corral-testprog");
            assert!(status.success(), "cargo build -p corral-testprog failed");
        }
        assert!(path.exists(), "{} missing after build", path.display());
        path.to_string_lossy().into_owned()
    })
}

/// A file's contents, or "" if it does not exist (yet).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The lines of a file (none if it does not exist).
pub fn lines(path: &Path) -> Vec<String> {
    read(path).lines().map(str::to_string).collect()
}

/// One test's scratch directory.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("corral-it-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `path(name)` as a string, for interpolating into TOML.
    pub fn p(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    pub fn write_config(&self, text: &str) -> PathBuf {
        let path = self.path("supervisor.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// Runs corral as PID 1 of a new PID namespace with this config.
    pub fn start(&self, config: &str) -> Corral {
        self.start_with(config, Options::default())
    }

    pub fn start_with(&self, config: &str, opts: Options) -> Corral {
        let path = self.write_config(&self.with_socket(config));
        Corral::spawn(&path, opts)
    }

    /// This test's control socket (`control.sock` in the scratch directory).
    pub fn socket(&self) -> PathBuf {
        self.path("control.sock")
    }

    /// Gives the config this test's own control socket unless it names one,
    /// so tests running in parallel do not share the default path. The line
    /// goes right after `[supervisor]`, or in a new table at the end, so
    /// positions in the rest of the file stay as written.
    pub fn with_socket(&self, config: &str) -> String {
        if config.contains("control_socket") {
            return config.to_string();
        }
        let line = format!("control_socket = {:?}", self.p("control.sock"));
        match config.find("[supervisor]\n") {
            Some(i) => {
                let at = i + "[supervisor]\n".len();
                format!("{}{line}\n{}", &config[..at], &config[at..])
            }
            None => format!("{config}\n[supervisor]\n{line}\n"),
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// How to run corral.
pub struct Options {
    /// PID 1 of a new PID namespace (true) or a plain child of the test (false).
    pub pid1: bool,
    pub env: Vec<(String, String)>,
    /// Read corral's stdout (true) or leave it in a pipe nobody reads, like a
    /// container runtime whose log reader has stalled (false).
    pub read_stdout: bool,
    /// Start corral with exactly these signals ignored and blocked (all
    /// others at their default disposition), instead of whatever the test
    /// process has: inherited state that must not leak into programs.
    pub signals: Option<SignalState>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pid1: true,
            env: Vec::new(),
            read_stdout: true,
            signals: None,
        }
    }
}

/// Signal dispositions and mask to start corral with.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignalState {
    /// Signal numbers to ignore; glibc's reserved 32 and 33 included.
    pub ignored: &'static [i32],
    pub blocked: &'static [i32],
}

impl SignalState {
    /// Sets every disposition with the raw syscall: glibc's `sigaction`
    /// refuses to touch its reserved signals 32 and 33.
    ///
    /// # Safety
    /// Only between fork and exec (changes the whole process's signal state).
    unsafe fn apply(&self) {
        /// The kernel's `struct sigaction` (x86_64, aarch64).
        #[repr(C)]
        struct KernelSigaction {
            handler: usize,
            flags: u64,
            restorer: usize,
            mask: u64,
        }
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let handler = if self.ignored.contains(&sig) {
                libc::SIG_IGN
            } else {
                libc::SIG_DFL
            };
            let act = KernelSigaction {
                handler,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            // SAFETY: a valid struct for rt_sigaction with an 8-byte sigset.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &act as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                )
            };
        }
        let mask: u64 = self.blocked.iter().map(|s| 1u64 << (s - 1)).sum();
        // SAFETY: rt_sigprocmask with an 8-byte sigset.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &mask as *const u64,
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
}

/// Runs `corral --check -c CONFIG` (or other args); returns (code, stdout, stderr).
pub fn run_corral(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(corral_bin())
        .args(args)
        .env_remove("CORRAL_CONFIG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run corral");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `corral-testprog` command line with these steps, as a TOML array.
pub fn tp(steps: &[&str]) -> String {
    let mut words = vec![testprog()];
    words.extend_from_slice(steps);
    argv(&words)
}

/// A `sh -c SCRIPT` command as a TOML array.
pub fn sh(script: &str) -> String {
    argv(&["sh", "-c", script])
}
