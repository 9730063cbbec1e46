//! The control-socket protocol: what `corralctl`, `corral-api` and any other
//! client say to `corral`, and what it answers. No process code here, only
//! types and framing, so every client shares one definition.
//!
//! On the wire, each message is a frame: a 4-byte big-endian length, then
//! that many bytes of JSON. Frames are capped at [`MAX_FRAME`] so a confused
//! or hostile client cannot make the supervisor allocate without bound. Every
//! frame carries the protocol version `v`; a server answers a version it does
//! not speak with [`ErrorCode::BadRequest`] and closes.
//!
//! A connection is a sequence of request/response pairs, except `tail` with
//! `follow`, whose response is a stream of [`Response::Lines`] frames until
//! the client closes.

pub mod frame;

use serde::{Deserialize, Serialize};

/// The protocol version spoken by this crate.
pub const VERSION: u32 = 1;

/// Largest frame accepted in either direction (1 MiB).
pub const MAX_FRAME: usize = 1 << 20;

/// Default control-socket path (`CORRAL_SOCKET` overrides it in clients).
pub const DEFAULT_SOCKET: &str = "/run/corral/control.sock";

/// A request as framed on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    pub v: u32,
    pub request: Request,
}

/// A response as framed on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseFrame {
    pub v: u32,
    pub response: Response,
}

/// Which programs a verb applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Targets {
    All,
    Names(Vec<String>),
}

/// How a state-changing verb waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wait {
    /// Answer only once the target state is reached (or failed).
    pub wait: bool,
    /// Give up waiting after this long (the action itself goes on).
    pub timeout_ms: u64,
}

impl Default for Wait {
    fn default() -> Self {
        Wait {
            wait: true,
            timeout_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Programs' states; an empty list means all.
    Status {
        names: Vec<String>,
    },
    /// Start (and everything they need), wait until ready.
    Start {
        targets: Targets,
        wait: Wait,
    },
    /// Stop (everything that needs them first), wait until down.
    Stop {
        targets: Targets,
        wait: Wait,
    },
    /// Stop then start (with their `binds_to` dependents), wait until ready.
    Restart {
        targets: Targets,
        wait: Wait,
    },
    /// Send a signal (name like "HUP" or "SIGHUP", or a number) to each
    /// program's process group.
    Signal {
        signal: String,
        targets: Targets,
    },
    Pid {
        name: String,
    },
    /// The last `lines` lines of output; with `follow`, then every new line.
    Tail {
        name: String,
        lines: usize,
        follow: bool,
    },
    /// Are all critical programs ready?
    Health,
    /// Re-read the config file and apply what changed.
    Reload,
    /// Graceful shutdown of everything; the connection closes when corral exits.
    Shutdown,
    /// Answered by the supervisor loop itself: it is alive.
    Ping,
}

/// A program's state as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Stopped,
    Starting,
    Running,
    Backoff,
    Stopping,
    Exited,
    Done,
    Fatal,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "STOPPED",
            State::Starting => "STARTING",
            State::Running => "RUNNING",
            State::Backoff => "BACKOFF",
            State::Stopping => "STOPPING",
            State::Exited => "EXITED",
            State::Done => "DONE",
            State::Fatal => "FATAL",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramStatus {
    pub name: String,
    pub state: State,
    /// Main process (or pre_start) pid, while one runs.
    pub pid: Option<i32>,
    /// Since the current process started.
    pub uptime_ms: Option<u64>,
    /// When the current process started, as Unix time.
    pub start_time_unix: Option<f64>,
    pub restarts: u64,
    /// Ready as dependents see it (RUNNING, or DONE for a oneshot).
    pub ready: bool,
    pub critical: bool,
    pub autostart: bool,
    /// Why it is not running, when known ("exited: exit status 1", …).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed, oversized or wrong-version frame; bad arguments.
    BadRequest,
    UnknownProgram,
    /// The action was tried and did not succeed (start failed, FATAL, …).
    Failed,
    /// Waiting for the target state took longer than asked.
    Timeout,
    /// corral is shutting down and takes no new actions.
    ShuttingDown,
    /// `reload` found the new config invalid; nothing changed.
    InvalidConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    Status {
        programs: Vec<ProgramStatus>,
        shutting_down: bool,
    },
    /// A state-changing verb finished; the named programs as they are now.
    Done {
        programs: Vec<ProgramStatus>,
    },
    Pid {
        pid: i32,
    },
    /// Output lines (one frame per batch; many frames when following).
    Lines {
        lines: Vec<String>,
    },
    Health {
        healthy: bool,
        /// Critical programs that are not ready.
        not_ready: Vec<String>,
    },
    Reloaded {
        added: Vec<String>,
        removed: Vec<String>,
        changed: Vec<String>,
    },
    Ok {
        message: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

impl Response {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
        Response::Error {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_shape_is_stable() {
        let r = RequestFrame {
            v: VERSION,
            request: Request::Start {
                targets: Targets::Names(vec!["xvfb".into()]),
                wait: Wait::default(),
            },
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"request":{"op":"start","targets":{"names":["xvfb"]},"wait":{"wait":true,"timeout_ms":60000}}}"#
        );
        assert_eq!(serde_json::from_str::<RequestFrame>(&json).unwrap(), r);
        let all = serde_json::to_string(&Targets::All).unwrap();
        assert_eq!(all, r#""all""#);
    }

    #[test]
    fn response_round_trips() {
        let r = ResponseFrame {
            v: VERSION,
            response: Response::error(ErrorCode::UnknownProgram, "no program named \"x\""),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""code":"unknown_program""#));
        assert_eq!(serde_json::from_str::<ResponseFrame>(&json).unwrap(), r);
    }
}
