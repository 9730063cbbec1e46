//! Duties of process 1 that no program owns: adopting orphans, and clearing
//! out whatever is still alive in the namespace once the programs are down.
//!
//! Outside PID 1 (tests, `unshare` without `--fork`, a plain shell) corral
//! marks itself a child subreaper, so orphans of its programs are re-parented
//! to it exactly as they would be to PID 1, and the same reaping code runs.

use std::time::Instant;

use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, Pid};
use tokio::signal::unix::Signal as SignalStream;

use super::reaper::Reaper;

pub fn is_pid1() -> bool {
    getpid().as_raw() == 1
}

/// Makes orphans of our descendants our children when we are not PID 1.
pub fn become_subreaper() {
    if is_pid1() {
        return;
    }
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes a plain integer.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        tracing::warn!(
            "cannot become a child subreaper: {}; orphans will not be reaped by corral",
            std::io::Error::last_os_error()
        );
    }
}

/// Sends `sig` to every process we are responsible for: as PID 1 that is the
/// whole namespace (`kill(-1)` skips PID 1 itself); otherwise our children.
fn signal_rest(sig: Signal) -> usize {
    if is_pid1() {
        return usize::from(kill(Pid::from_raw(-1), sig).is_ok());
    }
    let me = getpid().as_raw();
    let mut n = 0;
    for pid in children_of(me) {
        if kill(Pid::from_raw(pid), sig).is_ok() {
            n += 1;
        }
    }
    n
}

/// Pids whose parent is `parent`, from /proc.
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // The command name may contain spaces and parentheses: the
                    // fields we want start after the last ')'.
                    let rest = &s[s.rfind(')')? + 2..];
                    rest.split(' ').nth(1)?.parse::<i32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// Once every program is down: TERM what is left, wait for it to be reaped
/// (as long as `deadline` allows, not a moment more), then KILL the rest.
pub async fn sweep(reaper: &Reaper, sigchld: &mut SignalStream, deadline: Instant) {
    if reaper.reap().no_children && !is_pid1() {
        return;
    }
    if signal_rest(Signal::SIGTERM) == 0 && reaper.reap().no_children {
        return;
    }
    let deadline = tokio::time::Instant::from_std(deadline);
    loop {
        if reaper.reap().no_children {
            return;
        }
        tokio::select! {
            _ = sigchld.recv() => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    tracing::warn!("processes left after shutdown: SIGKILL");
    signal_rest(Signal::SIGKILL);
    loop {
        if reaper.reap().no_children {
            return;
        }
        // After SIGKILL they go promptly; this bound only guards against a
        // process stuck in uninterruptible sleep.
        let bound = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        tokio::select! {
            _ = sigchld.recv() => {}
            _ = tokio::time::sleep_until(bound) => return,
        }
    }
}
