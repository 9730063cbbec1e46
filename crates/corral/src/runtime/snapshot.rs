//! A read-only copy of the engine's state, published on a `watch` channel
//! after every batch of events. Status, health, `/readyz`, `/metrics` and
//! clients waiting for a state all read it without a round trip through the
//! supervisor loop, so fifty `corralctl status` calls cost the loop nothing.
//!
//! It holds no wall-clock readings (an `Instant` for the start), so two
//! snapshots of an unchanged state compare equal and nothing is published.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use corral_proto::{ProgramStatus, State};

use crate::engine::{Engine, Phase};

#[derive(Debug, Clone, PartialEq)]
pub struct ProgramSnap {
    pub name: String,
    pub state: State,
    pub pid: Option<i32>,
    pub started_at: Option<Instant>,
    pub restarts: u64,
    pub ready: bool,
    pub critical: bool,
    pub autostart: bool,
    /// Wanted up (autostart or `start`; not after `stop`).
    pub want: bool,
    /// Counts start attempts: waiting clients compare it to see a restart.
    pub generation: u64,
    pub reason: Option<String>,
}

impl ProgramSnap {
    /// A process exists (or is about to).
    pub fn is_live(&self) -> bool {
        matches!(
            self.state,
            State::Starting | State::Running | State::Stopping
        )
    }

    /// The protocol's view, with uptime and start time computed now.
    pub fn status(&self) -> ProgramStatus {
        let live = self.started_at.filter(|_| self.is_live());
        let uptime = live.map(|s| s.elapsed());
        ProgramStatus {
            name: self.name.clone(),
            state: self.state,
            pid: self.pid,
            uptime_ms: uptime.map(|u| u.as_millis() as u64),
            start_time_unix: uptime.map(|u| {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                now.saturating_sub(u).as_secs_f64()
            }),
            restarts: self.restarts,
            ready: self.ready,
            critical: self.critical,
            autostart: self.autostart,
            reason: self.reason.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// In name order.
    pub programs: Vec<ProgramSnap>,
    pub shutting_down: bool,
    pub reaped_total: u64,
}

impl Snapshot {
    pub fn of(engine: &Engine, reaped_total: u64) -> Snapshot {
        let programs = engine
            .programs()
            .iter()
            .map(|(name, p)| {
                let state = p.phase.state();
                // Why it is down; a fatal program's reason is in its phase.
                let reason = match &p.phase {
                    Phase::Fatal { reason } => Some(reason.clone()),
                    Phase::Stopped | Phase::Backoff { .. } | Phase::Exited { .. } => {
                        p.reason.clone()
                    }
                    _ => None,
                };
                ProgramSnap {
                    name: name.clone(),
                    state,
                    pid: p.phase.live_pid().map(|pid| pid.as_raw()),
                    started_at: p.started_at,
                    restarts: p.restarts,
                    ready: p.phase.is_ready(),
                    critical: p.cfg.critical,
                    autostart: p.cfg.autostart,
                    want: p.want,
                    generation: p.generation,
                    reason,
                }
            })
            .collect();
        Snapshot {
            programs,
            shutting_down: engine.is_shutting_down(),
            reaped_total,
        }
    }

    pub fn get(&self, name: &str) -> Option<&ProgramSnap> {
        self.programs
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.programs[i])
    }

    /// Critical programs that are not ready (`corralctl health`).
    pub fn unhealthy(&self) -> Vec<String> {
        self.programs
            .iter()
            .filter(|p| p.critical && !p.ready)
            .map(|p| p.name.clone())
            .collect()
    }

    /// Programs that should be up and are not ready (`/readyz`).
    pub fn not_ready(&self) -> Vec<&ProgramSnap> {
        self.programs
            .iter()
            .filter(|p| p.want && !p.ready)
            .collect()
    }
}
