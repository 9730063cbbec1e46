//! `/process/*`: running commands — synchronously (`exec`) or in the
//! background (`spawn`, then `status`, `stdout/stream`, `stdin`, `kill`).
//!
//! With `"allocate_tty": true` (`pty` module) a spawned command runs on a
//! pseudo-terminal of `rows` x `cols`: its output (stdout and stderr
//! alike, as a terminal shows them) comes as `stdout` events, `/stdin`
//! types into the terminal, and `POST /process/{id}/resize` changes the
//! size (the process gets SIGWINCH). Without one, resize is 409.
//!
//! Commands are argv vectors, never run through a shell. Each runs in a
//! process group of its own, so a timeout or a kill signals everything it
//! started. A command that cannot be started (no such program, not
//! executable, bad cwd, unknown user) is `422 {"error":"cannot start",
//! "detail":"PROGRAM: why"}`; a malformed body is 400.
//!
//! Reaping: corral-api is an ordinary child of corral (PID 1), and the
//! commands are corral-api's own children. They are waited for only
//! through `tokio::process`, which reaps the specific pids it started
//! (on SIGCHLD, with `waitpid(pid)`), and the supervisor's extra
//! `waitid(P_PID, pid, WNOWAIT)` names the same pid without reaping. Nothing
//! here ever waits for "any child" (`waitpid(-1)`), so no exit status is
//! taken from anyone else. Grandchildren that outlive their parent are
//! re-parented to corral, which reaps them; if corral-api itself dies, its
//! children are orphaned to corral the same way.
//!
//! Records of spawned processes: kept while running, and for
//! [`FINISHED_TTL`] after exit; at most [`MAX_PROCESSES`] records (the
//! oldest finished dropped first; a spawn is refused with 503 when all are
//! running) and at most [`FINISHED_OUTPUT_BUDGET`] of finished processes'
//! replay buffers. Ids look like `p-<n>-<pid>`; treat them as opaque.

mod command;
mod exec;
mod output;
mod pty;
mod spawn;
mod sys;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

pub use command::RunRequest;
use output::{Channel, Replay};
pub use pty::ResizeRequest;
pub use sys::{parse_signal, SignalSpec};

use crate::http::{body_bytes, body_json, ok, ApiError, Req, Resp, MAX_JSON_BODY};

/// How long a finished process stays queryable.
pub const FINISHED_TTL: Duration = Duration::from_secs(10 * 60);
/// Most process records kept, running and finished.
pub const MAX_PROCESSES: usize = 1000;
/// Most replay-buffer bytes kept for finished processes, altogether.
pub const FINISHED_OUTPUT_BUDGET: usize = 64 * 1024 * 1024;
/// Longest a `/stdin` write waits for the process to read.
pub const STDIN_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Spawned processes and their recorded output.
#[derive(Default)]
pub struct Processes {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next: u64,
    procs: HashMap<String, Arc<Proc>>,
}

/// One spawned process.
pub struct Proc {
    id: String,
    pid: u32,
    argv: Vec<String>,
    started: Instant,
    started_at: SystemTime,
    /// `None` once closed (by a client, at spawn when `stdin` was given, or
    /// at exit). The async mutex serialises writers. A pipe, or the PTY
    /// master.
    stdin: tokio::sync::Mutex<Option<Writer>>,
    /// The pseudo-terminal's master and its current size (rows, cols).
    pty: Option<(pty::Master, Mutex<(u16, u16)>)>,
    state: Mutex<State>,
    /// Bumped after every change of `state`, to wake stream clients.
    changed: watch::Sender<()>,
}

struct State {
    replay: Replay,
    exit: Option<Exit>,
}

#[derive(Clone, Debug)]
pub struct Exit {
    exit_code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    ended: Instant,
    ended_at: SystemTime,
    duration: Duration,
    cpu_ms: Option<u64>,
}

impl Exit {
    /// The `exit` event's data.
    fn summary(&self) -> serde_json::Value {
        json!({
            "exit_code": self.exit_code,
            "signal": self.signal,
            "timed_out": self.timed_out,
            "duration_ms": self.duration.as_millis() as u64,
        })
    }
}

/// Where `/stdin` writes go.
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

impl Proc {
    fn new(id: String, pid: u32, argv: Vec<String>, stdin: Option<Writer>) -> Proc {
        Proc {
            id,
            pid,
            argv,
            started: Instant::now(),
            started_at: SystemTime::now(),
            stdin: tokio::sync::Mutex::new(stdin),
            pty: None,
            state: Mutex::new(State {
                replay: Replay::default(),
                exit: None,
            }),
            changed: watch::Sender::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the process table down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds output; false once the exit is recorded (nothing may follow it).
    fn record(&self, channel: Channel, data: &[u8]) -> bool {
        {
            let mut st = self.lock();
            if st.exit.is_some() {
                return false;
            }
            st.replay.push(channel, data);
        }
        if !data.is_empty() {
            self.changed.send_replace(());
        }
        true
    }

    fn finish(&self, exit: Exit) {
        self.lock().exit = Some(exit);
        self.changed.send_replace(());
    }

    fn exit(&self) -> Option<Exit> {
        self.lock().exit.clone()
    }

    fn status(&self) -> serde_json::Value {
        let exit = self.exit();
        let fmt = |t: SystemTime| humantime::format_rfc3339_millis(t).to_string();
        let stdin_open = self.stdin.try_lock().map_or(true, |s| s.is_some());
        let tty = self.pty.as_ref().map(|(_, size)| {
            let (rows, cols) = *size.lock().unwrap_or_else(|p| p.into_inner());
            json!({"rows": rows, "cols": cols})
        });
        let mut v = match exit {
            None => json!({
                "id": self.id, "pid": self.pid, "argv": self.argv,
                "state": "running", "exit_code": null, "signal": null, "timed_out": false,
                "started_at": fmt(self.started_at), "ended_at": null,
                "duration_ms": self.started.elapsed().as_millis() as u64,
                "rss_bytes": sys::rss_bytes(self.pid), "cpu_ms": sys::cpu_ms(self.pid),
                "stdin_open": stdin_open,
            }),
            Some(e) => json!({
                "id": self.id, "pid": self.pid, "argv": self.argv,
                "state": "exited", "exit_code": e.exit_code, "signal": e.signal,
                "timed_out": e.timed_out,
                "started_at": fmt(self.started_at), "ended_at": fmt(e.ended_at),
                "duration_ms": e.duration.as_millis() as u64,
                "rss_bytes": null, "cpu_ms": e.cpu_ms,
                "stdin_open": false,
            }),
        };
        v["tty"] = json!(tty.is_some());
        v["tty_size"] = json!(tty);
        v
    }
}

/// Limits of the record table (constants in production, small in tests).
struct Limits {
    ttl: Duration,
    max: usize,
    budget: usize,
}

const LIMITS: Limits = Limits {
    ttl: FINISHED_TTL,
    max: MAX_PROCESSES,
    budget: FINISHED_OUTPUT_BUDGET,
};

impl Table {
    /// Forgets finished processes past the TTL or the output budget, and
    /// then the oldest finished until there is room for `room` more.
    /// Err when the running processes alone fill the table.
    fn prune(&mut self, now: Instant, limits: &Limits, room: usize) -> Result<(), ApiError> {
        let mut finished: Vec<(Instant, String, usize)> = self
            .procs
            .values()
            .filter_map(|p| {
                let st = p.lock();
                let exit = st.exit.as_ref()?;
                Some((exit.ended, p.id.clone(), st.replay.held_bytes()))
            })
            .collect();
        finished.sort_by_key(|f| std::cmp::Reverse(f.0)); // newest first
        let mut held = 0usize;
        let mut kept = Vec::new(); // newest first
        for (ended, id, bytes) in finished {
            held += bytes;
            // The newest finished one is kept whatever its size.
            if now.duration_since(ended) > limits.ttl || (held > limits.budget && !kept.is_empty())
            {
                self.procs.remove(&id);
            } else {
                kept.push(id);
            }
        }
        while self.procs.len() + room > limits.max {
            let Some(oldest) = kept.pop() else { break };
            self.procs.remove(&oldest);
        }
        if self.procs.len() + room > limits.max {
            return Err(ApiError::unavailable(format!(
                "{} processes are running (the most kept is {})",
                self.procs.len(),
                limits.max
            )));
        }
        Ok(())
    }
}

impl Processes {
    /// Starts `req` in the background and records it.
    pub fn start(&self, req: RunRequest) -> Result<Arc<Proc>, ApiError> {
        if req.max_output_bytes.is_some() || req.encoding.is_some() {
            return Err(ApiError::bad_request(
                "max_output_bytes and encoding are for /process/exec; spawned output is streamed",
            ));
        }
        let timeout = req.timeout(None, command::MAX_SPAWN_TIMEOUT)?;
        let input = req.stdin_bytes()?;
        let size = req.tty_size()?;
        let (mut cmd, terminal) = match size {
            None => {
                let mut cmd = req.command()?;
                cmd.stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                (cmd, None)
            }
            Some((rows, cols)) => {
                let mut cmd = req.command_base()?;
                if !req.env.contains_key("TERM") {
                    cmd.env("TERM", "xterm-256color");
                }
                let (master, slave) = pty::open(rows, cols).map_err(|e| {
                    ApiError::unavailable(format!("cannot open a pseudo-terminal: {e}"))
                })?;
                pty::attach(&mut cmd, &slave).map_err(|e| {
                    ApiError::unavailable(format!("cannot open a pseudo-terminal: {e}"))
                })?;
                (cmd, Some((master, slave, rows, cols)))
            }
        };

        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.prune(Instant::now(), &LIMITS, 1)?;
        let mut child = cmd
            .spawn()
            .map_err(|e| command::spawn_error(&req.argv[0], &e))?;
        // Our copies of the slave go now (with the Command holding them):
        // the master reports the end only once the child's are all closed.
        drop(cmd);
        let pid = child.id().unwrap_or_default();
        table.next += 1;
        let id = format!("p-{}-{pid}", table.next);
        let mut stdin: Option<Writer> = match &terminal {
            Some((master, ..)) => Some(Box::new(pty::Io(master.clone()))),
            None => child.stdin.take().map(|p| Box::new(p) as Writer),
        };
        if let Some(input) = input {
            // Given up front: written, then closed (EOF; on a terminal,
            // the EOF character), by its own task so a large input cannot
            // hold up this request.
            if let Some(mut pipe) = stdin.take() {
                let tty = terminal.is_some();
                tokio::spawn(async move {
                    let _ = pipe.write_all(&input).await;
                    if tty {
                        let _ = pipe.write_all(b"\x04").await;
                    }
                });
            }
        }
        let mut proc = Proc::new(id.clone(), pid, req.argv, stdin);
        let mut output = None;
        if let Some((master, slave, rows, cols)) = terminal {
            drop(slave);
            output = Some(pty::Io(master.clone()));
            proc.pty = Some((master, Mutex::new((rows, cols))));
        }
        let proc = Arc::new(proc);
        table.procs.insert(id, proc.clone());
        drop(table);

        let readers = match output {
            Some(out) => [
                spawn::pump(proc.clone(), Channel::Stdout, Some(out)),
                tokio::spawn(async {}),
            ],
            None => [
                spawn::pump(proc.clone(), Channel::Stdout, child.stdout.take()),
                spawn::pump(proc.clone(), Channel::Stderr, child.stderr.take()),
            ],
        };
        tokio::spawn(spawn::supervise(proc.clone(), child, timeout, readers));
        Ok(proc)
    }

    /// The record of `id`, or 404.
    pub fn get(&self, id: &str) -> Result<Arc<Proc>, ApiError> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let _ = table.prune(Instant::now(), &LIMITS, 0);
        table.procs.get(id).cloned().ok_or_else(|| {
            ApiError::not_found(format!(
                "no process {id:?} (finished processes are forgotten {} minutes after exit)",
                FINISHED_TTL.as_secs() / 60
            ))
        })
    }

    /// Writes to the process's stdin and/or closes it.
    pub async fn write_stdin(
        &self,
        id: &str,
        req: StdinRequest,
    ) -> Result<serde_json::Value, ApiError> {
        let data = match (req.data, req.data_b64) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request("give data or data_b64, not both"))
            }
            (Some(s), None) => s.into_bytes(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| ApiError::bad_request(format!("data_b64 is not base64: {e}")))?,
            (None, None) => Vec::new(),
        };
        let proc = self.get(id)?;
        let mut stdin = proc.stdin.lock().await;
        if proc.exit().is_some() {
            *stdin = None;
            return Err(ApiError::conflict(format!("process {id} has exited")));
        }
        let Some(pipe) = stdin.as_mut() else {
            return Err(ApiError::conflict(format!(
                "the stdin of process {id} is closed"
            )));
        };
        if !data.is_empty() {
            match tokio::time::timeout(STDIN_WRITE_TIMEOUT, pipe.write_all(&data)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    *stdin = None;
                    return Err(ApiError::conflict(format!(
                        "process {id} no longer reads its stdin (it closed it or exited)"
                    )));
                }
                Ok(Err(e)) => return Err(ApiError::internal(format!("writing to stdin: {e}"))),
                Err(_) => {
                    return Err(ApiError::unavailable(format!(
                        "process {id} did not read its stdin within {} s; part of the data may have been written",
                        STDIN_WRITE_TIMEOUT.as_secs()
                    )))
                }
            }
        }
        if req.close {
            if proc.pty.is_some() {
                // A terminal has no end of input to close: what a user
                // types for it is the EOF character (^D, at a line start).
                let _ = pipe.write_all(b"\x04").await;
            }
            *stdin = None; // dropping the pipe is the EOF
        }
        Ok(json!({ "written": data.len(), "stdin_open": stdin.is_some() }))
    }

    /// Signals the process's group.
    pub fn kill(&self, id: &str, req: KillRequest) -> Result<serde_json::Value, ApiError> {
        let spec = req.signal.unwrap_or(SignalSpec::Name("TERM".into()));
        let sig = sys::parse_signal(&spec).map_err(ApiError::bad_request)?;
        let proc = self.get(id)?;
        let exited = || ApiError::conflict(format!("process {id} has exited"));
        if proc.exit().is_some() {
            return Err(exited());
        }
        match sys::killpg(proc.pid, sig) {
            Ok(()) => Ok(json!({ "id": id, "signal": sig })),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(exited()),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                Err(ApiError::forbidden(format!("signalling process {id}: {e}")))
            }
            Err(e) => Err(ApiError::internal(format!("signalling process {id}: {e}"))),
        }
    }
}

/// The body of `POST /process/{id}/stdin`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct StdinRequest {
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub data_b64: Option<String>,
    #[serde(default)]
    pub close: bool,
}

/// The body of `POST /process/{id}/kill` (may be empty).
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct KillRequest {
    #[serde(default)]
    pub signal: Option<SignalSpec>,
}

pub async fn exec(req: Req, _p: &Processes) -> Result<Resp, ApiError> {
    let body: RunRequest = body_json(req).await?;
    ok(&exec::run(body).await?)
}

pub async fn spawn(req: Req, p: &Processes) -> Result<Resp, ApiError> {
    let body: RunRequest = body_json(req).await?;
    let proc = p.start(body)?;
    Ok(crate::http::json(
        StatusCode::CREATED,
        &json!({ "id": proc.id, "pid": proc.pid }),
    ))
}

pub async fn status(id: &str, p: &Processes) -> Result<Resp, ApiError> {
    ok(&p.get(id)?.status())
}

pub async fn stream(id: &str, p: &Processes) -> Result<Resp, ApiError> {
    Ok(output::sse_response(p.get(id)?))
}

pub async fn stdin(req: Req, id: &str, p: &Processes) -> Result<Resp, ApiError> {
    let body: StdinRequest = body_json(req).await?;
    ok(&p.write_stdin(id, body).await?)
}

pub async fn resize(req: Req, id: &str, p: &Processes) -> Result<Resp, ApiError> {
    let body: ResizeRequest = body_json(req).await?;
    ok(&p.resize(id, body)?)
}

pub async fn kill(req: Req, id: &str, p: &Processes) -> Result<Resp, ApiError> {
    // An empty body means the default, TERM.
    let bytes = body_bytes(req, MAX_JSON_BODY).await?;
    let body: KillRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        KillRequest::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    ok(&p.kill(id, body)?)
}
