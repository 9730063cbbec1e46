//! The supervisor's decisions, with no process code in them.
//!
//! [`Engine`] is the one owner of supervisor state. The runtime feeds it
//! [`Event`]s (a process exited, a spawn succeeded, a program became ready,
//! time passed, a shutdown was asked for) and carries out the [`Action`]s it
//! returns (spawn, signal a process group, start a readiness check, exit).
//! Because time comes in as an argument and processes are only pids, every
//! rule here — ordering, binds_to cascades, backoff, giving up, critical
//! exits, shutdown order — is unit-tested without spawning anything.
//!
//! The engine is level-triggered: after every event, [`Engine::reconcile`]
//! looks at the whole state and works out what should happen now, so no
//! event handler has to remember to start or stop a neighbour.

mod program;
mod reconcile;
mod requests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_boot::signal::Sig;
use nix::unistd::Pid;

pub use program::{ExitStatus, Phase, Program};
pub use requests::ReloadSummary;

use crate::config::Config;

/// Something that happened, for the engine to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The answer to an `Action::Spawn` or `Action::RunPreStart`.
    Spawned {
        name: String,
        generation: u64,
        result: Result<Pid, String>,
    },
    /// The reaper collected this pid.
    Exited { pid: Pid, status: ExitStatus },
    /// The readiness check of this start attempt passed.
    Ready { name: String, generation: u64 },
    /// The readiness check of this start attempt cannot pass (e.g. bad address).
    NotReady {
        name: String,
        generation: u64,
        reason: String,
    },
    /// SIGTERM/SIGINT or `corralctl shutdown`. A second one forces it.
    Shutdown,
    /// `corralctl start`: these and what they need.
    Start(Vec<String>),
    /// `corralctl stop`: these, after what needs them.
    Stop(Vec<String>),
    /// `corralctl restart`: these, with what binds to them.
    Restart(Vec<String>),
    /// The `pre_stop` of this stop has finished (or was cut off).
    PreStopDone { name: String, generation: u64 },
    /// The process group of a draining program is empty.
    GroupGone { name: String },
    /// Time passed; deadlines may be due.
    Tick,
}

/// Something the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run the program's `pre_start`; answer with `Event::Spawned`.
    RunPreStart { name: String, generation: u64 },
    /// Spawn the program; answer with `Event::Spawned`.
    Spawn { name: String, generation: u64 },
    /// Run the program's `pre_stop`, bounded; answer with `Event::PreStopDone`.
    RunPreStop { name: String, generation: u64 },
    /// Begin watching for readiness; answer with `Event::Ready`/`NotReady`.
    StartCheck { name: String, generation: u64 },
    /// Forget any readiness check still running for this program.
    StopCheck { name: String },
    /// Send a signal to the process group led by `pgid`.
    SignalGroup { pgid: Pid, signal: Sig },
    /// Send a signal to one process (`kill_mode = "mixed"` stops).
    SignalProcess { pid: Pid, signal: Sig },
    /// Everything is down: leave with this exit code.
    Exit { code: i32 },
}

/// An ordered shutdown in progress.
#[derive(Debug, Clone)]
struct ShutdownState {
    /// What corral exits with once everything is down.
    code: i32,
    /// When everything still alive gets SIGKILL.
    deadline: Instant,
    /// Everything has been sent SIGKILL (deadline passed or forced).
    killed_all: bool,
    exit_sent: bool,
}

/// What the engine knows: every program's state and the shutdown, if any.
#[derive(Debug)]
pub struct Engine {
    programs: BTreeMap<String, Program>,
    /// For each program, the programs that depend on it (depends_on or binds_to).
    dependents: BTreeMap<String, Vec<String>>,
    shutdown_timeout: Duration,
    shutdown: Option<ShutdownState>,
}

impl Engine {
    pub fn new(config: &Config) -> Engine {
        let programs: BTreeMap<String, Program> = config
            .programs
            .iter()
            .map(|(name, cfg)| (name.clone(), Program::new(Arc::new(cfg.clone()))))
            .collect();
        let dependents = dependents_of(&programs);
        Engine {
            programs,
            dependents,
            shutdown_timeout: config.supervisor.shutdown_timeout,
            shutdown: None,
        }
    }

    pub fn programs(&self) -> &BTreeMap<String, Program> {
        &self.programs
    }

    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs.get(name)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// When whatever is still alive gets SIGKILL, if shutting down.
    pub fn shutdown_deadline(&self) -> Option<Instant> {
        self.shutdown.as_ref().map(|s| s.deadline)
    }

    /// Process groups whose main process is gone and whose rest is being
    /// waited for: the runtime reports each one that is empty (GroupGone).
    pub fn draining_groups(&self) -> Vec<(String, Pid)> {
        self.programs
            .iter()
            .filter_map(|(n, p)| match p.phase {
                Phase::Draining { pgid, .. } => Some((n.clone(), pgid)),
                _ => None,
            })
            .collect()
    }

    /// Which program a pid belongs to (as its main process or its pre_start).
    pub fn owner_of(&self, pid: Pid) -> Option<&str> {
        self.programs
            .iter()
            .find(|(_, p)| p.phase.live_pid() == Some(pid))
            .map(|(n, _)| n.as_str())
    }

    /// Turns one event into the actions it calls for.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Spawned {
                name,
                generation,
                result,
            } => self.on_spawned(&name, generation, result, now, &mut actions),
            Event::Exited { pid, status } => self.on_exited(pid, status, now, &mut actions),
            Event::Ready { name, generation } => {
                if let Some(p) = self.current(&name, generation) {
                    if let Phase::Starting { pid, .. } = p.phase {
                        p.phase = Phase::Running { pid };
                        p.ready_at = Some(now);
                        p.reason = None;
                        tracing::info!(program = %name, pid = pid.as_raw(), "ready");
                    }
                }
            }
            Event::NotReady {
                name,
                generation,
                reason,
            } => {
                if let Some(p) = self.current(&name, generation) {
                    if matches!(p.phase, Phase::Starting { .. }) {
                        self.fail_start(&name, reason, now, &mut actions);
                    }
                }
            }
            Event::Shutdown => self.request_shutdown(0, "shutdown requested", now, &mut actions),
            // Names were checked by the caller; requests change what is
            // wanted, and reconcile below does the rest in order.
            Event::Start(names) if self.shutdown.is_none() => self.start(&names),
            Event::Stop(names) => self.stop(&names),
            Event::Restart(names) if self.shutdown.is_none() => self.restart(&names),
            Event::Start(_) | Event::Restart(_) => {}
            Event::GroupGone { name } => {
                if let Some(p) = self.programs.get_mut(&name) {
                    if let Phase::Draining { .. } = p.phase {
                        tracing::info!(program = %name, "stopped (its process group is empty)");
                        p.phase = Phase::Stopped;
                        actions.push(Action::StopCheck { name });
                    }
                }
            }
            Event::PreStopDone { name, generation } => {
                if let Some(p) = self.current(&name, generation) {
                    if let Phase::Stopping {
                        pid,
                        pre_stop: ref mut running @ true,
                        ..
                    } = p.phase
                    {
                        *running = false;
                        actions.push(stop_action(&p.cfg, pid));
                    }
                }
            }
            Event::Tick => {}
        }
        self.reconcile(now, &mut actions);
        actions
    }

    /// Applies a new config (already validated) and acts on the differences.
    pub fn reload(&mut self, config: &Config, now: Instant) -> (ReloadSummary, Vec<Action>) {
        let summary = requests::ReloadSummary::default();
        if self.shutdown.is_some() {
            return (summary, Vec::new());
        }
        let summary = self.apply_reload(config);
        let mut actions = Vec::new();
        self.reconcile(now, &mut actions);
        (summary, actions)
    }

    /// The earliest time at which [`Event::Tick`] has something to do, if any.
    /// `None` means: sleep until some other event comes.
    pub fn next_deadline(&self) -> Option<Instant> {
        let programs = self.programs.values().filter_map(|p| match p.phase {
            Phase::Backoff { until } => Some(until),
            Phase::PreStart { deadline, .. } => Some(deadline),
            Phase::Starting { deadline, .. } => deadline,
            Phase::Stopping {
                kill_at,
                killed: false,
                ..
            }
            | Phase::Draining {
                kill_at,
                killed: false,
                ..
            } => Some(kill_at),
            _ => None,
        });
        let shutdown = self
            .shutdown
            .as_ref()
            .filter(|s| !s.killed_all)
            .map(|s| s.deadline);
        programs.chain(shutdown).min()
    }

    /// The program if `generation` is its current start attempt.
    fn current(&mut self, name: &str, generation: u64) -> Option<&mut Program> {
        self.programs
            .get_mut(name)
            .filter(|p| p.generation == generation)
    }

    fn on_spawned(
        &mut self,
        name: &str,
        generation: u64,
        result: Result<Pid, String>,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let Some(p) = self.current(name, generation) else {
            return;
        };
        let Phase::Spawning { pre_start } = p.phase else {
            return;
        };
        let pid = match result {
            Ok(pid) => pid,
            Err(err) => {
                let what = if pre_start { "pre_start" } else { "command" };
                let reason = format!("cannot run {what}: {err}");
                tracing::error!(program = %name, "{reason}");
                p.reason = Some(reason.clone());
                // 127 is what a shell reports for a command it could not run.
                self.after_exit(name, ExitStatus::Code(127), reason, now, actions);
                return;
            }
        };
        let timeout = p
            .cfg
            .ready
            .as_ref()
            .map(|r| r.timeout)
            .unwrap_or(crate::config::DEFAULT_READY_TIMEOUT);
        if pre_start {
            p.phase = Phase::PreStart {
                pid,
                deadline: now + timeout,
            };
            return;
        }
        p.started_at = Some(now);
        p.ready_at = None;
        tracing::info!(program = %name, pid = pid.as_raw(), "started");
        if p.cfg.oneshot {
            // A oneshot is ready when it has exited 0; its own deadline is the
            // ready timeout only if one was given.
            let deadline = p.cfg.ready.as_ref().map(|r| now + r.timeout);
            p.phase = Phase::Starting { pid, deadline };
        } else if p.cfg.ready.is_some() {
            p.phase = Phase::Starting {
                pid,
                deadline: Some(now + timeout),
            };
            actions.push(Action::StartCheck {
                name: name.to_string(),
                generation,
            });
        } else {
            p.phase = Phase::Running { pid };
            p.ready_at = Some(now);
            p.reason = None;
        }
    }

    fn on_exited(&mut self, pid: Pid, status: ExitStatus, now: Instant, actions: &mut Vec<Action>) {
        let Some(name) = self.owner_of(pid).map(str::to_string) else {
            return; // an orphan: the runtime counts it, nothing to decide
        };
        let p = self.programs.get_mut(&name).expect("owner exists");
        // A "mixed" stop lets the rest of the group finish what the main
        // process asked of it (Chromium's cookie store); it is watched until
        // empty and killed at the stop deadline.
        if let Phase::Stopping {
            kill_at,
            killed: false,
            failed_start: None,
            ..
        } = p.phase
        {
            if p.cfg.kill_mode == crate::config::KillMode::Mixed {
                tracing::info!(program = %name, pid = pid.as_raw(), %status, "main process exited; waiting for its process group");
                p.last_exit = Some(status);
                p.phase = Phase::Draining {
                    pgid: pid,
                    kill_at,
                    killed: false,
                };
                return;
            }
        }
        // Otherwise whatever the leader left behind in its group goes with it,
        // so a restart never races leftovers (a forked child, a helper).
        actions.push(Action::SignalGroup {
            pgid: pid,
            signal: Sig::KILL,
        });
        let phase = std::mem::replace(&mut p.phase, Phase::Stopped);
        match phase {
            Phase::Stopping {
                failed_start: Some(reason),
                ..
            } => {
                actions.push(Action::StopCheck { name: name.clone() });
                self.after_exit(&name, status, reason, now, actions);
            }
            Phase::Stopping { .. } => {
                tracing::info!(program = %name, pid = pid.as_raw(), %status, "stopped");
                p.last_exit = Some(status);
                actions.push(Action::StopCheck { name });
            }
            Phase::PreStart { .. } if status.success() && !self.must_stop(&name) => {
                let p = self.programs.get_mut(&name).expect("owner exists");
                p.phase = Phase::Spawning { pre_start: false };
                actions.push(Action::Spawn {
                    name,
                    generation: p.generation,
                });
            }
            Phase::PreStart { .. } if status.success() => {}
            Phase::PreStart { .. } => {
                let reason = format!("pre_start failed: {status}");
                tracing::warn!(program = %name, "{reason}");
                self.after_exit(&name, status, reason, now, actions);
            }
            _ => {
                actions.push(Action::StopCheck { name: name.clone() });
                let reason = format!("exited: {status}");
                if status.success() {
                    tracing::info!(program = %name, pid = pid.as_raw(), %status, "exited");
                } else {
                    tracing::warn!(program = %name, pid = pid.as_raw(), %status, "exited");
                }
                self.after_exit(&name, status, reason, now, actions);
            }
        }
    }

    /// A start attempt failed (readiness timeout or a check that cannot pass):
    /// stop what was started and treat its end as a failure.
    fn fail_start(&mut self, name: &str, reason: String, now: Instant, actions: &mut Vec<Action>) {
        tracing::warn!(program = %name, "start failed: {reason}");
        let p = self.programs.get_mut(name).expect("program exists");
        if let Some(pid) = p.phase.live_pid() {
            p.phase = Phase::Stopping {
                pid,
                kill_at: now + p.cfg.stop_timeout,
                killed: false,
                failed_start: Some(reason),
                pre_stop: false,
            };
            actions.push(stop_action(&p.cfg, pid));
            actions.push(Action::StopCheck {
                name: name.to_string(),
            });
        }
    }

    /// The process of `name` is gone on its own: restart, give up, or end.
    fn after_exit(
        &mut self,
        name: &str,
        status: ExitStatus,
        reason: String,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let must_stop = self.must_stop(name);
        let p = self.programs.get_mut(name).expect("program exists");
        p.last_exit = Some(status);
        p.reason = Some(reason);
        if p.cfg.oneshot && status.success() {
            p.phase = Phase::Done;
            p.reason = None;
            tracing::info!(program = %name, "completed");
            return;
        }
        if must_stop {
            // It was on its way down anyway (shutdown, stop, or the program it
            // binds to is gone): it starts again when wanted and ready.
            p.phase = Phase::Stopped;
            return;
        }
        let restart = match p.cfg.restart {
            crate::config::RestartPolicy::Always => true,
            crate::config::RestartPolicy::OnFailure => !status.success(),
            crate::config::RestartPolicy::Never => false,
        };
        if !restart {
            p.phase = Phase::Exited { status };
            if p.cfg.critical {
                let why = format!("critical program {name} ended ({status})");
                self.request_shutdown(status.as_exit_code(), &why, now, actions);
            }
            return;
        }
        if !p.record_restart(now) {
            let reason = format!(
                "gave up after {} restarts within {}",
                p.restart_times.len() - 1,
                humantime::format_duration(p.cfg.restart_window)
            );
            tracing::error!(program = %name, "{reason}");
            p.phase = Phase::Fatal { reason };
            if p.cfg.critical {
                let why = format!("critical program {name} is FATAL ({status})");
                self.request_shutdown(status.as_exit_code(), &why, now, actions);
            }
            return;
        }
        let delay = p.next_backoff(now);
        p.restarts += 1;
        tracing::info!(
            program = %name,
            delay_ms = delay.as_millis() as u64,
            "restarting"
        );
        p.phase = Phase::Backoff { until: now + delay };
    }

    /// Begins the ordered shutdown (or, on a second request, forces it).
    fn request_shutdown(&mut self, code: i32, why: &str, now: Instant, actions: &mut Vec<Action>) {
        if let Some(s) = &mut self.shutdown {
            if !s.killed_all {
                tracing::warn!("second shutdown request: killing everything now");
                s.killed_all = true;
                self.kill_all(now, actions);
            }
            return;
        }
        tracing::info!(exit_code = code, "shutting down: {why}");
        self.shutdown = Some(ShutdownState {
            code,
            deadline: now + self.shutdown_timeout,
            killed_all: false,
            exit_sent: false,
        });
        for p in self.programs.values_mut() {
            p.want = false;
            if matches!(p.phase, Phase::Backoff { .. }) {
                p.phase = Phase::Stopped;
            }
        }
    }

    /// SIGKILL to every live group, now.
    fn kill_all(&mut self, now: Instant, actions: &mut Vec<Action>) {
        for p in self.programs.values_mut() {
            if let Phase::Draining { pgid, killed, .. } = &mut p.phase {
                actions.push(Action::SignalGroup {
                    pgid: *pgid,
                    signal: Sig::KILL,
                });
                *killed = true;
                continue;
            }
            if let Some(pid) = p.phase.live_pid() {
                actions.push(Action::SignalGroup {
                    pgid: pid,
                    signal: Sig::KILL,
                });
                p.phase = match std::mem::replace(&mut p.phase, Phase::Stopped) {
                    Phase::Stopping {
                        pid,
                        kill_at,
                        failed_start,
                        ..
                    } => Phase::Stopping {
                        pid,
                        kill_at,
                        killed: true,
                        failed_start,
                        pre_stop: false,
                    },
                    _ => Phase::Stopping {
                        pid,
                        kill_at: now,
                        killed: true,
                        failed_start: None,
                        pre_stop: false,
                    },
                };
            }
        }
    }
}

/// The stop signal of a program, to its group or (`mixed`) its main process.
pub(crate) fn stop_action(cfg: &crate::config::ProgramConfig, pid: Pid) -> Action {
    match cfg.kill_mode {
        crate::config::KillMode::Group => Action::SignalGroup {
            pgid: pid,
            signal: cfg.stop_signal,
        },
        crate::config::KillMode::Mixed => Action::SignalProcess {
            pid,
            signal: cfg.stop_signal,
        },
    }
}

/// Reverse edges of the dependency graph.
fn dependents_of(programs: &BTreeMap<String, Program>) -> BTreeMap<String, Vec<String>> {
    let mut dependents: BTreeMap<String, Vec<String>> =
        programs.keys().map(|n| (n.clone(), Vec::new())).collect();
    for (name, p) in programs {
        for dep in p.cfg.requires() {
            if let Some(list) = dependents.get_mut(dep) {
                list.push(name.clone());
            }
        }
    }
    dependents
}
