//! SIGTERM/SIGINT: an ordered shutdown (dependents first), TERM then KILL of
//! the whole process group after stop_timeout, a second signal forcing it,
//! shutdown_timeout bounding it.

mod common;

use std::time::Duration;

use common::*;

/// A program that appends "stop NAME" to `stops` on SIGTERM, and is ready
/// (file) only once that handler is in place.
fn recorder(s: &Scratch, name: &str, requires: &str) -> String {
    let ready = s.p(&format!("{name}-ready"));
    format!(
        "[programs.{name}]\ncommand = {}\nready = {{ file = {} }}\nstop_timeout = \"20s\"\n{requires}\n\n",
        tp(&["on-term", &s.p("stops"), &format!("stop {name}"), "touch", &ready, "wait"]),
        q(&ready)
    )
}

/// a ← b ← c, a ← d (binds_to), e alone. TERM: c before b before a, d before a.
fn ordered(signal: i32) {
    let s = Scratch::new();
    let cfg = [
        recorder(&s, "a", ""),
        recorder(&s, "b", "depends_on = [\"a\"]"),
        recorder(&s, "c", "depends_on = [\"b\"]"),
        recorder(&s, "d", "binds_to = [\"a\"]"),
        recorder(&s, "e", ""),
    ]
    .concat();
    let mut c = s.start(&cfg);
    for name in ["a", "b", "c", "d", "e"] {
        c.wait_event("ready", Some(name), TIMEOUT);
    }
    c.signal(signal);
    // stop_timeout is 20s: exiting well before shows corral does not sit out
    // the grace periods once everything is down.
    assert_eq!(c.wait_exit(Duration::from_secs(10)), 0);
    let stops = lines(&s.path("stops"));
    let pos = |n: &str| {
        stops
            .iter()
            .position(|l| *l == format!("stop {n}"))
            .unwrap_or_else(|| panic!("{n} got no TERM: {stops:?}"))
    };
    assert_eq!(stops.len(), 5, "{stops:?}");
    assert!(pos("c") < pos("b"), "c before b: {stops:?}");
    assert!(pos("b") < pos("a"), "b before a: {stops:?}");
    assert!(pos("d") < pos("a"), "d before a: {stops:?}");
    c.wait_message("all programs stopped", None, TIMEOUT);
}

#[test]
fn sigterm_stops_in_reverse_dependency_order() {
    ordered(libc::SIGTERM);
}

#[test]
fn sigint_stops_in_reverse_dependency_order() {
    ordered(libc::SIGINT);
}

/// A program ignoring TERM gets SIGKILL after its stop_timeout, and so does
/// everything in its process group.
#[test]
fn term_ignored_means_kill_of_the_whole_group() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[programs.base]
command = {base}
ready = {{ file = {base_ready} }}
stop_timeout = "10s"

[programs.stubborn]
command = {stubborn}
depends_on = ["base"]
ready = {{ file = {stubborn_ready} }}
stop_timeout = "500ms"
"#,
        base = tp(&["ignore-term", "touch", &s.p("base-ready"), "wait"]),
        base_ready = q(&s.p("base-ready")),
        stubborn = tp(&[
            "ignore-term",
            "children",
            "3",
            "touch",
            &s.p("stubborn-ready"),
            "wait"
        ]),
        stubborn_ready = q(&s.p("stubborn-ready")),
    );
    let mut c = s.start(&cfg);
    c.wait_event("ready", Some("stubborn"), TIMEOUT);
    let leader = c.pid_of("stubborn");
    let kids = children(leader);
    assert_eq!(kids.len(), 3, "stubborn's children: {kids:?}");

    c.term();
    c.wait_message("did not stop in time: SIGKILL", Some("stubborn"), TIMEOUT);
    let stopped = c.wait_event("stopped", Some("stubborn"), TIMEOUT);
    assert_eq!(stopped["status"], "killed by SIGKILL");
    let grace = ev_time(&stopped) - ev_time(&c.wait_message("shutting down", None, TIMEOUT));
    assert!(grace >= 0.49, "killed before its stop_timeout: {grace}s");
    // The children went with the leader (and were reaped), while corral is
    // still waiting for base: not the namespace being torn down.
    wait_until("stubborn's children to be gone", TIMEOUT, || {
        kids.iter().all(|&k| state(k).is_none())
    });
    assert!(c.alive(), "corral should still be in base's stop grace");
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// A second SIGTERM during a shutdown kills everything at once.
#[test]
fn second_sigterm_forces_kill() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[supervisor]
shutdown_timeout = "120s"

[programs.stubborn]
command = {}
ready = {{ file = {} }}
stop_timeout = "60s"
"#,
        tp(&["ignore-term", "touch", &s.p("ready"), "wait"]),
        q(&s.p("ready")),
    );
    let mut c = s.start(&cfg);
    c.wait_event("ready", Some("stubborn"), TIMEOUT);
    let pid = c.pid_of("stubborn");
    c.term();
    c.wait_message("shutting down", None, TIMEOUT);
    assert!(alive(pid), "stubborn ignores TERM");
    c.term();
    // Far below the 60s stop_timeout.
    assert_eq!(c.wait_exit(Duration::from_secs(10)), 0);
    c.wait_message("second shutdown request", None, TIMEOUT);
    let stopped = c.wait_event("stopped", Some("stubborn"), TIMEOUT);
    assert_eq!(stopped["status"], "killed by SIGKILL");
}

/// shutdown_timeout bounds the whole shutdown, whatever the stop_timeouts.
#[test]
fn shutdown_timeout_bounds_the_shutdown() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[supervisor]
shutdown_timeout = "1s"

[programs.stubborn]
command = {}
ready = {{ file = {} }}
stop_timeout = "60s"
"#,
        tp(&["ignore-term", "touch", &s.p("ready"), "wait"]),
        q(&s.p("ready")),
    );
    let mut c = s.start(&cfg);
    c.wait_event("ready", Some("stubborn"), TIMEOUT);
    c.term();
    assert_eq!(c.wait_exit(Duration::from_secs(15)), 0);
    let begin = c.wait_message("shutting down", None, TIMEOUT);
    let bound = c.wait_message("shutdown_timeout passed", None, TIMEOUT);
    let took = ev_time(&bound) - ev_time(&begin);
    assert!(
        (0.99..5.0).contains(&took),
        "shutdown_timeout after {took}s"
    );
}
