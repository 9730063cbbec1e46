//! Actions that arrive over the control socket (and SIGHUP), carried out on
//! the supervisor loop: the only place engine state changes.

use std::collections::VecDeque;
use std::time::Instant;

use super::{killpg, Supervisor};
use crate::config;
use crate::engine::{Action, Event};
use corral_proto::{ErrorCode, Request, Response, Targets};

impl Supervisor {
    /// Answers one action request; any actions it causes go to `pending`.
    pub(super) fn command(&mut self, request: Request, pending: &mut VecDeque<Action>) -> Response {
        let now = Instant::now();
        match request {
            Request::Ping => Response::Ok {
                message: "pong".into(),
            },
            Request::Start { targets, .. } => self.request(targets, Event::Start, true, pending),
            Request::Stop { targets, .. } => self.request(targets, Event::Stop, false, pending),
            Request::Restart { targets, .. } => {
                self.request(targets, Event::Restart, true, pending)
            }
            Request::Signal { signal, targets } => self.signal(&signal, targets),
            Request::Reload => self.reload(pending),
            // A second SIGTERM forces a shutdown; a second `shutdown` request
            // must not: Chromium would lose its cookies to a client's retry.
            Request::Shutdown if self.engine.is_shutting_down() => {
                Response::error(ErrorCode::ShuttingDown, "corral is already shutting down")
            }
            Request::Shutdown => {
                pending.extend(self.engine.handle(Event::Shutdown, now));
                Response::Ok {
                    message: "shutting down".into(),
                }
            }
            // Answered by the connection from the snapshot; not sent here.
            Request::Status { .. }
            | Request::Pid { .. }
            | Request::Tail { .. }
            | Request::Health => Response::error(ErrorCode::BadRequest, "not an action"),
        }
    }

    fn names(&self, targets: Targets) -> Result<Vec<String>, Response> {
        let names = match targets {
            Targets::All => return Ok(self.engine.programs().keys().cloned().collect()),
            Targets::Names(names) => names,
        };
        let unknown = self.engine.unknown(&names);
        if unknown.is_empty() {
            Ok(names)
        } else {
            Err(Response::error(
                ErrorCode::UnknownProgram,
                format!("no program named {}", unknown.join(", ")),
            ))
        }
    }

    fn request(
        &mut self,
        targets: Targets,
        event: fn(Vec<String>) -> Event,
        starts: bool,
        pending: &mut VecDeque<Action>,
    ) -> Response {
        let names = match self.names(targets) {
            Ok(n) => n,
            Err(r) => return r,
        };
        if starts && self.engine.is_shutting_down() {
            return Response::error(ErrorCode::ShuttingDown, "corral is shutting down");
        }
        pending.extend(self.engine.handle(event(names), Instant::now()));
        Response::Ok {
            message: "accepted".into(),
        }
    }

    /// Sends a signal to programs' process groups. `all` means every
    /// program that is running; a name that is not running is an error.
    fn signal(&self, signal: &str, targets: Targets) -> Response {
        let sig = match config::parse_signal(signal) {
            Ok(s) => s,
            Err(e) => return Response::error(ErrorCode::BadRequest, e),
        };
        let all = targets == Targets::All;
        let names = match self.names(targets) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let (mut sent, mut not_running) = (Vec::new(), Vec::new());
        for name in &names {
            match self.engine.program(name).and_then(|p| p.phase.live_pid()) {
                Some(pgid) => match killpg(pgid, sig) {
                    Ok(()) => sent.push(name.as_str()),
                    Err(e) => not_running.push(format!("{name} ({e})")),
                },
                None if all => {}
                None => not_running.push(name.clone()),
            }
        }
        if not_running.is_empty() {
            Response::Ok {
                message: format!("sent {sig} to {}", sent.join(", ")),
            }
        } else {
            Response::error(
                ErrorCode::Failed,
                format!("not running: {}", not_running.join(", ")),
            )
        }
    }

    /// Re-reads the config file. An invalid file changes nothing.
    pub(super) fn reload(&mut self, pending: &mut VecDeque<Action>) -> Response {
        if self.engine.is_shutting_down() {
            return Response::error(ErrorCode::ShuttingDown, "corral is shutting down");
        }
        let new = match config::load(&self.config.path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("reload refused, nothing changed: {e}");
                return Response::error(ErrorCode::InvalidConfig, e.to_string());
            }
        };
        if new.supervisor != self.config.supervisor {
            tracing::warn!(
                "reload: [supervisor] settings other than stop/shutdown timeouts and rlimits take effect at the next start of corral"
            );
        }
        let (summary, actions) = self.engine.reload(&new, Instant::now());
        pending.extend(actions);
        tracing::info!(
            added = ?summary.added,
            removed = ?summary.removed,
            changed = ?summary.changed,
            "reloaded"
        );
        // Keep the running listeners' settings; take the rest.
        let running = self.config.supervisor.clone();
        self.config = new;
        self.config.supervisor.control_socket = running.control_socket;
        self.config.supervisor.http = running.http;
        Response::Reloaded {
            added: summary.added,
            removed: summary.removed,
            changed: summary.changed,
        }
    }
}
