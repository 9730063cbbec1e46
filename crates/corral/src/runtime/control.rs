//! The control socket: `corralctl` and `corral-api` speak
//! [`corral_proto`] frames here.
//!
//! Each connection is its own task. Questions (status, pid, health, tail)
//! are answered from the published [`Snapshot`] and the output rings, never
//! touching the supervisor loop; actions (start, stop, restart, signal,
//! reload, shutdown) go to the loop as [`Command`]s and get its answer, and a
//! waiting client then watches snapshots until the state it asked for, a
//! failure, or its timeout. A malformed, oversized or wrong-version frame
//! gets an error frame and the connection is dropped; nobody else notices.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use corral_proto::frame::{decode, nonblocking, FrameError};
use corral_proto::{ErrorCode, Request, RequestFrame, Response, ResponseFrame, Targets, VERSION};
use corral_serve::listen::{Acceptor, Limit};
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::output::Outputs;
use super::snapshot::{ProgramSnap, Snapshot};

/// Connections served at once; past this a client gets an error and is closed.
const MAX_CONNECTIONS: usize = 256;
/// A client that connects and says nothing for this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines sent per frame when following output.
const FOLLOW_BATCH: usize = 256;

/// An action for the supervisor loop, with where to send its answer.
pub struct Command {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// What every connection task shares.
pub struct Shared {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub commands: mpsc::Sender<Command>,
    pub outputs: Outputs,
    /// Answers being worked out or written; corral waits for them to reach
    /// their clients before it exits (a `shutdown` answer above all).
    pub answering: watch::Sender<usize>,
}

impl Shared {
    /// Waits (boundedly) until no connection is between a request and the
    /// end of writing its answer.
    pub async fn answers_written(&self, bound: Duration) {
        let mut rx = self.answering.subscribe();
        let _ = tokio::time::timeout(bound, rx.wait_for(|n| *n == 0)).await;
    }
}

/// Counts one answer in flight for as long as it lives.
struct Answering<'a>(&'a watch::Sender<usize>);

impl<'a> Answering<'a> {
    fn new(tx: &'a watch::Sender<usize>) -> Self {
        tx.send_modify(|n| *n += 1);
        Answering(tx)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Creates the socket: its directory if missing, a stale socket file
/// replaced (but a live corral's socket, or a file that is not a socket,
/// left alone), and mode 0600 from the start.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another corral is serving this socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "path exists and is not a socket; not replacing it",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // The umask makes the socket 0600 at bind time: there is no window in
    // which another user could connect. Only this thread creates files now.
    // SAFETY: umask has no memory-safety preconditions.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = listener?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Accepts connections for as long as corral runs.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    let limit = Limit::new(MAX_CONNECTIONS, "control socket");
    let mut acceptor = Acceptor::new(listener, "control socket");
    loop {
        let (mut stream, _) = acceptor.accept().await;
        let Some(permit) = limit.admit() else {
            tokio::spawn(async move {
                let busy = Response::error(ErrorCode::Failed, "too many control connections");
                let _ = send(&mut stream, busy).await;
            });
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let open = super::burst::Connection::open();
            connection(stream, &shared).await;
            drop(permit);
            drop(open);
        });
    }
}

async fn send(stream: &mut UnixStream, response: Response) -> Result<(), FrameError> {
    let frame = ResponseFrame {
        v: VERSION,
        response,
    };
    nonblocking::write(stream, &frame).await
}

async fn connection(mut stream: UnixStream, shared: &Shared) {
    loop {
        let body =
            match tokio::time::timeout(IDLE_TIMEOUT, nonblocking::read_body(&mut stream)).await {
                Ok(Ok(Some(body))) => body,
                Ok(Ok(None)) | Err(_) => return,
                Ok(Err(e)) => {
                    let _ = send(
                        &mut stream,
                        Response::error(ErrorCode::BadRequest, e.to_string()),
                    )
                    .await;
                    return;
                }
            };
        let frame: RequestFrame = match decode(&body) {
            Ok(f) => f,
            Err(e) => {
                let _ = send(
                    &mut stream,
                    Response::error(ErrorCode::BadRequest, e.to_string()),
                )
                .await;
                return;
            }
        };
        if frame.v != VERSION {
            let msg = format!(
                "protocol version {} not supported (corral speaks {VERSION})",
                frame.v
            );
            let _ = send(&mut stream, Response::error(ErrorCode::BadRequest, msg)).await;
            return;
        }
        if let Request::Tail {
            name,
            lines,
            follow,
        } = frame.request
        {
            tail(stream, shared, &name, lines, follow).await;
            return;
        }
        let shutdown = matches!(frame.request, Request::Shutdown);
        let in_flight = Answering::new(&shared.answering);
        let response = answer(frame.request, shared).await;
        let failed = matches!(response, Response::Error { .. });
        let sent = send(&mut stream, response).await;
        drop(in_flight);
        if sent.is_err() {
            return;
        }
        if shutdown && !failed {
            // The client learns corral is gone when this closes.
            let mut rest = [0u8; 1];
            let _ = stream.read(&mut rest).await;
            return;
        }
    }
}

async fn answer(request: Request, shared: &Shared) -> Response {
    let snap = shared.snapshot.borrow().clone();
    match request {
        Request::Status { names } => {
            if let Some(err) = unknown(&snap, &names) {
                return err;
            }
            let programs = snap
                .programs
                .iter()
                .filter(|p| names.is_empty() || names.contains(&p.name))
                .map(ProgramSnap::status)
                .collect();
            Response::Status {
                programs,
                shutting_down: snap.shutting_down,
            }
        }
        Request::Pid { name } => match snap.get(&name) {
            None => unknown_program(&name),
            Some(ProgramSnap { pid: Some(pid), .. }) => Response::Pid { pid: *pid },
            Some(p) => Response::error(
                ErrorCode::Failed,
                format!("{name} is not running ({})", p.state),
            ),
        },
        Request::Health => {
            let not_ready = snap.unhealthy();
            Response::Health {
                healthy: not_ready.is_empty() && !snap.shutting_down,
                not_ready,
            }
        }
        Request::Start { ref targets, wait }
        | Request::Stop { ref targets, wait }
        | Request::Restart { ref targets, wait } => {
            let names = match targets {
                Targets::All => snap.programs.iter().map(|p| p.name.clone()).collect(),
                Targets::Names(n) => n.clone(),
            };
            if let Some(err) = unknown(&snap, &names) {
                return err;
            }
            let before: HashMap<String, u64> = names
                .iter()
                .filter_map(|n| Some((n.clone(), snap.get(n)?.generation)))
                .collect();
            let goal = match request {
                Request::Start { .. } => Goal::Up,
                Request::Stop { .. } => Goal::Down,
                _ => Goal::Restarted,
            };
            match ask(shared, request).await {
                Response::Ok { .. } if wait.wait => {
                    let timeout = Duration::from_millis(wait.timeout_ms);
                    wait_for(shared, &names, goal, &before, timeout).await
                }
                Response::Ok { .. } => {
                    let snap = shared.snapshot.borrow().clone();
                    done(&snap, &names)
                }
                other => other,
            }
        }
        Request::Tail { .. } => unreachable!("handled by the connection"),
        other => ask(shared, other).await,
    }
}

/// Hands an action to the supervisor loop and waits for its answer.
async fn ask(shared: &Shared, request: Request) -> Response {
    let (reply, rx) = oneshot::channel();
    if shared
        .commands
        .send(Command { request, reply })
        .await
        .is_err()
    {
        return Response::error(ErrorCode::ShuttingDown, "corral is shutting down");
    }
    rx.await
        .unwrap_or_else(|_| Response::error(ErrorCode::ShuttingDown, "corral is shutting down"))
}

fn unknown_program(name: &str) -> Response {
    Response::error(
        ErrorCode::UnknownProgram,
        format!("no program named {name:?}"),
    )
}

fn unknown(snap: &Snapshot, names: &[String]) -> Option<Response> {
    let missing: Vec<&str> = names
        .iter()
        .filter(|n| snap.get(n).is_none())
        .map(String::as_str)
        .collect();
    match missing.as_slice() {
        [] => None,
        [one] => Some(unknown_program(one)),
        many => Some(Response::error(
            ErrorCode::UnknownProgram,
            format!("no programs named {}", many.join(", ")),
        )),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Goal {
    Up,
    Down,
    Restarted,
}

enum Verdict {
    Reached,
    Pending,
    Failed(String),
}

fn judge(p: &ProgramSnap, goal: Goal, before: u64) -> Verdict {
    use corral_proto::State::*;
    let attempted = p.generation > before;
    match goal {
        Goal::Down if !p.is_live() => Verdict::Reached,
        Goal::Down => Verdict::Pending,
        Goal::Restarted if !attempted => Verdict::Pending,
        _ if p.ready => Verdict::Reached,
        _ => match p.state {
            Fatal | Exited => {
                Verdict::Failed(p.reason.clone().unwrap_or_else(|| p.state.to_string()))
            }
            Backoff if attempted => Verdict::Failed(format!(
                "start failed: {} (retrying)",
                p.reason.as_deref().unwrap_or("not ready")
            )),
            Stopped if !p.want => Verdict::Failed("stopped".into()),
            _ => Verdict::Pending,
        },
    }
}

/// Watches snapshots until every named program reached `goal`, one failed,
/// or `timeout` passed.
async fn wait_for(
    shared: &Shared,
    names: &[String],
    goal: Goal,
    before: &HashMap<String, u64>,
    timeout: Duration,
) -> Response {
    let mut rx = shared.snapshot.clone();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let snap = rx.borrow_and_update().clone();
        let mut pending = Vec::new();
        for name in names {
            let Some(p) = snap.get(name) else {
                // Removed by a reload while we waited: it is certainly down.
                continue;
            };
            match judge(p, goal, before.get(name).copied().unwrap_or(0)) {
                Verdict::Reached => {}
                Verdict::Pending => pending.push(name.as_str()),
                Verdict::Failed(why) => {
                    return Response::error(ErrorCode::Failed, format!("{name}: {why}"))
                }
            }
        }
        if pending.is_empty() {
            return done(&snap, names);
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() {
                return Response::error(ErrorCode::ShuttingDown, "corral is shutting down");
            },
            _ = tokio::time::sleep_until(deadline) => {
                let states: Vec<String> = pending
                    .iter()
                    .filter_map(|n| snap.get(n))
                    .map(|p| format!("{} is {}", p.name, p.state))
                    .collect();
                return Response::error(
                    ErrorCode::Timeout,
                    format!("gave up waiting after {}: {}", humantime::format_duration(timeout), states.join(", ")),
                );
            }
        }
    }
}

fn done(snap: &Snapshot, names: &[String]) -> Response {
    Response::Done {
        programs: names
            .iter()
            .filter_map(|n| snap.get(n))
            .map(ProgramSnap::status)
            .collect(),
    }
}

/// `tail`: the last lines, then (with `follow`) every new line until the
/// client hangs up.
async fn tail(mut stream: UnixStream, shared: &Shared, name: &str, lines: usize, follow: bool) {
    if shared.snapshot.borrow().get(name).is_none() {
        let _ = send(&mut stream, unknown_program(name)).await;
        return;
    }
    let output = shared.outputs.get(name);
    let mut rx = output.follow();
    let recent = output.last(lines);
    if send(&mut stream, Response::Lines { lines: recent })
        .await
        .is_err()
        || !follow
    {
        return;
    }
    let (mut reader, mut writer) = stream.into_split();
    let mut probe = [0u8; 1];
    loop {
        let first = tokio::select! {
            // The client sends nothing more; a read returning means it left.
            _ = reader.read(&mut probe) => return,
            line = rx.recv() => line,
        };
        let mut batch = Vec::new();
        match first {
            Ok(line) => batch.push(line.to_string()),
            Err(broadcast::error::RecvError::Lagged(n)) => batch.push(format!(
                "[corralctl: {n} lines skipped: output was faster than this client]"
            )),
            Err(broadcast::error::RecvError::Closed) => return,
        }
        while batch.len() < FOLLOW_BATCH {
            match rx.try_recv() {
                Ok(line) => batch.push(line.to_string()),
                Err(_) => break,
            }
        }
        let frame = ResponseFrame {
            v: VERSION,
            response: Response::Lines { lines: batch },
        };
        if nonblocking::write(&mut writer, &frame).await.is_err() {
            return;
        }
    }
}
