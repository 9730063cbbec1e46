//! Operator requests (start, stop, restart, reload) and the stop variants
//! (pre_stop, kill_mode = "mixed") against the fake world of the parent.

use corral_boot::signal::Sig;
use std::time::Duration;

use super::*;

fn stack() -> Vec<ProgramConfig> {
    vec![
        prog("xvfb"),
        with("vnc", |p| p.binds_to = vec!["xvfb".into()]),
        with("ws", |p| p.depends_on = vec!["vnc".into()]),
        prog("other"),
    ]
}

fn all_ready(w: &mut World) {
    for n in ["xvfb", "vnc", "ws", "other"] {
        w.ready(n);
    }
}

#[test]
fn stop_request_stops_dependents_first_and_they_stay_down() {
    let mut w = World::new(stack());
    all_ready(&mut w);
    let acts = w.feed(Event::Stop(vec!["xvfb".into()]));
    assert_eq!(w.stopped(&acts), ["ws"]);
    let acts = w.exit("ws", ExitStatus::Code(0));
    assert_eq!(w.stopped(&acts), ["vnc"]);
    let acts = w.exit("vnc", ExitStatus::Code(0));
    assert_eq!(w.stopped(&acts), ["xvfb"]);
    let acts = w.exit("xvfb", ExitStatus::Code(0));
    assert!(World::spawned(&acts).is_empty());
    assert_eq!(w.phase("other"), "RUNNING");
    // start ws: brings up what it needs, in order.
    let acts = w.feed(Event::Start(vec!["ws".into()]));
    assert_eq!(World::spawned(&acts), ["xvfb"]);
    assert_eq!(World::spawned(&w.ready("xvfb")), ["vnc"]);
    assert_eq!(World::spawned(&w.ready("vnc")), ["ws"]);
}

#[test]
fn restart_request_takes_binds_to_dependents_along_but_not_depends_on() {
    let mut w = World::new(stack());
    all_ready(&mut w);
    let ws = w.pids["ws"];
    let acts = w.feed(Event::Restart(vec!["xvfb".into()]));
    assert_eq!(w.stopped(&acts), ["vnc"]);
    let acts = w.exit("vnc", ExitStatus::Code(0));
    assert_eq!(w.stopped(&acts), ["xvfb"]);
    let acts = w.exit("xvfb", ExitStatus::Code(0));
    assert_eq!(World::spawned(&acts), ["xvfb"]);
    assert_eq!(World::spawned(&w.ready("xvfb")), ["vnc"]);
    w.ready("vnc");
    assert_eq!(w.pids["ws"], ws);
    assert_eq!(w.engine.program("xvfb").unwrap().restarts, 0);
}

#[test]
fn start_request_revives_fatal_and_exited_programs() {
    let mut w = World::new(vec![with("a", |p| {
        p.ready = None;
        p.restart = RestartPolicy::Never;
    })]);
    w.exit("a", ExitStatus::Code(1));
    assert_eq!(w.phase("a"), "EXITED");
    let acts = w.feed(Event::Start(vec!["a".into()]));
    assert_eq!(World::spawned(&acts), ["a"]);
}

#[test]
fn requests_during_shutdown_start_nothing() {
    let mut w = World::new(vec![with("a", |p| p.ready = None)]);
    w.feed(Event::Shutdown);
    w.exit("a", ExitStatus::Code(0));
    let acts = w.feed(Event::Start(vec!["a".into()]));
    assert!(World::spawned(&acts).is_empty());
}

#[test]
fn reload_adds_removes_and_restarts_only_what_changed() {
    let mut w = World::new(stack());
    all_ready(&mut w);
    let (other, ws) = (w.pids["other"], w.pids["ws"]);
    let mut new = stack();
    new.retain(|p| p.name != "ws");
    new.iter_mut()
        .find(|p| p.name == "xvfb")
        .unwrap()
        .command
        .push("-new".into());
    new.push(prog("extra"));
    let (summary, acts) = w.engine.reload(&config(new), w.now);
    assert_eq!(summary.added, ["extra"]);
    assert_eq!(summary.removed, ["ws"]);
    assert_eq!(summary.changed, ["xvfb"]);
    // ws (removed) goes first; vnc (binds to the changed xvfb) waits for
    // it, since ws depends on vnc.
    assert!(acts.contains(&Action::SignalGroup {
        pgid: ws,
        signal: Sig::TERM
    }));
    assert!(acts.contains(&Action::Spawn {
        name: "extra".into(),
        generation: 1
    }));
    let acts = w.exit("ws", ExitStatus::Code(0));
    assert!(w.engine.program("ws").is_none(), "removed once down");
    assert_eq!(w.stopped(&acts), ["vnc"]);
    let acts = w.exit("vnc", ExitStatus::Code(0));
    assert_eq!(w.stopped(&acts), ["xvfb"]);
    let acts = w.exit("xvfb", ExitStatus::Code(0));
    assert_eq!(World::spawned(&acts), ["xvfb"]);
    assert_eq!(
        w.engine
            .program("xvfb")
            .unwrap()
            .cfg
            .command
            .last()
            .unwrap(),
        "-new"
    );
    assert_eq!(w.pids["other"], other, "unchanged program untouched");
    assert_eq!(w.phase("other"), "RUNNING");
}

#[test]
fn pre_stop_runs_before_the_stop_signal_and_the_kill_deadline_still_holds() {
    let mut w = World::new(vec![with("chromium", |p| {
        p.ready = None;
        p.pre_stop = Some(vec!["close-browser".into()]);
    })]);
    let pid = w.pids["chromium"];
    let acts = w.feed(Event::Shutdown);
    assert!(acts.iter().any(|a| matches!(a, Action::RunPreStop { .. })));
    assert!(w.stopped(&acts).is_empty(), "no signal while pre_stop runs");
    let generation = w.engine.program("chromium").unwrap().generation;
    let acts = w.feed(Event::PreStopDone {
        name: "chromium".into(),
        generation,
    });
    assert_eq!(w.stopped(&acts), ["chromium"]);
    // The grace period counts from the start of the stop.
    let acts = w.advance(Duration::from_secs(2));
    assert!(acts.contains(&Action::SignalGroup {
        pgid: pid,
        signal: Sig::KILL
    }));
}

#[test]
fn a_program_that_exits_during_pre_stop_is_simply_stopped() {
    let mut w = World::new(vec![with("chromium", |p| {
        p.ready = None;
        p.pre_stop = Some(vec!["close-browser".into()]);
    })]);
    w.feed(Event::Stop(vec!["chromium".into()]));
    w.exit("chromium", ExitStatus::Code(0));
    assert_eq!(w.phase("chromium"), "STOPPED");
    let generation = w.engine.program("chromium").unwrap().generation;
    let acts = w.feed(Event::PreStopDone {
        name: "chromium".into(),
        generation,
    });
    assert!(w.stopped(&acts).is_empty(), "nothing left to signal");
}

#[test]
fn mixed_kill_mode_signals_the_main_process_and_kills_the_group() {
    let mut w = World::new(vec![with("chromium", |p| {
        p.ready = None;
        p.kill_mode = crate::config::KillMode::Mixed;
    })]);
    let pid = w.pids["chromium"];
    let acts = w.feed(Event::Shutdown);
    assert!(acts.contains(&Action::SignalProcess {
        pid,
        signal: Sig::TERM
    }));
    assert!(!acts.iter().any(|a| matches!(
        a,
        Action::SignalGroup {
            signal: Sig::TERM,
            ..
        }
    )));
    // The rest of its group may finish (the cookie store being written):
    // no SIGKILL yet, still STOPPING, and the shutdown waits for it.
    let acts = w.exit("chromium", ExitStatus::Code(0));
    assert!(!acts.iter().any(|a| matches!(a, Action::SignalGroup { .. })));
    assert_eq!(w.phase("chromium"), "STOPPING");
    assert_eq!(w.engine.draining_groups(), [("chromium".to_string(), pid)]);
    assert!(!acts.contains(&Action::Exit { code: 0 }));
    let acts = w.feed(Event::GroupGone {
        name: "chromium".into(),
    });
    assert_eq!(w.phase("chromium"), "STOPPED");
    assert!(acts.contains(&Action::Exit { code: 0 }));
}

#[test]
fn a_draining_group_is_killed_at_the_stop_deadline() {
    let mut w = World::new(vec![with("chromium", |p| {
        p.ready = None;
        p.kill_mode = crate::config::KillMode::Mixed;
    })]);
    let pid = w.pids["chromium"];
    w.feed(Event::Stop(vec!["chromium".into()]));
    w.exit("chromium", ExitStatus::Code(0));
    let acts = w.advance(Duration::from_secs(2));
    assert!(acts.contains(&Action::SignalGroup {
        pgid: pid,
        signal: Sig::KILL
    }));
    assert_eq!(
        w.engine.next_deadline(),
        None,
        "no busy loop after the kill"
    );
}
