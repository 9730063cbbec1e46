//! binds_to cascades: when the target dies, what binds to it is stopped and
//! started again only once the target is ready again; depends_on dependents
//! are left alone.

mod common;

use common::*;

#[test]
fn binds_to_dependent_follows_its_target() {
    let s = Scratch::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let (log, terms) = (s.p("events"), s.p("terms"));
    let cfg = format!(
        r#"
[programs.xvfb]
command = {xvfb}
ready = {{ tcp = {addr} }}
restart = "always"
backoff = {{ initial = "100ms" }}

[programs.chromium]
command = {chromium}
binds_to = ["xvfb"]
ready = {{ log = "^chromium-up$" }}

[programs.websockify]
command = {websockify}
depends_on = ["xvfb"]
ready = {{ file = {websockify_ready} }}
"#,
        // Start-up work, then "xvfb-ready" just before it listens.
        xvfb = tp(&[
            "delay",
            "300",
            "append",
            &log,
            "xvfb-ready $PID",
            "listen",
            &addr,
            "wait"
        ]),
        addr = q(&addr),
        chromium = tp(&[
            "append",
            &log,
            "chromium-start $PID",
            "on-term",
            &terms,
            "chromium got TERM",
            "print",
            "chromium-up",
            "wait"
        ]),
        websockify = tp(&[
            "on-term",
            &terms,
            "websockify got TERM",
            "touch",
            &s.p("websockify-ready"),
            "wait"
        ]),
        websockify_ready = q(&s.p("websockify-ready")),
    );
    let mut c = s.start(&cfg);
    c.wait_event("ready", Some("chromium"), TIMEOUT);
    c.wait_event("ready", Some("websockify"), TIMEOUT);
    let chromium1 = c.pid_of("chromium");
    let websockify = c.pid_of("websockify");
    let xvfb1 = c.pid_of("xvfb");

    // SAFETY: plain kill(2) of a process this test started.
    unsafe { libc::kill(xvfb1, libc::SIGKILL) };

    // chromium is stopped with its stop signal…
    wait_until("chromium to get SIGTERM", TIMEOUT, || {
        read(&s.path("terms")).contains("chromium got TERM")
    });
    let stopped = c.wait_event("stopped", Some("chromium"), TIMEOUT);
    assert_eq!(
        stopped["status"], "exit status 0",
        "it ended through on-term"
    );
    // …and comes back, after a new xvfb is ready.
    c.wait_events("started", Some("chromium"), 2, TIMEOUT);
    c.wait_events("ready", Some("chromium"), 2, TIMEOUT);
    let chromium2 = c.pid_of("chromium");
    assert_ne!(chromium1, chromium2, "chromium was not restarted");
    let xvfb2 = c.pid_of("xvfb");
    assert_ne!(xvfb1, xvfb2);

    // The order things really happened in (each wrote its own line).
    let events: Vec<String> = lines(&s.path("events"))
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        events,
        [
            "xvfb-ready",
            "chromium-start",
            "xvfb-ready",
            "chromium-start"
        ],
        "chromium must start again only after xvfb is ready again"
    );
    // corral's account agrees: the second chromium start follows the second xvfb ready.
    let all = c.events();
    let nth = |msg: &str, prog: &str, n: usize| {
        all.iter()
            .enumerate()
            .filter(|(_, e)| is(e, msg, Some(prog)))
            .nth(n)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("no {msg} #{n} for {prog}"))
    };
    assert!(nth("ready", "xvfb", 1) < nth("started", "chromium", 1));

    // depends_on: websockify was left alone, same pid, no TERM.
    assert_eq!(c.events_of("started", Some("websockify")).len(), 1);
    assert!(alive(websockify), "websockify was stopped");
    assert_eq!(c.pid_of("websockify"), websockify);
    assert!(!read(&s.path("terms")).contains("websockify"));

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}
