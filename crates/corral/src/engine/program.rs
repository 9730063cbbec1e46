//! Per-program state as the engine sees it: the phase a program is in, and the
//! bookkeeping (restart history, backoff) that decides what happens next.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::config::ProgramConfig;

/// How a process ended, as the reaper saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// The status a shell would report: the code, or 128 + the signal number.
    pub fn as_exit_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => corral_boot::exit::signaled(s),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Code(c) => write!(f, "exit status {c}"),
            ExitStatus::Signal(s) => {
                write!(f, "killed by {}", corral_boot::signal::name(s))
            }
        }
    }
}

/// Where a program is in its life cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Not running and nothing scheduled. It starts when wanted and its
    /// requirements are ready.
    Stopped,
    /// A spawn was asked of the driver and its answer is not in yet. Only
    /// exists between an `Action::Spawn`/`RunPreStart` and its `Spawned` event,
    /// so a start is never asked for twice.
    Spawning { pre_start: bool },
    /// Waiting out a restart delay.
    Backoff { until: Instant },
    /// `pre_start` is running; the program itself starts when it exits 0.
    PreStart { pid: Pid, deadline: Instant },
    /// Spawned, readiness not yet seen.
    Starting { pid: Pid, deadline: Option<Instant> },
    /// Spawned and ready.
    Running { pid: Pid },
    /// Stop signal sent to the group; SIGKILL follows at `kill_at`.
    Stopping {
        pid: Pid,
        kill_at: Instant,
        killed: bool,
        /// Stopped because its start failed (ready timeout): treat its exit as
        /// a failure for the restart policy once it is gone.
        failed_start: Option<String>,
        /// `pre_stop` is running; the stop signal goes out when it is done.
        pre_stop: bool,
    },
    /// The main process has exited after a `kill_mode = "mixed"` stop and
    /// the rest of its group is finishing (Chromium's network service writing
    /// the cookie store). Done when the group is empty; SIGKILL at `kill_at`.
    Draining {
        pgid: Pid,
        kill_at: Instant,
        killed: bool,
    },
    /// Ended and will not be restarted (restart policy said no).
    Exited { status: ExitStatus },
    /// A oneshot that completed successfully: counts as ready for dependents.
    Done,
    /// Given up after too many restarts, or could not be started at all.
    Fatal { reason: String },
}

impl Phase {
    /// The pid of a live process (the program or its `pre_start`), if any.
    pub fn live_pid(&self) -> Option<Pid> {
        match *self {
            Phase::PreStart { pid, .. }
            | Phase::Starting { pid, .. }
            | Phase::Running { pid }
            | Phase::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// A process exists or is about to: shutdown and stop ordering wait for it.
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            Phase::Spawning { .. }
                | Phase::PreStart { .. }
                | Phase::Starting { .. }
                | Phase::Running { .. }
                | Phase::Stopping { .. }
                | Phase::Draining { .. }
        )
    }

    /// Ready as far as dependents are concerned.
    pub fn is_ready(&self) -> bool {
        matches!(self, Phase::Running { .. } | Phase::Done)
    }

    /// The state `corralctl status`, corral-api's `/programs` and
    /// `/metrics` show (through the runtime's snapshot); its name is
    /// `State::as_str`.
    pub fn state(&self) -> corral_proto::State {
        use corral_proto::State;
        match self {
            Phase::Stopped => State::Stopped,
            Phase::Backoff { .. } => State::Backoff,
            Phase::Spawning { .. } | Phase::PreStart { .. } | Phase::Starting { .. } => {
                State::Starting
            }
            Phase::Running { .. } => State::Running,
            Phase::Stopping { .. } | Phase::Draining { .. } => State::Stopping,
            Phase::Exited { .. } => State::Exited,
            Phase::Done => State::Done,
            Phase::Fatal { .. } => State::Fatal,
        }
    }
}

/// One program's state.
#[derive(Debug, Clone)]
pub struct Program {
    pub cfg: Arc<ProgramConfig>,
    /// Should it be running? Set by autostart, `start`; cleared by `stop` and shutdown.
    pub want: bool,
    /// A restart was asked for: stop (with what binds to it), then start.
    pub restart_pending: bool,
    /// A reload changed the config: it applies once the program is down.
    pub next_cfg: Option<Arc<ProgramConfig>>,
    /// A reload removed it: it goes away once it is down.
    pub removing: bool,
    pub phase: Phase,
    /// Incremented on every start attempt, so results from an earlier attempt
    /// (a late readiness report, say) are recognised and ignored.
    pub generation: u64,
    /// When the current process was spawned.
    pub started_at: Option<Instant>,
    /// When the current process became ready.
    pub ready_at: Option<Instant>,
    /// Restarts since corral started (for status and metrics).
    pub restarts: u64,
    /// Times of recent restarts, for `max_restarts` within `restart_window`.
    pub restart_times: VecDeque<Instant>,
    /// Consecutive quick failures: the exponent of the backoff.
    pub quick_failures: u32,
    pub last_exit: Option<ExitStatus>,
    /// Why it is not running, when that is not obvious from the phase.
    pub reason: Option<String>,
}

impl Program {
    pub fn new(cfg: Arc<ProgramConfig>) -> Program {
        Program {
            want: cfg.autostart,
            restart_pending: false,
            next_cfg: None,
            removing: false,
            cfg,
            phase: Phase::Stopped,
            generation: 0,
            started_at: None,
            ready_at: None,
            restarts: 0,
            restart_times: VecDeque::new(),
            quick_failures: 0,
            last_exit: None,
            reason: None,
        }
    }

    /// The delay before the next restart, and updates the backoff state.
    /// A program that stayed up for `reset_after` restarts at once and its
    /// backoff starts over; otherwise the delay doubles from `initial` to `max`.
    pub fn next_backoff(&mut self, now: Instant) -> Duration {
        let b = self.cfg.backoff;
        let uptime = self
            .started_at
            .map(|s| now.saturating_duration_since(s))
            .unwrap_or_default();
        if uptime >= b.reset_after {
            self.quick_failures = 0;
            return Duration::ZERO;
        }
        self.quick_failures = self.quick_failures.saturating_add(1);
        let shift = (self.quick_failures - 1).min(30);
        b.initial.saturating_mul(1u32 << shift).min(b.max)
    }

    /// Records a restart; returns false when this one is past `max_restarts`
    /// within `restart_window` (time to give up).
    pub fn record_restart(&mut self, now: Instant) -> bool {
        let window = self.cfg.restart_window;
        while let Some(&t) = self.restart_times.front() {
            if now.saturating_duration_since(t) >= window {
                self.restart_times.pop_front();
            } else {
                break;
            }
        }
        self.restart_times.push_back(now);
        match self.cfg.max_restarts {
            Some(max) => self.restart_times.len() as u64 <= u64::from(max),
            None => true,
        }
    }
}
