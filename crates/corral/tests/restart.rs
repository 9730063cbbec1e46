//! Restart policies, backoff timing, reset_after, and giving up after
//! max_restarts within restart_window.

mod common;

use std::time::Duration;

use common::*;

/// Timestamps (seconds) of a program's first `n` starts, from corral's log.
fn start_times(c: &Corral, program: &str, n: usize) -> Vec<f64> {
    c.wait_events("started", Some(program), n, TIMEOUT)
        .iter()
        .map(ev_time)
        .collect()
}

/// Quick failures restart after delays that double from `initial` up to `max`.
#[test]
fn backoff_delays_grow_as_configured() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[programs.flaky]
command = {}
restart = "always"
backoff = {{ initial = "200ms", max = "500ms", reset_after = "1h" }}
"#,
        tp(&["exit", "1"])
    );
    let mut c = s.start(&cfg);
    let t = start_times(&c, "flaky", 5);
    let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    // What corral decided…
    let delays: Vec<u64> = c
        .wait_events("restarting", Some("flaky"), 4, TIMEOUT)
        .iter()
        .map(|e| e["delay_ms"].as_u64().expect("delay_ms"))
        .collect();
    assert_eq!(delays, [200, 400, 500, 500], "backoff schedule");
    // …and what happened: each gap at least the delay (a little slack for
    // timestamp rounding), and not wildly more.
    for (i, (gap, want)) in gaps.iter().zip([0.2, 0.4, 0.5, 0.5]).enumerate() {
        assert!(
            *gap >= want - 0.005,
            "gap {i} was {gap:.3}s, expected at least {want}s (gaps {gaps:?})"
        );
        assert!(
            *gap < want + 3.0,
            "gap {i} was {gap:.3}s, far more than {want}s (gaps {gaps:?})"
        );
    }
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// A program that stayed up at least reset_after restarts at once, even with
/// a long initial backoff.
#[test]
fn reset_after_restarts_a_long_runner_at_once() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[programs.runner]
command = {}
restart = "always"
backoff = {{ initial = "30s", max = "60s", reset_after = "300ms" }}
"#,
        tp(&["delay", "500", "exit", "1"])
    );
    let mut c = s.start(&cfg);
    // With the 30s initial delay this would time out if reset_after were ignored.
    let starts = c.wait_events("started", Some("runner"), 3, Duration::from_secs(10));
    let delays: Vec<u64> = c
        .events_of("restarting", Some("runner"))
        .iter()
        .take(2)
        .map(|e| e["delay_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(delays, [0, 0]);
    let gap = ev_time(&starts[2]) - ev_time(&starts[1]);
    assert!(gap >= 0.5, "it ran for its 500ms: {gap}");
    assert!(gap < 5.0, "restart was not immediate: {gap}s");
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// never: no restart; on-failure: restart on a non-zero exit or a signal,
/// not on exit 0; always: restart even on exit 0.
#[test]
fn restart_policies() {
    let s = Scratch::new();
    let quick = r#"backoff = { initial = "20ms", max = "50ms" }"#;
    let prog = |name: &str, restart: &str, steps: &[&str]| {
        format!(
            "[programs.{name}]\ncommand = {}\nrestart = \"{restart}\"\n{quick}\n\n",
            tp(steps)
        )
    };
    let cfg = [
        prog("never_fail", "never", &["exit", "3"]),
        prog("never_ok", "never", &["exit", "0"]),
        prog("onfail_ok", "on-failure", &["exit", "0"]),
        prog("onfail_fail", "on-failure", &["exit", "2"]),
        prog("onfail_signal", "on-failure", &["kill", "15"]),
        prog("always_ok", "always", &["exit", "0"]),
    ]
    .concat();
    let mut c = s.start(&cfg);
    // The restarting ones come back again and again…
    for name in ["onfail_fail", "onfail_signal", "always_ok"] {
        c.wait_events("started", Some(name), 5, TIMEOUT);
    }
    // …and by then (several backoff periods later) the others would have too.
    for name in ["never_fail", "never_ok", "onfail_ok"] {
        c.wait_event("exited", Some(name), TIMEOUT);
        assert_eq!(
            c.events_of("started", Some(name)).len(),
            1,
            "{name} was restarted\n{}",
            c.dump()
        );
        assert_eq!(c.events_of("exited", Some(name)).len(), 1, "{name} exited");
    }
    let status = |name: &str| c.events_of("exited", Some(name))[0]["status"].clone();
    assert_eq!(status("never_fail"), "exit status 3");
    assert_eq!(status("onfail_signal"), "killed by SIGTERM");
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// Past max_restarts within restart_window, corral gives up (FATAL); a
/// critical program that gives up takes corral down with its status.
#[test]
fn max_restarts_gives_up() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[programs.doomed]
command = {}
restart = "always"
backoff = {{ initial = "20ms", max = "20ms" }}
max_restarts = 3
restart_window = "1m"
critical = true
"#,
        tp(&["exit", "5"])
    );
    let mut c = s.start(&cfg);
    assert_eq!(c.wait_exit(TIMEOUT), 5, "corral exits with doomed's status");
    let gave_up = c.wait_message("gave up", Some("doomed"), TIMEOUT);
    assert_eq!(gave_up["message"], "gave up after 3 restarts within 1m");
    assert_eq!(c.events_of("started", Some("doomed")).len(), 4);
}

/// A non-critical program that gives up stays down while the rest runs on.
#[test]
fn fatal_program_stays_down_others_run() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[programs.doomed]
command = {}
restart = "on-failure"
backoff = {{ initial = "20ms", max = "20ms" }}
max_restarts = 2

[programs.steady]
command = {}
restart = "always"
backoff = {{ initial = "20ms", max = "20ms" }}
"#,
        tp(&["exit", "1"]),
        tp(&["exit", "0"]),
    );
    let mut c = s.start(&cfg);
    c.wait_message("gave up after 2 restarts", Some("doomed"), TIMEOUT);
    let doomed_starts = c.events_of("started", Some("doomed")).len();
    assert_eq!(doomed_starts, 3);
    // steady keeps restarting well after doomed gave up; doomed does not.
    let seen = c.events_of("started", Some("steady")).len();
    c.wait_events("started", Some("steady"), seen + 10, TIMEOUT);
    assert_eq!(c.events_of("started", Some("doomed")).len(), doomed_starts);
    assert!(
        c.alive(),
        "a non-critical FATAL program must not end corral"
    );
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// Restarts older than restart_window do not count toward max_restarts.
#[test]
fn restart_window_forgets_old_restarts() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[programs.slowflaky]
command = {}
restart = "always"
backoff = {{ initial = "300ms", max = "300ms" }}
max_restarts = 1
restart_window = "200ms"
"#,
        tp(&["exit", "1"])
    );
    let mut c = s.start(&cfg);
    // One restart per 300ms never exceeds 1 per 200ms: it keeps going.
    c.wait_events("started", Some("slowflaky"), 5, TIMEOUT);
    assert!(
        c.events()
            .iter()
            .all(|e| !e["message"].as_str().unwrap_or("").contains("gave up")),
        "gave up although every restart was outside the window\n{}",
        c.dump()
    );
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}
