//! The event loop: turns signals, reaped statuses, readiness reports and
//! timers into [`Event`]s for the [`Engine`], and carries out its actions.
//!
//! It runs on a current-thread tokio runtime: one thread owns the engine, the
//! reaper and every spawn, so a pid is always recorded before the next reap
//! pass can see it exit. When nothing is starting, stopping or backing off,
//! the loop has no timer armed and sleeps until a signal or a report comes:
//! an idle corral does not wake up.

mod burst;
mod commands;
mod control;
mod http;
mod logs;
mod output;
mod pid1;
mod ready;
mod reaper;
mod snapshot;
mod spawn;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral_boot::signal::Sig;
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinSet};

use corral_proto::Response;

use crate::config::{Config, ProgramConfig, ReadyKind};
use crate::engine::{Action, Engine, Event};
use control::{Command, Shared};
use logs::{Console, LogFile, Pump, ReadyMatcher, Stream};
use output::Outputs;
use reaper::Reaper;
use snapshot::Snapshot;
use spawn::{spawn, SpawnSpec};

/// After the programs are down, leftovers in the namespace get at least this
/// long after SIGTERM before SIGKILL, even if `shutdown_timeout` is used up…
const LEFTOVER_GRACE_MIN: Duration = Duration::from_millis(500);
/// …and at most this long.
const LEFTOVER_GRACE_MAX: Duration = Duration::from_secs(5);
/// Bound on letting clients' answers (a `shutdown` above all) out at exit.
const ANSWER_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on reading programs' last output at exit.
const PUMP_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// `killpg(2)` with any signal the table accepts (nix's `Signal` has no
/// realtime ones).
pub(crate) fn killpg(pgid: Pid, sig: Sig) -> nix::Result<()> {
    // SAFETY: killpg has no memory-safety preconditions.
    nix::errno::Errno::result(unsafe { libc::killpg(pgid.as_raw(), sig.number()) }).map(drop)
}

/// `kill(2)` with any signal the table accepts.
fn kill(pid: Pid, sig: Sig) -> nix::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    nix::errno::Errno::result(unsafe { libc::kill(pid.as_raw(), sig.number()) }).map(drop)
}

/// Runs the supervisor until it shuts down; returns corral's exit code.
pub fn run(config: Config) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return corral_boot::exit::FAILURE;
        }
    };
    rt.block_on(Supervisor::new(config).run())
}

struct Supervisor {
    config: Config,
    engine: Engine,
    reaper: Arc<Reaper>,
    console: Arc<Console>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    /// The readiness task of each starting program.
    checks: HashMap<String, AbortHandle>,
    /// Log files stay open across restarts of their program.
    log_files: HashMap<String, Arc<Mutex<LogFile>>>,
    /// Output pumps still reading; drained before corral exits.
    pumps: JoinSet<()>,
    /// Recent output per program, for `tail`.
    outputs: Outputs,
    /// The state clients see, republished after every change.
    snapshot: watch::Sender<Arc<Snapshot>>,
    commands_tx: mpsc::Sender<Command>,
    commands_rx: mpsc::Receiver<Command>,
    /// Answers held until the actions they caused are carried out and the
    /// snapshot shows them, so a client never sees the state from before.
    replies: Vec<(oneshot::Sender<Response>, Response)>,
    /// Set once the listeners run; used to let answers out before exiting.
    shared: Option<Arc<Shared>>,
}

impl Supervisor {
    fn new(config: Config) -> Supervisor {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (commands_tx, commands_rx) = mpsc::channel(64);
        Supervisor {
            outputs: Outputs::default(),
            snapshot: watch::Sender::new(Arc::new(Snapshot::default())),
            commands_tx,
            commands_rx,
            replies: Vec::new(),
            shared: None,
            engine: Engine::new(&config),
            config,
            reaper: Arc::new(Reaper::default()),
            console: Console::start(),
            events_tx,
            events_rx,
            checks: HashMap::new(),
            log_files: HashMap::new(),
            pumps: JoinSet::new(),
        }
    }

    async fn run(mut self) -> i32 {
        // Handlers first: SIGCHLD must be caught before the first spawn, and
        // as PID 1 a signal with no handler is simply discarded by the kernel.
        let (mut sigchld, mut sigterm, mut sigint, mut sighup) = match (
            signal(SignalKind::child()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
            _ => {
                tracing::error!("cannot install signal handlers");
                return corral_boot::exit::FAILURE;
            }
        };
        pid1::become_subreaper();
        if let Err(code) = self.listen().await {
            return code;
        }
        if let Some(dir) = &self.config.supervisor.log_dir {
            if let Err(e) = std::fs::create_dir_all(dir) {
                tracing::warn!(dir = %dir.display(), "cannot create log_dir: {e}");
            }
        }
        tracing::info!(
            config = %self.config.path.display(),
            programs = self.config.programs.len(),
            pid1 = pid1::is_pid1(),
            "corral starting"
        );

        let mut pending: VecDeque<Action> = self.engine.handle(Event::Tick, Instant::now()).into();
        let code = loop {
            if let Some(code) = self.apply(&mut pending) {
                break code;
            }
            self.publish();
            let deadline = self
                .engine
                .next_deadline()
                .map(tokio::time::Instant::from_std);
            let event = tokio::select! {
                _ = sigchld.recv() => {
                    for (pid, status) in self.reaper.reap().exited {
                        let now = Instant::now();
                        pending.extend(self.engine.handle(Event::Exited { pid, status }, now));
                    }
                    // Draining groups' members are our children now (PID 1 or
                    // subreaper): each reap may have taken the last one.
                    for (name, pgid) in self.engine.draining_groups() {
                        if nix::sys::signal::killpg(pgid, None) == Err(nix::errno::Errno::ESRCH) {
                            pending.extend(self.engine.handle(Event::GroupGone { name }, Instant::now()));
                        }
                    }
                    continue;
                }
                _ = sigterm.recv() => Event::Shutdown,
                _ = sigint.recv() => Event::Shutdown,
                _ = sighup.recv() => {
                    let _ = self.reload(&mut pending);
                    continue;
                }
                Some(cmd) = self.commands_rx.recv() => {
                    let response = self.command(cmd.request, &mut pending);
                    self.replies.push((cmd.reply, response));
                    continue;
                }
                Some(event) = self.events_rx.recv() => event,
                _ = sleep_until(deadline), if deadline.is_some() => Event::Tick,
            };
            pending.extend(self.engine.handle(event, Instant::now()));
        };

        // Clients waiting on a state learn corral is going away; new ones
        // find no socket (corralctl: "cannot reach corral", exit 3).
        self.publish();
        self.commands_rx.close();
        let _ = std::fs::remove_file(&self.config.supervisor.control_socket);
        if let Some(shared) = &self.shared {
            shared.answers_written(ANSWER_FLUSH_TIMEOUT).await;
        }
        let bound = self
            .engine
            .shutdown_deadline()
            .unwrap_or_else(Instant::now)
            .max(Instant::now() + LEFTOVER_GRACE_MIN)
            .min(Instant::now() + LEFTOVER_GRACE_MAX);
        pid1::sweep(&self.reaper, &mut sigchld, bound).await;
        // Everything is dead, so every pipe is at EOF or about to be: let the
        // pumps read the last lines (a critical program's dying words) and
        // the console write them before the process ends.
        let drain = async { while self.pumps.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(PUMP_DRAIN_TIMEOUT, drain).await;
        tracing::info!(
            exit_code = code,
            reaped = self.reaper.reaped_total(),
            "corral exiting"
        );
        self.console.flush();
        code
    }

    /// Carries out actions (and the events they cause at once) until none
    /// are left. Returns the exit code once the engine says to exit.
    fn apply(&mut self, pending: &mut VecDeque<Action>) -> Option<i32> {
        while let Some(action) = pending.pop_front() {
            let pre_start = matches!(action, Action::RunPreStart { .. });
            match action {
                // The program or its pre_start: the same spawn, then the
                // engine learns how it went.
                Action::Spawn { name, generation } | Action::RunPreStart { name, generation } => {
                    let result = self.spawn_program(&name, generation, pre_start);
                    let ev = Event::Spawned {
                        name,
                        generation,
                        result,
                    };
                    pending.extend(self.engine.handle(ev, Instant::now()));
                }
                Action::StartCheck { name, generation } => self.start_check(name, generation),
                Action::RunPreStop { name, generation } => self.run_pre_stop(name, generation),
                Action::StopCheck { name } => {
                    if let Some(task) = self.checks.remove(&name) {
                        task.abort();
                    }
                }
                Action::SignalGroup { pgid, signal } => {
                    // ESRCH (the group is already gone) is the common, fine case.
                    let _ = killpg(pgid, signal);
                }
                Action::SignalProcess { pid, signal } => {
                    let _ = kill(pid, signal);
                }
                Action::Exit { code } => return Some(code),
            }
        }
        None
    }

    /// The config of a program an action names (the engine only names
    /// programs it has).
    fn config_of(&self, name: &str) -> Arc<ProgramConfig> {
        self.engine
            .program(name)
            .expect("known program")
            .cfg
            .clone()
    }

    fn spawn_program(
        &mut self,
        name: &str,
        generation: u64,
        pre_start: bool,
    ) -> Result<nix::unistd::Pid, String> {
        let cfg = self.config_of(name);
        let argv = if pre_start {
            cfg.pre_start.as_deref().unwrap_or_default()
        } else {
            &cfg.command
        };
        let spec = SpawnSpec::like(&cfg, argv, true);
        let started = spawn(&spec)?;
        // Forget pumps whose program is long gone.
        while self.pumps.try_join_next().is_some() {}
        let matcher = match (&cfg.ready, pre_start) {
            (Some(r), false) => match &r.kind {
                ReadyKind::Log(regex) => Some(Arc::new(ReadyMatcher {
                    regex: regex.clone(),
                    name: name.to_string(),
                    generation,
                    matched: Arc::new(AtomicBool::new(false)),
                    events: self.events_tx.clone(),
                })),
                _ => None,
            },
            _ => None,
        };
        let file = self.log_file(&cfg);
        for (fd, stream) in [
            (started.stdout, Stream::Stdout),
            (started.stderr, Stream::Stderr),
        ] {
            let Some(fd) = fd else { continue };
            let pump = Pump {
                output: self.outputs.get(name),
                prefix: format!("[{name}] ").into_bytes(),
                stream,
                console: self.console.clone(),
                file: file.clone(),
                matcher: matcher.clone(),
            };
            self.pumps.spawn(pump.run(fd));
        }
        Ok(started.pid)
    }

    /// Publishes the engine's state if it changed, then releases the
    /// answers that were waiting for it.
    fn publish(&mut self) {
        let snap = Snapshot::of(&self.engine, self.reaper.reaped_total());
        self.snapshot.send_if_modified(|cur| {
            if **cur == snap {
                return false;
            }
            *cur = Arc::new(snap);
            true
        });
        for (reply, response) in self.replies.drain(..) {
            let _ = reply.send(response);
        }
    }

    /// Binds the control socket and the http listener. Failing to is fatal
    /// before any program starts: a second corral on the same socket, or a
    /// probe port already taken, must be noticed, not half-run.
    async fn listen(&mut self) -> Result<(), i32> {
        let shared = Arc::new(Shared {
            snapshot: self.snapshot.subscribe(),
            commands: self.commands_tx.clone(),
            outputs: self.outputs.clone(),
            answering: watch::Sender::new(0),
        });
        self.shared = Some(shared.clone());
        let path = self.config.supervisor.control_socket.clone();
        match control::bind(&path) {
            Ok(listener) => {
                tokio::spawn(control::serve(listener, shared.clone()));
            }
            Err(e) => {
                tracing::error!(path = %path.display(), "cannot create the control socket: {e}");
                return Err(corral_boot::exit::FAILURE);
            }
        }
        if let Some(addr) = self.config.supervisor.http {
            match http::bind(addr).await {
                Ok(listener) => {
                    tracing::info!(%addr, "serving /livez /readyz /metrics");
                    tokio::spawn(http::serve(listener, shared));
                }
                Err(e) => {
                    tracing::error!(%addr, "cannot listen for probes: {e}");
                    return Err(corral_boot::exit::FAILURE);
                }
            }
        }
        Ok(())
    }

    fn log_file(&mut self, cfg: &ProgramConfig) -> Option<Arc<Mutex<LogFile>>> {
        let s = &self.config.supervisor;
        let dir = s.log_dir.as_ref()?;
        let file = self.log_files.entry(cfg.name.clone()).or_insert_with(|| {
            let path = dir.join(format!("{}.log", cfg.name));
            Arc::new(Mutex::new(LogFile::new(
                path,
                s.log_max_bytes,
                s.log_backups,
            )))
        });
        Some(file.clone())
    }

    /// Runs `pre_stop` as a helper (the reaper hands its status back), cut
    /// off at half the stop timeout so the stop signal and its own grace
    /// still fit; then reports back so the stop signal goes out.
    fn run_pre_stop(&mut self, name: String, generation: u64) {
        let cfg = self.config_of(&name);
        let events = self.events_tx.clone();
        let done = Event::PreStopDone {
            name: name.clone(),
            generation,
        };
        let argv = cfg.pre_stop.clone().unwrap_or_default();
        let spec = SpawnSpec::like(&cfg, &argv, false);
        let (started, status) = match self.reaper.spawn_helper(&spec) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(program = %name, "cannot run pre_stop: {e}");
                let _ = events.send(done);
                return;
            }
        };
        let bound = cfg.stop_timeout / 2;
        tokio::spawn(async move {
            match tokio::time::timeout(bound, status).await {
                Ok(Ok(s)) if s.success() => {}
                Ok(Ok(s)) => tracing::warn!(program = %name, "pre_stop ended: {s}"),
                Ok(Err(_)) => {}
                Err(_) => {
                    tracing::warn!(program = %name, "pre_stop did not finish within {}: SIGKILL", humantime::format_duration(bound));
                    let _ = killpg(started.pid, Sig::KILL);
                }
            }
            let _ = events.send(done);
        });
    }

    fn start_check(&mut self, name: String, generation: u64) {
        let cfg = self.config_of(&name);
        if matches!(cfg.ready.as_ref().map(|r| &r.kind), Some(ReadyKind::Log(_))) {
            return; // the output pump reports it
        }
        let reaper = self.reaper.clone();
        let events = self.events_tx.clone();
        let n = name.clone();
        let task = tokio::spawn(async move {
            let event = match ready::wait_ready(cfg, reaper).await {
                Ok(()) => Event::Ready {
                    name: n,
                    generation,
                },
                Err(reason) => Event::NotReady {
                    name: n,
                    generation,
                    reason,
                },
            };
            let _ = events.send(event);
        });
        if let Some(old) = self.checks.insert(name, task.abort_handle()) {
            old.abort();
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
