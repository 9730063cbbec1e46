//! The request body shared by `/process/exec` and `/process/spawn`, and
//! turning it into a `tokio::process::Command`: argv without a shell, cwd,
//! extra environment, an optional user to run as, and a process group of
//! its own (so a timeout or a kill reaches the grandchildren too).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use corral_boot::user::{Identity, UserError};
use hyper::StatusCode;
use serde::Deserialize;
use tokio::process::Command;

use crate::http::ApiError;

/// `/process/exec`'s timeout when none is given.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest `/process/exec` timeout: the HTTP request is held open that long.
pub const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Longest `/process/spawn` timeout (only to keep deadlines finite).
pub const MAX_SPAWN_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Output kept per stream by `/process/exec` when none is given.
pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;
/// Largest `max_output_bytes`: the answer holds both streams in memory.
pub const MAX_MAX_OUTPUT: usize = 16 * 1024 * 1024;

/// The JSON body of `/process/exec` and `/process/spawn` (`max_output_bytes`
/// and `encoding` are exec-only). Unknown fields are refused so a typo like
/// `timeout` does not silently mean "no timeout".
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub argv: Vec<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub user: Option<UserSpec>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub stdin: Option<String>,
    #[serde(default)]
    pub stdin_b64: Option<String>,
    #[serde(default)]
    pub max_output_bytes: Option<usize>,
    #[serde(default)]
    pub encoding: Option<Encoding>,
    /// `/process/spawn` only: run on a new pseudo-terminal (kernel-images'
    /// name; `pty` is accepted too).
    #[serde(default, alias = "pty")]
    pub allocate_tty: bool,
    /// The terminal's size (with `allocate_tty`); 24 x 80 when not given.
    #[serde(default)]
    pub rows: Option<u16>,
    #[serde(default)]
    pub cols: Option<u16>,
}

/// A user name, or a numeric uid (as a number or a string of digits).
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum UserSpec {
    Uid(u32),
    Name(String),
}

/// How `/process/exec` returns output bytes.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Lossy UTF-8: invalid bytes become U+FFFD.
    #[default]
    Utf8,
    /// Exact bytes, standard base64 with padding.
    Base64,
}

impl RunRequest {
    /// The timeout: `default` when absent; 0 and values above `max` refused.
    pub fn timeout(
        &self,
        default: Option<Duration>,
        max: Duration,
    ) -> Result<Option<Duration>, ApiError> {
        match self.timeout_ms {
            None => Ok(default),
            Some(0) => Err(ApiError::bad_request("timeout_ms must be at least 1")),
            Some(ms) if Duration::from_millis(ms) > max => Err(ApiError::bad_request(format!(
                "timeout_ms must be at most {}",
                max.as_millis()
            ))),
            Some(ms) => Ok(Some(Duration::from_millis(ms))),
        }
    }

    /// Bytes to write to stdin (then close it), from `stdin` or `stdin_b64`.
    pub fn stdin_bytes(&self) -> Result<Option<Vec<u8>>, ApiError> {
        match (&self.stdin, &self.stdin_b64) {
            (Some(_), Some(_)) => Err(ApiError::bad_request("give stdin or stdin_b64, not both")),
            (Some(s), None) => Ok(Some(s.clone().into_bytes())),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(Some)
                .map_err(|e| ApiError::bad_request(format!("stdin_b64 is not base64: {e}"))),
            (None, None) => Ok(None),
        }
    }

    /// The terminal size asked for: `None` without `allocate_tty`;
    /// rows and cols without it, or 0, are refused.
    pub fn tty_size(&self) -> Result<Option<(u16, u16)>, ApiError> {
        if !self.allocate_tty {
            if self.rows.is_some() || self.cols.is_some() {
                return Err(ApiError::bad_request(
                    "rows and cols are the size of a pseudo-terminal: give them with \"allocate_tty\": true",
                ));
            }
            return Ok(None);
        }
        let rows = self.rows.unwrap_or(24);
        let cols = self.cols.unwrap_or(80);
        if rows == 0 || cols == 0 {
            return Err(ApiError::bad_request("rows and cols must be at least 1"));
        }
        Ok(Some((rows, cols)))
    }

    /// The command, not yet started: stdio is left to the caller.
    pub fn command(&self) -> Result<Command, ApiError> {
        let mut cmd = self.command_base()?;
        // Its own group: a timeout or a kill signals the whole tree it
        // starts, and a Ctrl-C meant for corral-api's group never reaches it.
        cmd.process_group(0);
        Ok(cmd)
    }

    /// `command` without the process group: a PTY child makes its own
    /// session instead (`setsid` fails in a process-group leader), which
    /// is a new group all the same.
    pub fn command_base(&self) -> Result<Command, ApiError> {
        let Some(program) = self.argv.first() else {
            return Err(ApiError::bad_request("argv must name a program"));
        };
        if program.is_empty() {
            return Err(ApiError::bad_request("argv[0] is empty"));
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return Err(ApiError::bad_request("argv must not contain NUL bytes"));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(ApiError::bad_request(format!(
                    "env name {k:?} is invalid (empty, or holds '=' or NUL) or its value holds NUL"
                )));
            }
        }
        let mut cmd = Command::new(program);
        cmd.args(&self.argv[1..]);
        if let Some(cwd) = &self.cwd {
            // Checked here: a missing cwd would otherwise surface as the
            // same ENOENT as a missing program.
            match std::fs::metadata(cwd) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(cannot_start(format!("cwd {cwd}: not a directory"))),
                Err(e) => return Err(cannot_start(format!("cwd {cwd}: {e}"))),
            }
            cmd.current_dir(cwd);
        }
        if let Some(user) = &self.user {
            let id = resolve_user(user)?;
            cmd.envs(id.env());
            if let Some(d) = id.dropper() {
                if !nix::unistd::geteuid().is_root() {
                    return Err(ApiError::forbidden(format!(
                        "running as {} needs corral-api to run as root",
                        id.name
                    )));
                }
                // Done by hand rather than with `Command::uid/gid` because
                // std clears the supplementary groups before our hook could
                // set the user's own.
                // SAFETY: `apply` only makes async-signal-safe syscalls on
                // memory allocated before the fork.
                unsafe {
                    cmd.pre_exec(move || d.apply());
                }
            }
        }
        // After HOME/USER, so an explicit env entry wins.
        cmd.envs(&self.env);
        Ok(cmd)
    }
}

/// 422: the request was well formed but the command could not be started.
pub fn cannot_start(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "cannot start", detail)
}

/// Maps a failed `spawn()` to an answer naming the program and the reason.
pub fn spawn_error(program: &str, e: &std::io::Error) -> ApiError {
    use std::io::ErrorKind::*;
    let why = match e.kind() {
        NotFound if program.contains('/') => "no such file".to_string(),
        NotFound => "not found in PATH".to_string(),
        PermissionDenied => {
            "permission denied (not executable, or a directory on the way is not searchable)"
                .to_string()
        }
        _ => e.to_string(),
    };
    match e.kind() {
        // Resource exhaustion is ours, not the caller's.
        OutOfMemory | WouldBlock => ApiError::unavailable(format!("{program}: {e}")),
        _ => cannot_start(format!("{program}: {why}")),
    }
}

/// Who to run as, the way corral resolves a program's `user`
/// (`corral_boot::user`): an unknown name is the caller's mistake (422), an
/// unreadable user database ours (500).
fn resolve_user(spec: &UserSpec) -> Result<Identity, ApiError> {
    let user = match spec {
        UserSpec::Uid(uid) => uid.to_string(),
        UserSpec::Name(name) => name.clone(),
    };
    Identity::resolve(&user).map_err(|e| match e {
        UserError::NoSuchUser(_) => cannot_start(format!("no user named {user:?}")),
        UserError::Lookup(e) => ApiError::internal(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> Result<RunRequest, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn parses_the_body() {
        let r =
            req(r#"{"argv":["ls","-l"],"env":{"A":"1"},"user":1000,"encoding":"base64"}"#).unwrap();
        assert_eq!(r.argv, ["ls", "-l"]);
        assert!(matches!(r.user, Some(UserSpec::Uid(1000))));
        assert_eq!(r.encoding, Some(Encoding::Base64));
        assert!(matches!(
            req(r#"{"argv":["x"],"user":"nobody"}"#).unwrap().user,
            Some(UserSpec::Name(_))
        ));
        assert!(
            req(r#"{"argv":["x"],"timeout":5}"#).is_err(),
            "unknown fields refused"
        );
        assert!(req(r#"{"argv":["x"],"encoding":"hex"}"#).is_err());
    }

    #[test]
    fn validates() {
        let r = |j: &str| req(j).unwrap();
        assert!(r(r#"{"argv":[]}"#).command().is_err());
        assert!(r(r#"{"argv":[""]}"#).command().is_err());
        assert!(r(r#"{"argv":["true"],"env":{"A=B":"1"}}"#)
            .command()
            .is_err());
        let e = r(r#"{"argv":["true"],"cwd":"/nonexistent-dir"}"#)
            .command()
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.detail.contains("/nonexistent-dir"));
        let t = r(r#"{"argv":["true"],"timeout_ms":0}"#);
        assert!(t.timeout(None, MAX_EXEC_TIMEOUT).is_err());
        let t = r(r#"{"argv":["true"],"timeout_ms":99999999999}"#);
        assert!(t.timeout(None, MAX_EXEC_TIMEOUT).is_err());
        let t = r(r#"{"argv":["true"]}"#);
        assert_eq!(
            t.timeout(Some(DEFAULT_EXEC_TIMEOUT), MAX_EXEC_TIMEOUT)
                .unwrap(),
            Some(DEFAULT_EXEC_TIMEOUT)
        );
        assert!(r(r#"{"argv":["true"],"stdin":"a","stdin_b64":"YQ=="}"#)
            .stdin_bytes()
            .is_err());
        assert_eq!(
            r(r#"{"argv":["true"],"stdin_b64":"YQ=="}"#)
                .stdin_bytes()
                .unwrap(),
            Some(b"a".to_vec())
        );
        let e = r(r#"{"argv":["true"],"user":"no-such-user-here"}"#)
            .command()
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn spawn_errors_name_the_program() {
        let e = spawn_error("nope", &std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.detail, "nope: not found in PATH");
        let e = spawn_error(
            "/etc/passwd",
            &std::io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(e.detail.starts_with("/etc/passwd: permission denied"));
    }
}
