//! What operators ask for: start, stop, restart, reload. Each only changes
//! what is *wanted*; `reconcile` then does the work in dependency order, the
//! same way it does at boot and at shutdown.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use super::{Engine, Phase, Program};
use crate::config::Config;

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Engine {
    /// Names that are not programs, for an "unknown program" answer.
    pub fn unknown<'a>(&self, names: &'a [String]) -> Vec<&'a str> {
        names
            .iter()
            .filter(|n| !self.programs.contains_key(n.as_str()))
            .map(String::as_str)
            .collect()
    }

    /// `names` and everything they need, transitively.
    fn with_requirements(&self, names: &[String]) -> BTreeSet<String> {
        self.closure(names, |e, n| {
            e.programs[n].cfg.requires().map(str::to_string).collect()
        })
    }

    /// `names` and everything that needs them, transitively.
    fn with_dependents(&self, names: &[String]) -> BTreeSet<String> {
        self.closure(names, |e, n| {
            e.dependents.get(n).cloned().unwrap_or_default()
        })
    }

    fn closure(
        &self,
        names: &[String],
        next: impl Fn(&Engine, &str) -> Vec<String>,
    ) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<String> = names.iter().cloned().collect();
        while let Some(n) = queue.pop_front() {
            if self.programs.contains_key(&n) && seen.insert(n.clone()) {
                queue.extend(next(self, &n));
            }
        }
        seen
    }

    /// Wants `names` up, with what they need. A program that had ended
    /// (EXITED, FATAL, a finished oneshot) named here runs again with a clean
    /// restart history; one waiting out a backoff starts now.
    pub(super) fn start(&mut self, names: &[String]) {
        let named: BTreeSet<&String> = names.iter().collect();
        for name in self.with_requirements(names) {
            let explicit = named.contains(&name);
            let p = self.programs.get_mut(&name).expect("known program");
            p.want = true;
            let ended = matches!(p.phase, Phase::Exited { .. } | Phase::Fatal { .. });
            let rerun = explicit && matches!(p.phase, Phase::Done | Phase::Backoff { .. });
            if ended || rerun {
                reset(p);
            }
        }
    }

    /// Wants `names` down, and first everything that needs them.
    pub(super) fn stop(&mut self, names: &[String]) {
        for name in self.with_dependents(names) {
            let p = self.programs.get_mut(&name).expect("known program");
            p.want = false;
            if matches!(p.phase, Phase::Backoff { .. }) {
                p.phase = Phase::Stopped;
            }
        }
    }

    /// Stop then start `names`; what binds to them follows (they must be down
    /// while their target is), what merely depends on them is left alone.
    pub(super) fn restart(&mut self, names: &[String]) {
        for name in names {
            let p = self.programs.get_mut(name).expect("known program");
            if p.phase.is_live() {
                p.restart_pending = true;
                p.want = true;
            } else {
                self.start(std::slice::from_ref(name));
            }
        }
    }

    /// Applies a new, already validated config: adds, removes (once down) and
    /// restarts only what changed; everything else keeps running untouched.
    pub(super) fn apply_reload(&mut self, config: &Config) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        for (name, p) in self.programs.iter_mut() {
            match config.programs.get(name) {
                None => {
                    p.want = false;
                    p.removing = true;
                    if matches!(p.phase, Phase::Backoff { .. }) {
                        p.phase = Phase::Stopped;
                    }
                    summary.removed.push(name.clone());
                }
                Some(cfg) if *cfg != *p.cfg => {
                    let cfg = Arc::new(cfg.clone());
                    if p.phase.is_live() {
                        p.next_cfg = Some(cfg.clone());
                        p.restart_pending = true;
                    } else {
                        p.cfg = cfg.clone();
                        reset(p);
                    }
                    p.want = cfg.autostart || p.want;
                    summary.changed.push(name.clone());
                }
                Some(_) => {}
            }
        }
        for (name, cfg) in &config.programs {
            if !self.programs.contains_key(name) {
                self.programs
                    .insert(name.clone(), Program::new(Arc::new(cfg.clone())));
                summary.added.push(name.clone());
            }
        }
        self.shutdown_timeout = config.supervisor.shutdown_timeout;
        self.dependents = super::dependents_of(&self.programs);
        summary
    }

    /// Is every critical program ready? Returns the ones that are not.
    pub fn unhealthy(&self) -> Vec<String> {
        self.programs
            .iter()
            .filter(|(_, p)| p.cfg.critical && !p.phase.is_ready())
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// A fresh start: back to STOPPED with no restart history.
fn reset(p: &mut Program) {
    p.phase = Phase::Stopped;
    p.restart_times.clear();
    p.quick_failures = 0;
    p.reason = None;
}
