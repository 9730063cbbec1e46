//! The validated form of `supervisor.toml`.
//!
//! Everything downstream of [`load`] works with these types only: by the time a
//! [`Config`] exists, every key was known, every duration and signal parsed,
//! every `${VAR}` expanded, every dependency named exists and the graph has no
//! cycle. Parsing, expansion and validation live in the submodules so that each
//! can report *all* of its problems at once, with file:line:col.

mod diag;
mod expand;
mod graph;
mod parse;
mod values;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use corral_boot::signal::Sig;
pub use diag::{ConfigError, Diagnostic};
pub use graph::{start_order, StartOrder};
use regex_lite::Regex;

/// Default config path when neither `--config` nor `CORRAL_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/corral/supervisor.toml";

/// A whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (used in messages and by `reload`).
    pub path: PathBuf,
    pub supervisor: SupervisorSettings,
    /// Programs by name. A `BTreeMap` so every listing is in a stable order.
    pub programs: BTreeMap<String, ProgramConfig>,
}

/// The `[supervisor]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisorSettings {
    pub control_socket: PathBuf,
    /// Address of the `/livez` `/readyz` `/metrics` listener; `None` disables it.
    pub http: Option<SocketAddr>,
    /// Directory for per-program log files; `None` keeps output on stdout/stderr only.
    pub log_dir: Option<PathBuf>,
    /// Rotate a program's log file once it reaches this size.
    pub log_max_bytes: u64,
    /// How many rotated files (`NAME.log.1` …) to keep.
    pub log_backups: u32,
    /// Default TERM→KILL grace per program.
    pub stop_timeout: Duration,
    /// Bound on the whole graceful shutdown.
    pub shutdown_timeout: Duration,
    /// Default rlimits for every program (a program's own table overrides per resource).
    pub rlimits: Rlimits,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        SupervisorSettings {
            control_socket: PathBuf::from("/run/corral/control.sock"),
            http: None,
            log_dir: None,
            log_max_bytes: 10 * 1024 * 1024,
            log_backups: 3,
            stop_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            rlimits: Rlimits::default(),
        }
    }
}

/// The value of an rlimit given as `"unlimited"` (`RLIM_INFINITY` on Linux).
pub const RLIMIT_UNLIMITED: u64 = u64::MAX;

/// Resource limits, each as (soft, hard). `None` leaves the inherited value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rlimits {
    pub limits: BTreeMap<RlimitResource, (u64, u64)>,
}

impl Rlimits {
    /// This program's limits: the supervisor defaults, overridden per resource.
    pub fn merged(defaults: &Rlimits, own: &Rlimits) -> Rlimits {
        let mut limits = defaults.limits.clone();
        limits.extend(own.limits.iter().map(|(k, v)| (*k, *v)));
        Rlimits { limits }
    }
}

/// The rlimit names accepted in config (`nofile`, `nproc`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RlimitResource {
    Nofile,
    Nproc,
    Core,
    Memlock,
    Stack,
    As,
    Fsize,
    Cpu,
    Data,
    Rss,
    Msgqueue,
    Nice,
    Rtprio,
    Sigpending,
}

/// One `[programs.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramConfig {
    pub name: String,
    /// argv; `command[0]` is looked up in `PATH` like execvp does.
    pub command: Vec<String>,
    /// Extra environment on top of corral's own.
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// Drop to this user (name or numeric uid) before exec.
    pub user: Option<String>,
    /// Start after these are ready, stop before them; no restart-with.
    pub depends_on: Vec<String>,
    /// Like `depends_on`, and also stopped and restarted whenever they restart.
    pub binds_to: Vec<String>,
    pub ready: Option<ReadyCheck>,
    pub restart: RestartPolicy,
    pub backoff: Backoff,
    /// If it ends for good, corral shuts everything down and exits with its status.
    pub critical: bool,
    /// Give up (FATAL) after more than this many restarts within `restart_window`.
    /// `None` = never give up.
    pub max_restarts: Option<u32>,
    pub restart_window: Duration,
    /// This program's own rlimits, already merged with `[supervisor] rlimits`.
    pub rlimits: Rlimits,
    pub stop_signal: Sig,
    /// Who gets the stop signal: the whole process group, or (`mixed`) the
    /// main process only; SIGKILL at the deadline goes to the group either way.
    pub kill_mode: KillMode,
    pub stop_timeout: Duration,
    /// Runs to completion (exit 0) before every start; failure counts as a failed start.
    pub pre_start: Option<Vec<String>>,
    /// Runs before the stop signal is sent (e.g. asking Chromium to close
    /// itself over CDP, which flushes its cookies); bounded by half of
    /// `stop_timeout`, after which the stop signal goes out regardless.
    pub pre_stop: Option<Vec<String>>,
    pub autostart: bool,
    /// Runs once to completion; "ready" once it exited 0. Never restarted on success.
    pub oneshot: bool,
}

impl ProgramConfig {
    /// Everything this program waits for before it starts.
    pub fn requires(&self) -> impl Iterator<Item = &str> {
        self.depends_on
            .iter()
            .chain(self.binds_to.iter())
            .map(String::as_str)
    }
}

/// `kill_mode = "group" | "mixed"`, as systemd's KillMode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillMode {
    /// The stop signal goes to the whole process group.
    Group,
    /// The stop signal goes to the main process, which shuts its children
    /// down itself (Chromium: its network service must outlive the browser
    /// process long enough to write the cookies); whatever is left of the
    /// group is killed when the main process exits or the deadline passes.
    Mixed,
}

/// `restart = always | on-failure | never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// Exponential restart backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first quick restart; doubles each further quick restart.
    pub initial: Duration,
    /// Upper bound on the delay.
    pub max: Duration,
    /// A program that stayed up at least this long restarts at once, and its
    /// backoff starts again from `initial`.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(10),
        }
    }
}

/// `ready = { KIND = …, timeout = … }`. Exactly one kind per program.
#[derive(Debug, Clone)]
pub struct ReadyCheck {
    pub kind: ReadyKind,
    /// A start that is not ready within this long has failed.
    pub timeout: Duration,
}

impl PartialEq for ReadyCheck {
    fn eq(&self, other: &Self) -> bool {
        self.timeout == other.timeout && self.kind == other.kind
    }
}

/// Default readiness timeout.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub enum ReadyKind {
    /// A TCP connect to this address succeeds.
    Tcp(String),
    /// A GET of this `http://` URL answers 2xx or 3xx.
    Http(String),
    /// The X display's socket (`/tmp/.X11-unix/X<n>`) accepts a connection.
    X11(String),
    /// This path exists.
    File(PathBuf),
    /// A line of the program's output matches.
    Log(Regex),
    /// This command exits 0.
    Exec(Vec<String>),
}

impl PartialEq for ReadyKind {
    fn eq(&self, other: &Self) -> bool {
        use ReadyKind::*;
        match (self, other) {
            (Tcp(a), Tcp(b)) | (Http(a), Http(b)) | (X11(a), X11(b)) => a == b,
            (File(a), File(b)) => a == b,
            (Log(a), Log(b)) => a.as_str() == b.as_str(),
            (Exec(a), Exec(b)) => a == b,
            _ => false,
        }
    }
}

/// Parses a signal the way config does: `TERM`, `SIGTERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<Sig, String> {
    values::signal(s)
}

/// Reads, expands and validates the file at `path`, with the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    load_str(path, &text, &env)
}

/// Parses `text` as if read from `path`, expanding `${VAR}` from `env`.
pub fn load_str(
    path: &Path,
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    // Parsing includes the graph checks (unknown names, cycles): they need the
    // source positions, which the validated model does not keep.
    parse::parse(path, text, env)
}
