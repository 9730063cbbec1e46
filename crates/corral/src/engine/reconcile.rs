//! The level-triggered half of the engine: after every event, compare the
//! whole state with what should be and act. Who must be down (not wanted,
//! shutting down, or something it binds to is gone), who may start (wanted,
//! requirements ready), which deadlines have come.

use std::time::Instant;

use corral_boot::signal::Sig;

use super::{stop_action, Action, Engine, Phase};

impl Engine {
    /// Must this program be down now? When it is not wanted, when corral is
    /// shutting down, when a restart of it was asked for, or when something it
    /// binds to is not up (or going down). A name that is gone (removed by a
    /// reload) counts as not up.
    pub(super) fn must_stop(&self, name: &str) -> bool {
        let Some(p) = self.programs.get(name) else {
            return true;
        };
        if self.shutdown.is_some() || !p.want || p.restart_pending {
            return true;
        }
        p.cfg.binds_to.iter().any(|t| !self.up_and_staying(t))
    }

    /// Ready, and not about to go down.
    fn up_and_staying(&self, name: &str) -> bool {
        self.programs.get(name).is_some_and(|p| p.phase.is_ready()) && !self.must_stop(name)
    }

    /// Everything this program needs is ready and staying up.
    fn requirements_ready(&self, name: &str) -> bool {
        self.programs[name]
            .cfg
            .requires()
            .all(|d| self.up_and_staying(d))
    }

    /// Level-triggered: compare the whole state with what should be and act.
    pub fn reconcile(&mut self, now: Instant, actions: &mut Vec<Action>) {
        self.expire_deadlines(now, actions);
        self.settle_down_programs();
        let names: Vec<String> = self.programs.keys().cloned().collect();
        // Stops first, dependents before what they depend on.
        for name in &names {
            let p = &self.programs[name];
            let stoppable = matches!(
                p.phase,
                Phase::PreStart { .. } | Phase::Starting { .. } | Phase::Running { .. }
            );
            if !stoppable || !self.must_stop(name) {
                continue;
            }
            let dependents_down = self.dependents.get(name).into_iter().flatten().all(|d| {
                self.programs
                    .get(d)
                    .is_none_or(|p| !p.phase.is_live() || !self.must_stop(d))
            });
            if dependents_down {
                self.begin_stop(name, now, actions);
            }
        }
        for name in &names {
            let p = &self.programs[name];
            let due = match p.phase {
                Phase::Stopped => true,
                Phase::Backoff { until } => until <= now,
                _ => false,
            };
            if due && !self.must_stop(name) && self.requirements_ready(name) {
                self.begin_start(name, actions);
            }
        }
        if let Some(s) = &mut self.shutdown {
            let live = self.programs.values().any(|p| p.phase.is_live());
            if !live && !s.exit_sent {
                s.exit_sent = true;
                tracing::info!(exit_code = s.code, "all programs stopped");
                actions.push(Action::Exit { code: s.code });
            }
        }
    }

    /// Programs that are down can take what was waiting for that: a restart
    /// asked for is half done, a config changed by a reload takes effect, a
    /// program removed by a reload goes away.
    fn settle_down_programs(&mut self) {
        let mut graph_changed = false;
        self.programs.retain(|name, p| {
            if p.phase.is_live() {
                return true;
            }
            p.restart_pending = false;
            if let Some(cfg) = p.next_cfg.take() {
                tracing::info!(program = %name, "new config in effect");
                p.cfg = cfg;
                graph_changed = true;
            }
            if p.removing {
                tracing::info!(program = %name, "removed");
                graph_changed = true;
            }
            !p.removing
        });
        if graph_changed {
            self.dependents = super::dependents_of(&self.programs);
        }
    }

    /// Deadlines that have come: backoffs end (handled by the start pass),
    /// readiness times out, grace periods end, the shutdown bound passes.
    fn expire_deadlines(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let mut failed = Vec::new();
        for (name, p) in self.programs.iter_mut() {
            match &mut p.phase {
                Phase::Stopping {
                    pid,
                    kill_at,
                    killed,
                    ..
                } if !*killed && *kill_at <= now => {
                    tracing::warn!(program = %name, "did not stop in time: SIGKILL");
                    *killed = true;
                    actions.push(Action::SignalGroup {
                        pgid: *pid,
                        signal: Sig::KILL,
                    });
                }
                Phase::Draining {
                    pgid,
                    kill_at,
                    killed,
                } if !*killed && *kill_at <= now => {
                    tracing::warn!(program = %name, "its process group did not finish in time: SIGKILL");
                    *killed = true;
                    actions.push(Action::SignalGroup {
                        pgid: *pgid,
                        signal: Sig::KILL,
                    });
                }
                Phase::Starting {
                    deadline: Some(d), ..
                } if *d <= now => {
                    let what = match &p.cfg.ready {
                        Some(r) => {
                            format!("not ready within {}", humantime::format_duration(r.timeout))
                        }
                        None => "did not complete in time".to_string(),
                    };
                    failed.push((name.clone(), what));
                }
                Phase::PreStart { deadline, .. } if *deadline <= now => {
                    failed.push((name.clone(), "pre_start did not finish in time".into()));
                }
                _ => {}
            }
        }
        for (name, reason) in failed {
            self.fail_start(&name, reason, now, actions);
        }
        if let Some(s) = &mut self.shutdown {
            if !s.killed_all && s.deadline <= now {
                tracing::warn!("shutdown_timeout passed: killing what is left");
                s.killed_all = true;
                self.kill_all(now, actions);
            }
        }
    }

    fn begin_start(&mut self, name: &str, actions: &mut Vec<Action>) {
        let p = self.programs.get_mut(name).expect("program exists");
        p.generation += 1;
        let pre_start = p.cfg.pre_start.is_some();
        p.phase = Phase::Spawning { pre_start };
        let (name, generation) = (name.to_string(), p.generation);
        actions.push(if pre_start {
            Action::RunPreStart { name, generation }
        } else {
            Action::Spawn { name, generation }
        });
    }

    fn begin_stop(&mut self, name: &str, now: Instant, actions: &mut Vec<Action>) {
        let p = self.programs.get_mut(name).expect("program exists");
        let Some(pid) = p.phase.live_pid() else {
            return;
        };
        // pre_stop is for a program that is up (Chromium closing itself over
        // CDP); one still starting just gets its stop signal.
        let pre_stop = p.cfg.pre_stop.is_some() && matches!(p.phase, Phase::Running { .. });
        tracing::info!(program = %name, pid = pid.as_raw(), signal = %p.cfg.stop_signal, pre_stop, "stopping");
        p.phase = Phase::Stopping {
            pid,
            kill_at: now + p.cfg.stop_timeout,
            killed: false,
            failed_start: None,
            pre_stop,
        };
        if pre_stop {
            actions.push(Action::RunPreStop {
                name: name.to_string(),
                generation: p.generation,
            });
        } else {
            actions.push(stop_action(&p.cfg, pid));
        }
        actions.push(Action::StopCheck {
            name: name.to_string(),
        });
    }
}
