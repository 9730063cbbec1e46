//! A critical program that ends for good takes corral down, in order, with
//! its exit status (128+N for a signal).

mod common;

use common::*;

/// a ← b ← crit: when crit ends, b and a are stopped, dependents first.
fn config(s: &Scratch, crit_steps: &[&str]) -> String {
    let stops = s.p("stops");
    format!(
        r#"
[programs.a]
command = {a}
ready = {{ file = {a_ready} }}

[programs.b]
command = {b}
depends_on = ["a"]
ready = {{ file = {b_ready} }}

[programs.crit]
command = {crit}
depends_on = ["b"]
restart = "never"
critical = true
"#,
        a = tp(&[
            "on-term",
            &stops,
            "stop a",
            "touch",
            &s.p("a-ready"),
            "wait"
        ]),
        a_ready = q(&s.p("a-ready")),
        b = tp(&[
            "on-term",
            &stops,
            "stop b",
            "touch",
            &s.p("b-ready"),
            "wait"
        ]),
        b_ready = q(&s.p("b-ready")),
        crit = tp(crit_steps),
    )
}

#[test]
fn critical_exit_code_becomes_corrals() {
    let s = Scratch::new();
    let mut c = s.start(&config(&s, &["exit", "7"]));
    assert_eq!(c.wait_exit(TIMEOUT), 7);
    assert_eq!(lines(&s.path("stops")), ["stop b", "stop a"]);
    let e = c.wait_message("shutting down", None, TIMEOUT);
    assert_eq!(
        e["message"],
        "shutting down: critical program crit ended (exit status 7)"
    );
}

#[test]
fn critical_killed_by_signal_gives_128_plus_signal() {
    let s = Scratch::new();
    let mut c = s.start(&config(&s, &["kill", "9"]));
    assert_eq!(c.wait_exit(TIMEOUT), 137);
    assert_eq!(lines(&s.path("stops")), ["stop b", "stop a"]);
    c.wait_message(
        "critical program crit ended (killed by SIGKILL)",
        None,
        TIMEOUT,
    );
}

/// A critical program that exits but is restarted is not "ended for good".
#[test]
fn critical_program_that_restarts_does_not_end_corral() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[programs.crit]
command = {}
restart = "always"
critical = true
backoff = {{ initial = "20ms", max = "20ms" }}
"#,
        tp(&["exit", "3"])
    );
    let mut c = s.start(&cfg);
    c.wait_events("started", Some("crit"), 4, TIMEOUT);
    assert!(c.alive(), "corral ended although crit is being restarted");
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}
