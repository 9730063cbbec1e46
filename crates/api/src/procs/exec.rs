//! `POST /process/exec`: run a command to completion and answer with its
//! exit status and output.
//!
//! - Output: both pipes are read all the time, into at most
//!   `max_output_bytes` per stream; the rest is read and thrown away (the
//!   `*_truncated` flag says so), so a chatty child never blocks on a full
//!   pipe and the answer stays bounded.
//! - Timeout: SIGKILL to the command's whole process group (it has its
//!   own), so a shell's background children die with it; `timed_out: true`.
//! - End: when the command exits we wait up to [`PIPE_GRACE`] for its pipes
//!   to close. A leftover process still holding them (a daemon it started)
//!   does not hold the answer up: it is left running, and its further
//!   output is drained and discarded until it closes the pipe.
//! - If the HTTP request goes away mid-run the handler is dropped, and the
//!   group is killed: nobody is left to read the result.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::command::{
    spawn_error, Encoding, RunRequest, DEFAULT_EXEC_TIMEOUT, DEFAULT_MAX_OUTPUT, MAX_EXEC_TIMEOUT,
    MAX_MAX_OUTPUT,
};
use super::sys;
use crate::http::ApiError;

/// How long pipes may stay open after the command has exited.
pub const PIPE_GRACE: Duration = Duration::from_millis(500);

/// The answer of `/process/exec`.
#[derive(Serialize, Debug)]
pub struct ExecResult {
    /// `null` when a signal ended it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub duration_ms: u64,
    pub timed_out: bool,
}

pub async fn run(req: RunRequest) -> Result<ExecResult, ApiError> {
    let timeout = req
        .timeout(Some(DEFAULT_EXEC_TIMEOUT), MAX_EXEC_TIMEOUT)?
        .unwrap_or(DEFAULT_EXEC_TIMEOUT);
    let cap = req.max_output_bytes.unwrap_or(DEFAULT_MAX_OUTPUT);
    if cap > MAX_MAX_OUTPUT {
        return Err(ApiError::bad_request(format!(
            "max_output_bytes must be at most {MAX_MAX_OUTPUT}"
        )));
    }
    if req.allocate_tty || req.rows.is_some() || req.cols.is_some() {
        return Err(ApiError::bad_request(
            "allocate_tty, rows and cols are for /process/spawn (a terminal needs a live process to talk to)",
        ));
    }
    let input = req.stdin_bytes()?;
    let mut cmd = req.command()?;
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());

    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| spawn_error(&req.argv[0], &e))?;
    let pid = child.id().unwrap_or_default();
    let mut guard = KillGroupOnDrop(Some(pid));

    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), input) {
        // Its own task: a child that writes before reading must not
        // deadlock against us writing before reading. EPIPE (it did not
        // want the input) is not an error.
        tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
        });
    }
    let out = Capture::new(cap);
    let err = Capture::new(cap);
    let readers = (
        tokio::spawn(read_into(child.stdout.take(), out.clone())),
        tokio::spawn(read_into(child.stderr.take(), err.clone())),
    );

    let deadline = tokio::time::Instant::from_std(started + timeout);
    let (status, timed_out) = tokio::select! {
        s = child.wait() => (s, false),
        _ = tokio::time::sleep_until(deadline) => {
            let _ = sys::killpg(pid, libc::SIGKILL);
            (child.wait().await, true)
        }
    };
    guard.0 = None;
    let duration_ms = started.elapsed().as_millis() as u64;
    let status = status.map_err(|e| ApiError::internal(format!("waiting for the command: {e}")))?;

    let _ = tokio::time::timeout(PIPE_GRACE, async {
        let _ = readers.0.await;
        let _ = readers.1.await;
    })
    .await;
    let (stdout, stdout_truncated) = out.take();
    let (stderr, stderr_truncated) = err.take();
    let encoding = req.encoding.unwrap_or_default();
    Ok(ExecResult {
        exit_code: status.code(),
        signal: status.signal(),
        stdout: encode(&stdout, encoding),
        stderr: encode(&stderr, encoding),
        stdout_truncated,
        stderr_truncated,
        duration_ms,
        timed_out,
    })
}

fn encode(bytes: &[u8], encoding: Encoding) -> String {
    match encoding {
        Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// Kills the process group if the exec is abandoned before the command ends.
struct KillGroupOnDrop(Option<u32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = sys::killpg(pid, libc::SIGKILL);
        }
    }
}

/// One stream's kept output, shared with its reader task so what has
/// arrived can be taken even if the pipe never closes.
#[derive(Clone)]
struct Capture(Arc<Mutex<CaptureInner>>);

struct CaptureInner {
    buf: Vec<u8>,
    cap: usize,
    truncated: bool,
    /// False once taken: later output is discarded.
    open: bool,
}

impl Capture {
    fn new(cap: usize) -> Capture {
        Capture(Arc::new(Mutex::new(CaptureInner {
            buf: Vec::new(),
            cap,
            truncated: false,
            open: true,
        })))
    }

    fn add(&self, data: &[u8]) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !c.open {
            return;
        }
        let room = c.cap - c.buf.len();
        if data.len() > room {
            c.truncated = true;
        }
        c.buf.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn take(&self) -> (Vec<u8>, bool) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        c.open = false;
        (std::mem::take(&mut c.buf), c.truncated)
    }
}

async fn read_into(pipe: Option<impl AsyncRead + Unpin>, capture: Capture) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; 64 * 1024];
    // Reads until EOF even past the cap, so the child never blocks.
    while let Ok(n @ 1..) = pipe.read(&mut buf).await {
        capture.add(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: serde_json::Value) -> RunRequest {
        serde_json::from_value(json).unwrap()
    }

    async fn exec(json: serde_json::Value) -> ExecResult {
        run(req(json)).await.unwrap()
    }

    #[tokio::test]
    async fn exit_codes_and_signals() {
        let r = exec(serde_json::json!({"argv": ["true"]})).await;
        assert_eq!((r.exit_code, r.signal, r.timed_out), (Some(0), None, false));
        let r = exec(serde_json::json!({"argv": ["sh", "-c", "exit 3"]})).await;
        assert_eq!(r.exit_code, Some(3));
        let r = exec(serde_json::json!({"argv": ["sh", "-c", "kill -9 $$"]})).await;
        assert_eq!((r.exit_code, r.signal), (None, Some(9)));
    }

    #[tokio::test]
    async fn output_env_cwd_and_stdin() {
        let r = exec(serde_json::json!({
            "argv": ["sh", "-c", "echo \"$GREETING\"; pwd; echo oops >&2"],
            "env": {"GREETING": "hello there"},
            "cwd": "/tmp",
        }))
        .await;
        assert_eq!(r.stdout, "hello there\n/tmp\n");
        assert_eq!(r.stderr, "oops\n");
        let r = exec(serde_json::json!({"argv": ["cat"], "stdin": "piped\nthrough"})).await;
        assert_eq!(r.stdout, "piped\nthrough");
        let r =
            exec(serde_json::json!({"argv": ["cat"], "stdin_b64": "AP8=", "encoding": "base64"}))
                .await;
        assert_eq!(r.stdout, "AP8=");
        // No stdin given: it is /dev/null, so cat ends at once.
        let r = exec(serde_json::json!({"argv": ["cat"], "timeout_ms": 5000})).await;
        assert_eq!((r.exit_code, r.stdout.as_str()), (Some(0), ""));
    }

    #[tokio::test]
    async fn big_output_is_truncated_without_hanging() {
        let t = Instant::now();
        let r = exec(serde_json::json!({
            "argv": ["sh", "-c", "head -c 5000000 /dev/zero; head -c 3000000 /dev/zero >&2"],
            "max_output_bytes": 1000,
            "timeout_ms": 20000,
        }))
        .await;
        assert_eq!(r.exit_code, Some(0));
        assert!(!r.timed_out);
        assert_eq!((r.stdout.len(), r.stdout_truncated), (1000, true));
        assert_eq!((r.stderr.len(), r.stderr_truncated), (1000, true));
        assert!(t.elapsed() < Duration::from_secs(10));
        let r =
            exec(serde_json::json!({"argv": ["echo", "short"], "max_output_bytes": 1000})).await;
        assert!(!r.stdout_truncated);
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let t = Instant::now();
        let r = exec(serde_json::json!({
            "argv": ["sh", "-c", "sleep 10 & echo $!; wait"],
            "timeout_ms": 300,
        }))
        .await;
        assert!(r.timed_out);
        assert_eq!((r.exit_code, r.signal), (None, Some(9)));
        assert!(t.elapsed() < Duration::from_secs(5));
        let grandchild: u32 = r.stdout.trim().parse().expect("the sleep's pid");
        assert!(
            super::super::tests::dies_soon(grandchild).await,
            "the backgrounded sleep was killed too"
        );
    }

    #[tokio::test]
    async fn a_lingering_daemon_does_not_hold_the_answer() {
        let t = Instant::now();
        let r = exec(serde_json::json!({
            "argv": ["sh", "-c", "echo started; sleep 3 & exit 0"],
        }))
        .await;
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(r.stdout, "started\n");
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn commands_that_cannot_start() {
        let e = run(req(serde_json::json!({"argv": ["no-such-program-xyz"]})))
            .await
            .unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.detail, "no-such-program-xyz: not found in PATH");
        let e = run(req(serde_json::json!({"argv": ["/etc"]})))
            .await
            .unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            e.detail.starts_with("/etc: permission denied"),
            "{}",
            e.detail
        );
        let e = run(req(
            serde_json::json!({"argv": ["true"], "max_output_bytes": 1_000_000_000}),
        ))
        .await
        .unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn runs_as_another_user() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let r = exec(serde_json::json!({
            "argv": ["sh", "-c", "id -u; id -g; echo $HOME; id -G"],
            "user": 65534,
        }))
        .await;
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(lines[0], "65534", "{r:?}");
        assert!(
            !lines[3].split(' ').any(|g| g == "0"),
            "root's groups were dropped: {r:?}"
        );
    }
}
