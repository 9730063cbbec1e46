//! The engine's rules, exercised with fake pids and a fake clock: the
//! shared fake world and the life-cycle rules here, operator requests and
//! stop variants in `requests`.

mod requests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use corral_boot::signal::Sig;
use nix::unistd::Pid;

use super::*;
use crate::config::{
    Backoff, Config, ProgramConfig, ReadyCheck, ReadyKind, RestartPolicy, Rlimits,
    SupervisorSettings,
};

fn prog(name: &str) -> ProgramConfig {
    ProgramConfig {
        name: name.into(),
        command: vec![format!("/bin/{name}")],
        env: BTreeMap::new(),
        cwd: None,
        user: None,
        depends_on: vec![],
        binds_to: vec![],
        ready: Some(ReadyCheck {
            kind: ReadyKind::Tcp("127.0.0.1:1".into()),
            timeout: Duration::from_secs(5),
        }),
        restart: RestartPolicy::Always,
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            reset_after: Duration::from_secs(10),
        },
        critical: false,
        max_restarts: None,
        restart_window: Duration::from_secs(60),
        rlimits: Rlimits::default(),
        stop_signal: Sig::TERM,
        kill_mode: crate::config::KillMode::Group,
        stop_timeout: Duration::from_secs(2),
        pre_start: None,
        pre_stop: None,
        autostart: true,
        oneshot: false,
    }
}

fn config(programs: Vec<ProgramConfig>) -> Config {
    Config {
        path: PathBuf::from("test.toml"),
        supervisor: SupervisorSettings {
            shutdown_timeout: Duration::from_secs(20),
            ..SupervisorSettings::default()
        },
        programs: programs.into_iter().map(|p| (p.name.clone(), p)).collect(),
    }
}

/// An engine plus a fake world: it hands out pids and remembers them.
struct World {
    engine: Engine,
    now: Instant,
    next_pid: i32,
    pids: BTreeMap<String, Pid>,
    /// Every action seen, in order.
    log: Vec<Action>,
}

impl World {
    fn new(programs: Vec<ProgramConfig>) -> World {
        let mut w = World {
            engine: Engine::new(&config(programs)),
            now: Instant::now(),
            next_pid: 100,
            pids: BTreeMap::new(),
            log: Vec::new(),
        };
        w.feed(Event::Tick);
        w
    }

    /// Feeds an event and answers spawns the way the runtime would.
    fn feed(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        let mut queue: std::collections::VecDeque<Action> =
            self.engine.handle(event, self.now).into();
        while let Some(a) = queue.pop_front() {
            self.log.push(a.clone());
            out.push(a.clone());
            if let Action::Spawn { name, generation } | Action::RunPreStart { name, generation } = a
            {
                self.next_pid += 1;
                let pid = Pid::from_raw(self.next_pid);
                self.pids.insert(name.clone(), pid);
                let ev = Event::Spawned {
                    name,
                    generation,
                    result: Ok(pid),
                };
                queue.extend(self.engine.handle(ev, self.now));
            }
        }
        out
    }

    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        self.feed(Event::Tick)
    }

    fn ready(&mut self, name: &str) -> Vec<Action> {
        let generation = self.engine.program(name).unwrap().generation;
        self.feed(Event::Ready {
            name: name.into(),
            generation,
        })
    }

    fn exit(&mut self, name: &str, status: ExitStatus) -> Vec<Action> {
        let pid = self.pids[name];
        self.feed(Event::Exited { pid, status })
    }

    fn phase(&self, name: &str) -> &'static str {
        self.engine.program(name).unwrap().phase.state().as_str()
    }

    fn spawned(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Spawn { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// Programs sent their stop signal (not SIGKILL), in order.
    fn stopped(&self, actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::SignalGroup { pgid: pid, signal }
                | Action::SignalProcess { pid, signal }
                    if *signal != Sig::KILL =>
                {
                    self.pids
                        .iter()
                        .find(|(_, p)| *p == pid)
                        .map(|(n, _)| n.clone())
                }
                _ => None,
            })
            .collect()
    }
}

fn with<F: FnOnce(&mut ProgramConfig)>(name: &str, f: F) -> ProgramConfig {
    let mut p = prog(name);
    f(&mut p);
    p
}

#[test]
fn starts_in_dependency_order_and_independent_ones_together() {
    let mut w = World::new(vec![
        prog("a"),
        prog("b"),
        with("c", |p| p.depends_on = vec!["a".into(), "b".into()]),
        with("d", |p| p.binds_to = vec!["c".into()]),
    ]);
    assert_eq!(World::spawned(&w.log), ["a", "b"]);
    assert_eq!(World::spawned(&w.ready("a")), Vec::<String>::new());
    assert_eq!(World::spawned(&w.ready("b")), ["c"]);
    assert_eq!(World::spawned(&w.ready("c")), ["d"]);
    w.ready("d");
    assert!(["a", "b", "c", "d"].iter().all(|n| w.phase(n) == "RUNNING"));
    assert_eq!(w.engine.next_deadline(), None, "idle: no timer armed");
}

#[test]
fn readiness_timeout_stops_and_retries_with_backoff() {
    let mut w = World::new(vec![prog("a")]);
    let acts = w.advance(Duration::from_secs(5));
    assert_eq!(w.phase("a"), "STOPPING");
    assert_eq!(w.stopped(&acts), ["a"]);
    let reason = w.engine.program("a").unwrap().reason.clone();
    assert!(reason.is_none());
    w.exit("a", ExitStatus::Signal(15));
    assert_eq!(w.phase("a"), "BACKOFF");
    assert!(w
        .engine
        .program("a")
        .unwrap()
        .reason
        .as_deref()
        .unwrap()
        .contains("not ready within 5s"));
    let acts = w.advance(Duration::from_millis(100));
    assert_eq!(World::spawned(&acts), ["a"]);
}

#[test]
fn backoff_doubles_to_max_and_resets_after_a_long_run() {
    let mut w = World::new(vec![prog("a")]);
    w.ready("a");
    let mut delays = Vec::new();
    for _ in 0..5 {
        w.exit("a", ExitStatus::Code(1));
        let Phase::Backoff { until } = w.engine.program("a").unwrap().phase else {
            panic!("not in backoff");
        };
        let delay = until - w.now;
        delays.push(delay.as_millis());
        w.advance(delay);
        w.ready("a");
    }
    assert_eq!(delays, [100, 200, 400, 400, 400]);
    // Up for reset_after: the next restart is immediate.
    w.advance(Duration::from_secs(10));
    let acts = w.exit("a", ExitStatus::Code(1));
    assert_eq!(World::spawned(&acts), ["a"]);
}

#[test]
fn restart_policies() {
    let mut w = World::new(vec![
        with("always", |p| p.ready = None),
        with("onfail", |p| {
            p.ready = None;
            p.restart = RestartPolicy::OnFailure
        }),
        with("never", |p| {
            p.ready = None;
            p.restart = RestartPolicy::Never
        }),
    ]);
    w.advance(Duration::from_secs(11));
    w.exit("always", ExitStatus::Code(0));
    w.exit("onfail", ExitStatus::Code(0));
    w.exit("never", ExitStatus::Code(3));
    assert_eq!(w.phase("always"), "RUNNING");
    assert_eq!(w.phase("onfail"), "EXITED");
    assert_eq!(w.phase("never"), "EXITED");
}

#[test]
fn gives_up_past_max_restarts_in_window_and_critical_exits() {
    let mut w = World::new(vec![with("a", |p| {
        p.ready = None;
        p.max_restarts = Some(2);
        p.critical = true;
        p.backoff.initial = Duration::ZERO;
    })]);
    w.exit("a", ExitStatus::Code(1));
    w.exit("a", ExitStatus::Code(1));
    assert_eq!(w.phase("a"), "RUNNING");
    let acts = w.exit("a", ExitStatus::Code(7));
    assert_eq!(w.phase("a"), "FATAL");
    assert!(acts.contains(&Action::Exit { code: 7 }));
}

#[test]
fn restart_window_forgets_old_restarts() {
    let mut w = World::new(vec![with("a", |p| {
        p.ready = None;
        p.max_restarts = Some(1);
        p.backoff.initial = Duration::ZERO;
    })]);
    w.exit("a", ExitStatus::Code(1));
    w.advance(Duration::from_secs(61));
    w.exit("a", ExitStatus::Code(1));
    assert_eq!(w.phase("a"), "RUNNING");
}

#[test]
fn binds_to_cascade_stops_dependents_and_restarts_them_after_ready() {
    let mut w = World::new(vec![
        with("xvfb", |p| p.backoff.initial = Duration::ZERO),
        with("x11vnc", |p| p.binds_to = vec!["xvfb".into()]),
        with("ws", |p| p.depends_on = vec!["x11vnc".into()]),
    ]);
    w.ready("xvfb");
    w.ready("x11vnc");
    w.ready("ws");
    let old_vnc = w.pids["x11vnc"];
    let old_ws = w.pids["ws"];
    let acts = w.exit("xvfb", ExitStatus::Signal(9));
    assert_eq!(w.stopped(&acts), ["x11vnc"], "bound program stopped");
    assert_eq!(w.phase("ws"), "RUNNING", "depends_on: no restart-with");
    assert_eq!(World::spawned(&acts), ["xvfb"]);
    // x11vnc does not start again before xvfb is ready.
    w.exit("x11vnc", ExitStatus::Signal(15));
    assert_eq!(w.phase("x11vnc"), "STOPPED");
    let acts = w.ready("xvfb");
    assert_eq!(World::spawned(&acts), ["x11vnc"]);
    assert_ne!(w.pids["x11vnc"], old_vnc);
    assert_eq!(w.pids["ws"], old_ws);
    assert_eq!(
        w.engine.program("x11vnc").unwrap().restarts,
        0,
        "not a failure"
    );
}

#[test]
fn bound_program_that_dies_first_waits_for_its_target() {
    let mut w = World::new(vec![
        prog("xvfb"),
        with("vnc", |p| p.binds_to = vec!["xvfb".into()]),
    ]);
    w.ready("xvfb");
    w.ready("vnc");
    // The reaper may see the dependent's exit first.
    w.exit("vnc", ExitStatus::Code(1));
    assert_eq!(w.phase("vnc"), "BACKOFF");
    w.exit("xvfb", ExitStatus::Signal(9));
    let acts = w.advance(Duration::from_millis(100));
    assert_eq!(World::spawned(&acts), ["xvfb"], "vnc waits for xvfb");
    assert_eq!(World::spawned(&w.ready("xvfb")), ["vnc"]);
}

#[test]
fn shutdown_stops_in_reverse_order_and_exits_when_all_down() {
    let mut w = World::new(vec![
        prog("a"),
        with("b", |p| p.depends_on = vec!["a".into()]),
        with("c", |p| p.binds_to = vec!["b".into()]),
        prog("solo"),
    ]);
    for n in ["a", "b", "c", "solo"] {
        w.ready(n);
    }
    let acts = w.feed(Event::Shutdown);
    assert_eq!(w.stopped(&acts), ["c", "solo"]);
    let acts = w.exit("c", ExitStatus::Code(0));
    assert_eq!(w.stopped(&acts), ["b"]);
    w.exit("solo", ExitStatus::Code(0));
    let acts = w.exit("b", ExitStatus::Code(0));
    assert_eq!(w.stopped(&acts), ["a"]);
    let acts = w.exit("a", ExitStatus::Code(0));
    assert!(acts.contains(&Action::Exit { code: 0 }));
}

#[test]
fn stop_timeout_escalates_to_sigkill_of_the_group() {
    let mut w = World::new(vec![with("a", |p| p.ready = None)]);
    w.feed(Event::Shutdown);
    assert_eq!(
        w.engine.next_deadline(),
        Some(w.now + Duration::from_secs(2))
    );
    let acts = w.advance(Duration::from_secs(2));
    assert!(acts.contains(&Action::SignalGroup {
        pgid: w.pids["a"],
        signal: Sig::KILL
    }));
    let acts = w.exit("a", ExitStatus::Signal(9));
    assert!(acts.contains(&Action::Exit { code: 0 }));
}

#[test]
fn second_shutdown_kills_everything_at_once() {
    let mut w = World::new(vec![
        with("a", |p| p.ready = None),
        with("b", |p| {
            p.ready = None;
            p.depends_on = vec!["a".into()]
        }),
    ]);
    w.feed(Event::Shutdown);
    let acts = w.feed(Event::Shutdown);
    let kills = acts
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::SignalGroup {
                    signal: Sig::KILL,
                    ..
                }
            )
        })
        .count();
    assert_eq!(kills, 2);
}

#[test]
fn shutdown_timeout_bounds_the_whole_shutdown() {
    let mut w = World::new(vec![with("a", |p| {
        p.ready = None;
        p.stop_timeout = Duration::from_secs(100);
    })]);
    w.feed(Event::Shutdown);
    let acts = w.advance(Duration::from_secs(20));
    assert!(acts.contains(&Action::SignalGroup {
        pgid: w.pids["a"],
        signal: Sig::KILL
    }));
}

#[test]
fn critical_program_ending_shuts_down_with_its_status() {
    let mut w = World::new(vec![
        with("main", |p| {
            p.ready = None;
            p.critical = true;
            p.restart = RestartPolicy::Never;
        }),
        with("side", |p| p.ready = None),
    ]);
    let acts = w.exit("main", ExitStatus::Signal(11));
    assert_eq!(w.stopped(&acts), ["side"]);
    let acts = w.exit("side", ExitStatus::Code(0));
    assert!(acts.contains(&Action::Exit { code: 139 }));
}

#[test]
fn oneshot_is_ready_when_it_exits_zero() {
    let mut w = World::new(vec![
        with("init", |p| {
            p.ready = None;
            p.oneshot = true;
            p.restart = RestartPolicy::Never;
        }),
        with("app", |p| {
            p.ready = None;
            p.depends_on = vec!["init".into()]
        }),
    ]);
    assert_eq!(World::spawned(&w.log), ["init"]);
    let acts = w.exit("init", ExitStatus::Code(0));
    assert_eq!(w.phase("init"), "DONE");
    assert_eq!(World::spawned(&acts), ["app"]);
}

#[test]
fn pre_start_runs_to_completion_before_each_start() {
    let mut w = World::new(vec![with("a", |p| {
        p.ready = None;
        p.pre_start = Some(vec!["/bin/prep".into()]);
        p.backoff.initial = Duration::ZERO;
    })]);
    assert!(matches!(w.log[0], Action::RunPreStart { .. }));
    assert_eq!(w.phase("a"), "STARTING");
    let acts = w.exit("a", ExitStatus::Code(0));
    assert_eq!(World::spawned(&acts), ["a"]);
    assert_eq!(w.phase("a"), "RUNNING");
    // A failing pre_start is a failed start.
    let acts = w.exit("a", ExitStatus::Code(1));
    assert!(matches!(acts.last(), Some(Action::RunPreStart { .. })));
    w.exit("a", ExitStatus::Code(2));
    assert!(w
        .engine
        .program("a")
        .unwrap()
        .reason
        .as_deref()
        .unwrap()
        .starts_with("pre_start failed"));
}

#[test]
fn spawn_failure_counts_as_a_failed_start() {
    let mut engine = Engine::new(&config(vec![with("a", |p| {
        p.restart = RestartPolicy::Never
    })]));
    let now = Instant::now();
    let acts = engine.handle(Event::Tick, now);
    let Action::Spawn { generation, .. } = acts[0] else {
        panic!()
    };
    let ev = Event::Spawned {
        name: "a".into(),
        generation,
        result: Err("No such file or directory".into()),
    };
    engine.handle(ev, now);
    let p = engine.program("a").unwrap();
    assert_eq!(
        p.phase,
        Phase::Exited {
            status: ExitStatus::Code(127)
        }
    );
    assert!(p.reason.as_deref().unwrap().contains("No such file"));
}

#[test]
fn stale_readiness_reports_are_ignored() {
    let mut w = World::new(vec![with("a", |p| p.backoff.initial = Duration::ZERO)]);
    let old = w.engine.program("a").unwrap().generation;
    w.exit("a", ExitStatus::Code(1));
    w.feed(Event::Ready {
        name: "a".into(),
        generation: old,
    });
    assert_eq!(w.phase("a"), "STARTING");
}

#[test]
fn orphans_are_not_mistaken_for_programs() {
    let mut w = World::new(vec![prog("a")]);
    let acts = w.feed(Event::Exited {
        pid: Pid::from_raw(99999),
        status: ExitStatus::Code(0),
    });
    assert!(acts.is_empty());
    assert_eq!(w.phase("a"), "STARTING");
}
