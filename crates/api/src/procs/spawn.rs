//! `POST /process/spawn`'s background side: one task per pipe copying
//! output into the process's replay buffer, and one supervisor task that
//! notices the exit, applies the timeout, and records the end.
//!
//! The supervisor does not simply await `Child::wait`: it first waits for
//! the child to become a zombie (`waitid(P_PID, pid, WNOWAIT)`, woken by
//! SIGCHLD), reads its final CPU time from `/proc/PID/stat` — only a
//! zombie still has it — and only then lets tokio reap it. Both calls name
//! this one pid, so no other child's status is ever taken.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Child;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

use super::exec::PIPE_GRACE;
use super::output::{Channel, Utf8Carry};
use super::{sys, Exit, Proc};

/// Reads one pipe into `proc`'s output until EOF or until the process's
/// record is closed; after that, output of leftover processes still
/// holding the pipe is read and discarded, so they never block on a full
/// pipe nor die of SIGPIPE because nobody reads any more.
pub fn pump(
    proc: Arc<Proc>,
    channel: Channel,
    pipe: Option<impl AsyncRead + Unpin + Send + 'static>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(mut pipe) = pipe else { return };
        let mut buf = vec![0u8; 32 * 1024];
        let mut carry = Utf8Carry::default();
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    proc.record(channel, &carry.finish());
                    return;
                }
                Ok(n) => {
                    if !proc.record(channel, &carry.feed(&buf[..n])) {
                        break;
                    }
                }
            }
        }
        drop(proc); // don't keep the record (and its buffer) alive
        while let Ok(1..) = pipe.read(&mut buf).await {}
    })
}

/// Waits for the exit (killing the group at `timeout`), then records it.
pub async fn supervise(
    proc: Arc<Proc>,
    mut child: Child,
    timeout: Option<Duration>,
    readers: [JoinHandle<()>; 2],
) {
    let pid = proc.pid;
    // Registered before the first check, so an exit in between still
    // wakes us. Without it (cannot happen on Linux) we poll quickly.
    let mut sigchld = signal(SignalKind::child()).ok();
    let poll = if sigchld.is_some() {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(50)
    };
    let deadline = timeout.map(|t| tokio::time::Instant::from_std(proc.started + t));
    let mut timed_out = false;
    while !sys::has_exited(pid) {
        tokio::select! {
            _ = async {
                match sigchld.as_mut() {
                    Some(s) => { s.recv().await; }
                    None => std::future::pending().await,
                }
            } => {}
            _ = tokio::time::sleep(poll) => {}
            _ = async {
                match deadline {
                    Some(d) if !timed_out => tokio::time::sleep_until(d).await,
                    _ => std::future::pending().await,
                }
            } => {
                let _ = sys::killpg(pid, libc::SIGKILL);
                timed_out = true;
            }
        }
    }
    let ended = Instant::now();
    let ended_at = SystemTime::now();
    let cpu_ms = sys::cpu_ms(pid);
    let status = child.wait().await;

    // All output before the exit event: wait for the pipes to close, but a
    // leftover process holding them only gets PIPE_GRACE.
    let [out, err] = readers;
    let _ = tokio::time::timeout(PIPE_GRACE, async {
        let _ = out.await;
        let _ = err.await;
    })
    .await;
    let (exit_code, signal) = match &status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            (s.code(), s.signal())
        }
        Err(_) => (None, None),
    };
    proc.finish(Exit {
        exit_code,
        signal,
        timed_out,
        ended,
        ended_at,
        duration: ended.duration_since(proc.started),
        cpu_ms,
    });
    // Close our end of stdin now, unless a write holds it (that write then
    // sees the exit and closes it).
    if let Ok(mut stdin) = proc.stdin.try_lock() {
        *stdin = None;
    }
}
