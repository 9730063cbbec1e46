//! Start ordering with each readiness kind, readiness timeouts, and
//! independent programs starting in parallel.
//!
//! Pattern: `dep` becomes ready after some start-up work and writes a marker
//! file just before its readiness condition holds; `app` depends on it and
//! records at its own start whether the marker exists. Started too early, it
//! records `TOO-EARLY`.

mod common;

use common::*;

/// `app`'s command: records whether `mark` exists when it starts, then stays up.
fn recorder(s: &Scratch) -> String {
    let (mark, rec) = (s.p("mark"), s.p("rec"));
    sh(&format!(
        "if [ -e {mark} ]; then echo after-ready >> {rec}; else echo TOO-EARLY >> {rec}; fi; exec sleep 1000"
    ))
}

/// Runs `dep` (with `command` and `ready`) and a dependent `app`, and checks
/// that `app` started only once `dep` was ready.
fn dependent_waits_for(s: &Scratch, command: &str, ready: &str, extra: &str) {
    let app = recorder(s);
    let cfg = format!(
        r#"
[programs.dep]
command = {command}
ready = {ready}
restart = "never"
{extra}

[programs.app]
command = {app}
depends_on = ["dep"]
"#
    );
    let mut c = s.start(&cfg);
    let rec = s.path("rec");
    wait_until("app to record its start", TIMEOUT, || {
        !read(&rec).is_empty()
    });
    assert_eq!(
        lines(&rec),
        ["after-ready"],
        "app started before dep was ready"
    );

    // corral's own account agrees: dep started, became ready, then app started.
    c.wait_event("started", Some("app"), TIMEOUT);
    let events = c.events();
    let index = |msg: &str, prog: &str| {
        events
            .iter()
            .position(|e| is(e, msg, Some(prog)))
            .unwrap_or_else(|| panic!("no {msg} event for {prog}\n{}", c.dump()))
    };
    assert!(index("started", "dep") < index("ready", "dep"));
    assert!(index("ready", "dep") < index("started", "app"));

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn tcp_readiness_orders_the_start() {
    let s = Scratch::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let mark = s.p("mark");
    let command = tp(&["delay", "300", "touch", &mark, "listen", &addr, "wait"]);
    dependent_waits_for(&s, &command, &format!("{{ tcp = {} }}", q(&addr)), "");
}

#[test]
fn http_readiness_orders_the_start() {
    let s = Scratch::new();
    let port = free_port();
    let mark = s.p("mark");
    let command = sh(&format!(
        "sleep 0.3; touch {mark}; exec python3 -m http.server {port} --bind 127.0.0.1"
    ));
    let ready = format!(
        "{{ http = {}, timeout = \"20s\" }}",
        q(&format!("http://127.0.0.1:{port}/"))
    );
    let cwd = format!("cwd = {}", q(&s.p("")));
    dependent_waits_for(&s, &command, &ready, &cwd);
}

#[test]
fn x11_readiness_orders_the_start() {
    let s = Scratch::new();
    let display = free_display();
    let mark = s.p("mark");
    let command = sh(&format!(
        "sleep 0.3; touch {mark}; exec Xvfb :{display} -nolisten tcp"
    ));
    let ready = format!("{{ x11 = \":{display}\", timeout = \"20s\" }}");
    dependent_waits_for(&s, &command, &ready, "");
}

#[test]
fn file_readiness_orders_the_start() {
    let s = Scratch::new();
    let mark = s.p("mark");
    let command = tp(&["delay", "300", "touch", &mark, "wait"]);
    dependent_waits_for(&s, &command, &format!("{{ file = {} }}", q(&mark)), "");
}

#[test]
fn log_readiness_orders_the_start() {
    let s = Scratch::new();
    let mark = s.p("mark");
    let command = tp(&[
        "print",
        "booting, port 0 not yet",
        "delay",
        "300",
        "touch",
        &mark,
        "eprint",
        "listening on port 1234",
        "wait",
    ]);
    let ready = format!("{{ log = {} }}", q(r"^listening on port \d+$"));
    dependent_waits_for(&s, &command, &ready, "");
}

#[test]
fn exec_readiness_orders_the_start() {
    let s = Scratch::new();
    let mark = s.p("mark");
    let command = tp(&["delay", "300", "touch", &mark, "wait"]);
    let check = argv(&["sh", "-c", &format!("test -e {mark}")]);
    dependent_waits_for(&s, &command, &format!("{{ exec = {check} }}"), "");
}

/// Every kind of check that never passes fails its start with "not ready
/// within", the program is stopped, and what depends on it never starts.
#[test]
fn ready_timeouts_fail_the_start_clearly() {
    let s = Scratch::new();
    let unused = format!("127.0.0.1:{}", free_port());
    let mute = format!("127.0.0.1:{}", free_port());
    let display = free_display();
    let idle = tp(&["print", "nothing to see", "wait"]);
    // `mute` accepts TCP connections but never answers HTTP: not http-ready.
    let mute_listener = tp(&["listen", &mute, "wait"]);
    let kinds = [
        ("tcp", q(&unused)),
        ("http", q(&format!("http://{mute}/"))),
        ("x11", q(&format!(":{display}"))),
        ("file", q(&s.p("never-created"))),
        ("log", q("this line never comes")),
        ("exec", argv(&["false"])),
    ];
    let mut cfg = String::new();
    let mut names = Vec::new();
    for (kind, value) in &kinds {
        let name = format!("never_{kind}");
        let command = if *kind == "http" {
            &mute_listener
        } else {
            &idle
        };
        cfg.push_str(&format!(
            "[programs.{name}]\ncommand = {command}\nready = {{ {kind} = {value}, timeout = \"300ms\" }}\nrestart = \"never\"\nstop_timeout = \"5s\"\n\n"
        ));
        names.push(name);
    }
    cfg.push_str(&format!(
        "[programs.app]\ncommand = {}\ndepends_on = {}\n",
        tp(&["touch", &s.p("app-ran"), "wait"]),
        argv(&names)
    ));
    let mut c = s.start(&cfg);
    for name in &names {
        let e = c.wait_message("start failed", Some(name), TIMEOUT);
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.contains("not ready within 300ms"),
            "{name}: unclear failure message {msg:?}"
        );
        // The failed start is stopped: the process is gone.
        let ns_pid = ev_pid(&c.wait_event("started", Some(name), TIMEOUT));
        wait_until(&format!("{name} to be stopped"), TIMEOUT, || {
            c.try_host_pid(ns_pid).is_none()
        });
    }
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
    assert!(
        c.events_of("started", Some("app")).is_empty(),
        "app started although its dependencies never became ready"
    );
    assert!(!s.path("app-ran").exists());
}

/// Programs that do not depend on each other start together: both are
/// started before either is ready; what needs both waits for both.
#[test]
fn independent_programs_start_in_parallel() {
    let s = Scratch::new();
    let (a, b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let cfg = format!(
        r#"
[programs.a]
command = {a_cmd}
ready = {{ tcp = {a_addr} }}

[programs.b]
command = {b_cmd}
ready = {{ tcp = {b_addr} }}

[programs.c]
command = {c_cmd}
depends_on = ["a", "b"]
"#,
        a_cmd = tp(&["delay", "500", "listen", &a, "wait"]),
        b_cmd = tp(&["delay", "800", "listen", &b, "wait"]),
        a_addr = q(&a),
        b_addr = q(&b),
        c_cmd = tp(&["wait"]),
    );
    let mut c = s.start(&cfg);
    c.wait_event("started", Some("c"), TIMEOUT);
    let events = c.events();
    let index = |msg: &str, prog: &str| {
        events
            .iter()
            .position(|e| is(e, msg, Some(prog)))
            .unwrap_or_else(|| panic!("no {msg} event for {prog}"))
    };
    let first_ready = index("ready", "a").min(index("ready", "b"));
    assert!(
        index("started", "a") < first_ready && index("started", "b") < first_ready,
        "a and b were not started in parallel\n{}",
        c.dump()
    );
    assert!(index("ready", "a") < index("started", "c"));
    assert!(index("ready", "b") < index("started", "c"));
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}
