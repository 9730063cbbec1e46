//! corralctl's exit codes against the real corral: 0 ok, 1 the action
//! failed, 2 bad usage or unknown program, 3 corral cannot be reached.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_missing_socket_is_exit_3_naming_it() {
    let s = Scratch::new();
    let out = s.ctl(&["status"]).expect(3);
    let want = format!(
        "cannot reach corral at {}: no such file or directory (is corral running?",
        s.socket().display()
    );
    assert!(out.stderr.contains(&want), "{out:?}");
    assert!(out.stdout.is_empty());
    // Every verb, not only status.
    for args in [&["health"][..], &["start", "x"], &["reload"], &["shutdown"]] {
        let out = s.ctl(args).expect(3);
        assert!(out.stderr.contains(&want), "{args:?}: {out:?}");
    }
}

#[test]
fn unknown_programs_and_bad_usage_are_exit_2() {
    let s = Scratch::new();
    let cfg = format!("[programs.a]\ncommand = {}\n", tp(&["wait"]));
    let mut c = s.start(&cfg);
    c.wait_event("started", Some("a"), TIMEOUT);
    for args in [
        &["start", "ghost"][..],
        &["stop", "a", "ghost"],
        &["restart", "ghost"],
        &["pid", "ghost"],
        &["tail", "ghost"],
        &["signal", "HUP", "ghost"],
    ] {
        let out = s.ctl(args).expect(2);
        assert!(out.stderr.contains("ghost"), "{args:?}: {out:?}");
    }
    // Nothing happened to `a` on the way.
    assert_eq!(c.events_of("started", Some("a")).len(), 1);
    assert_eq!(s.status_of("a")["state"], "RUNNING");
    for args in [
        &["frobnicate"][..],
        &["start"],
        &["stop", "--timeout", "soon", "a"],
        &["signal", "NOPE", "a"],
        &["restart", "all", "a"],
    ] {
        s.ctl(args).expect(2);
    }
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn a_start_that_cannot_succeed_is_exit_1_with_the_reason() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[programs.missing]
command = ["/nonexistent/corral-no-such-command"]
autostart = false
restart = "never"

[programs.crashes]
command = {crash}
autostart = false
ready = {{ file = {never} }}
max_restarts = 1
backoff = {{ initial = "10ms" }}
"#,
        crash = tp(&["exit", "3"]),
        never = q(&s.p("never")),
    );
    let mut c = s.start(&cfg);
    c.wait_message("corral starting", None, TIMEOUT);

    let out = s.ctl(&["start", "missing"]).expect(1);
    assert!(out.stderr.contains("missing"), "{out:?}");
    assert!(
        out.stderr.contains("corral-no-such-command") || out.stderr.contains("exit status 127"),
        "the reason: {out:?}"
    );
    let st = s.status_of("missing")["state"].clone();
    assert!(st == "EXITED" || st == "FATAL", "{st}");

    // A program that dies before it is ready: the waiting start reports it
    // (it does not sit out its 60s default --timeout).
    let t = Instant::now();
    let out = s.ctl(&["start", "crashes"]).expect(1);
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert!(out.stderr.contains("crashes"), "{out:?}");
    assert!(out.stderr.contains("exit status 3"), "{out:?}");

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// While corral shuts down it refuses new actions (exit 1, "shutting
/// down"), still answers questions, and once it is gone every verb is exit 3.
#[test]
fn a_corral_shutting_down_refuses_actions_and_a_gone_one_is_unreachable() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[supervisor]
shutdown_timeout = "120s"

[programs.stubborn]
command = {stubborn}
ready = {{ file = {ready} }}
stop_timeout = "60s"

[programs.idle]
command = {wait}
autostart = false
"#,
        stubborn = tp(&["ignore-term", "touch", &s.p("ready"), "wait"]),
        ready = q(&s.p("ready")),
        wait = tp(&["wait"]),
    );
    let mut c = s.start(&cfg);
    c.wait_event("ready", Some("stubborn"), TIMEOUT);
    c.term();
    c.wait_message("shutting down", None, TIMEOUT);

    let out = s.ctl(&["start", "idle"]).expect(1);
    assert!(out.stderr.contains("shutting down"), "{out:?}");
    let out = s.ctl(&["restart", "stubborn"]).expect(1);
    assert!(out.stderr.contains("shutting down"), "{out:?}");
    let out = s.ctl(&["reload"]).expect(1);
    assert!(out.stderr.contains("shutting down"), "{out:?}");
    let out = s.ctl(&["health"]).expect(1);
    assert!(out.stderr.contains("not healthy"), "{out:?}");
    // Questions are still answered, with a note.
    let out = s.ctl(&["status", "stubborn"]).ok();
    assert!(out.stdout.contains("STOPPING"), "{out:?}");
    assert!(out.stderr.contains("corral is shutting down"), "{out:?}");
    assert_eq!(c.events_of("started", Some("idle")).len(), 0);

    c.term(); // the second one forces it
    assert_eq!(c.wait_exit(TIMEOUT), 0);
    let want = format!("cannot reach corral at {}", s.socket().display());
    for args in [&["status"][..], &["health"], &["shutdown"]] {
        let out = s.ctl(args).expect(3);
        assert!(out.stderr.contains(&want), "{args:?}: {out:?}");
    }
}

/// docs/corralctl.md: "If corral is already shutting down it just waits."
/// A `corralctl shutdown` during a graceful shutdown must not turn it into
/// the forced one (SIGKILL to everything) that a second SIGTERM means.
#[test]
fn shutdown_during_a_shutdown_just_waits() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[programs.graceful]
command = {prog}
ready = {{ file = {ready} }}
stop_timeout = "1500ms"
"#,
        prog = tp(&["ignore-term", "touch", &s.p("ready"), "wait"]),
        ready = q(&s.p("ready")),
    );
    let mut c = s.start(&cfg);
    c.wait_event("ready", Some("graceful"), TIMEOUT);
    c.term();
    let begin = c.wait_message("shutting down", None, TIMEOUT);
    let t = Instant::now();
    let out = s.ctl(&["shutdown"]);
    assert_eq!(c.wait_exit(TIMEOUT), 0);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(
        c.events_of("second shutdown request: killing everything now", None)
            .is_empty(),
        "corralctl shutdown forced the shutdown\n{}",
        c.dump()
    );
    // graceful got its whole stop_timeout before the SIGKILL.
    let killed = c.wait_message("did not stop in time: SIGKILL", Some("graceful"), TIMEOUT);
    let grace = ev_time(&killed) - ev_time(&begin);
    assert!(grace >= 1.45, "SIGKILL after {grace}s, before stop_timeout");
}
