//! The one owner of exit statuses.
//!
//! Nothing else in corral calls `wait`: every child, orphan or not, is
//! collected here with `waitpid(-1, WNOHANG)` when SIGCHLD arrives. Helper
//! processes (readiness `exec` checks) register their pid under the same lock
//! that the reaper takes, in the same breath as the spawn, so their status can
//! never be collected before someone is waiting for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::oneshot;

use super::spawn::{spawn, SpawnSpec, Started};
use crate::engine::ExitStatus;

/// What a reap pass found.
pub struct Reaped {
    /// Processes no helper was waiting for: programs, pre_starts and orphans.
    pub exited: Vec<(Pid, ExitStatus)>,
    /// No children are left at all.
    pub no_children: bool,
}

#[derive(Default)]
pub struct Reaper {
    /// Helper pids and who waits for them.
    helpers: Mutex<HashMap<Pid, oneshot::Sender<ExitStatus>>>,
    /// Every process collected, for `corral_reaped_total`.
    reaped_total: AtomicU64,
}

impl Reaper {
    pub fn reaped_total(&self) -> u64 {
        self.reaped_total.load(Ordering::Relaxed)
    }

    /// Spawns a helper process and returns a receiver for its exit status.
    pub fn spawn_helper(
        &self,
        spec: &SpawnSpec<'_>,
    ) -> Result<(Started, oneshot::Receiver<ExitStatus>), String> {
        let mut helpers = self.helpers.lock().unwrap_or_else(|e| e.into_inner());
        let started = spawn(spec)?;
        let (tx, rx) = oneshot::channel();
        helpers.insert(started.pid, tx);
        Ok((started, rx))
    }

    /// Collects every child that has exited.
    pub fn reap(&self) -> Reaped {
        let mut helpers = self.helpers.lock().unwrap_or_else(|e| e.into_inner());
        let mut exited = Vec::new();
        let mut no_children = false;
        loop {
            let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitStatus::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, ExitStatus::Signal(sig as i32)),
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => continue, // stop/continue reports: not asked for, not an exit
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    // ECHILD: nothing left to wait for.
                    no_children = true;
                    break;
                }
            };
            self.reaped_total.fetch_add(1, Ordering::Relaxed);
            match helpers.remove(&pid) {
                Some(tx) => {
                    let _ = tx.send(status);
                }
                None => exited.push((pid, status)),
            }
        }
        Reaped {
            exited,
            no_children,
        }
    }
}
