//! The `[supervisor] http` listener through real HTTP: /livez, /readyz,
//! /metrics (checked by the real `promtool`), 404 for anything else.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

/// A plain HTTP/1.1 request; returns (status, body).
fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the probe port");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_string())
}

fn get(port: u16, path: &str) -> (u16, String) {
    http(port, "GET", path)
}

fn http_config(port: u16) -> String {
    format!("[supervisor]\nhttp = \"127.0.0.1:{port}\"\n\n")
}

/// The names in a /readyz answer's `not_ready`, with their states.
fn not_ready(body: &str) -> BTreeMap<String, String> {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["not_ready"]
        .as_array()
        .unwrap_or_else(|| panic!("no not_ready in {body}"))
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn livez_readyz_and_unknown_paths() {
    let s = Scratch::new();
    let port = free_port();
    let cfg = format!(
        r#"{http}
[programs.gate]
command = {wait}
ready = {{ file = {gate}, timeout = "60s" }}

[programs.app]
command = {wait}
depends_on = ["gate"]

[programs.slowstop]
command = {slowstop}
stop_timeout = "10s"
"#,
        http = http_config(port),
        wait = tp(&["wait"]),
        gate = q(&s.p("gate-ready")),
        slowstop = tp(&["ignore-term", "wait"]),
    );
    let mut c = s.start(&cfg);
    c.wait_message("serving /livez /readyz /metrics", None, TIMEOUT);
    c.wait_event("started", Some("gate"), TIMEOUT);
    c.wait_event("started", Some("slowstop"), TIMEOUT);

    assert_eq!(get(port, "/livez"), (200, "ok\n".into()));
    let (code, body) = get(port, "/readyz");
    assert_eq!(code, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["shutting_down"], false);
    let want: BTreeMap<String, String> = [("app", "STOPPED"), ("gate", "STARTING")]
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect();
    assert_eq!(not_ready(&body), want, "{body}");

    std::fs::write(s.path("gate-ready"), "").unwrap();
    wait_until("/readyz to answer 200", TIMEOUT, || {
        get(port, "/readyz").0 == 200
    });
    let (_, body) = get(port, "/readyz");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], true, "{body}");
    assert!(not_ready(&body).is_empty());

    // A program stopped on purpose is not wanted: still ready.
    s.ctl(&["stop", "app"]).ok();
    assert_eq!(get(port, "/readyz").0, 200);

    let (code, body) = get(port, "/nope");
    assert_eq!(code, 404, "{body}");
    assert_eq!(http(port, "POST", "/livez").0, 405);

    // Shutting down (slowstop sits out its grace): not ready, still alive.
    c.term();
    c.wait_message("shutting down", None, TIMEOUT);
    let (code, body) = get(port, "/readyz");
    assert_eq!(code, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["shutting_down"], true, "{body}");
    assert_eq!(get(port, "/livez").0, 200);
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// Runs `promtool check metrics` on `text`; panics with its complaints.
fn promtool_check(text: &str) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run promtool ({e}): install it (Debian/Ubuntu: apt-get install prometheus; \
             scripts/test installs it)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n---- metrics ----\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Samples by `name{labels}`.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            (
                key.to_string(),
                value.parse().unwrap_or_else(|_| panic!("{l:?}")),
            )
        })
        .collect()
}

fn metrics(port: u16) -> (String, BTreeMap<String, f64>) {
    let (code, body) = get(port, "/metrics");
    assert_eq!(code, 200, "{body}");
    let map = samples(&body);
    (body, map)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn metrics_pass_promtool_and_follow_the_programs() {
    let s = Scratch::new();
    let port = free_port();
    let cfg = format!(
        r#"{http}
[programs.victim]
command = {wait}
restart = "always"
backoff = {{ initial = "10ms" }}

[programs.gate]
command = {wait}
ready = {{ file = {never}, timeout = "60s" }}

[programs.idle]
command = {wait}
autostart = false
"#,
        http = http_config(port),
        wait = tp(&["wait"]),
        never = q(&s.p("never")),
    );
    let mut c = s.start(&cfg);
    c.wait_event("started", Some("victim"), TIMEOUT);
    c.wait_event("started", Some("gate"), TIMEOUT);

    let (text, m) = metrics(port);
    promtool_check(&text);
    for (family, kind) in [
        ("corral_program_up", "gauge"),
        ("corral_program_ready", "gauge"),
        ("corral_program_restarts_total", "counter"),
        ("corral_program_start_time_seconds", "gauge"),
        ("corral_reaped_total", "counter"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "{family}: {text}"
        );
    }
    let v = |m: &BTreeMap<String, f64>, metric: &str, program: &str| {
        let key = format!("{metric}{{program=\"{program}\"}}");
        *m.get(&key).unwrap_or_else(|| panic!("no {key}"))
    };
    assert_eq!(v(&m, "corral_program_up", "victim"), 1.0);
    assert_eq!(v(&m, "corral_program_ready", "victim"), 1.0);
    assert_eq!(v(&m, "corral_program_up", "gate"), 1.0);
    assert_eq!(v(&m, "corral_program_ready", "gate"), 0.0);
    assert_eq!(v(&m, "corral_program_up", "idle"), 0.0);
    assert_eq!(v(&m, "corral_program_restarts_total", "victim"), 0.0);
    assert!(!m.contains_key("corral_program_start_time_seconds{program=\"idle\"}"));
    let started = v(&m, "corral_program_start_time_seconds", "victim");
    assert!(
        (now() - started).abs() < 30.0,
        "start time {started}, now {}",
        now()
    );

    // SIGKILL: the restart shows as a count, a new start time, a reap.
    let victim = c.pid_of("victim");
    // SAFETY: plain kill(2) of a process this test started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let m = wait_for("the restart to show in /metrics", TIMEOUT, || {
        let (_, m) = metrics(port);
        (v(&m, "corral_program_restarts_total", "victim") == 1.0
            && v(&m, "corral_program_up", "victim") == 1.0)
            .then_some(m)
    });
    let (text, _) = metrics(port);
    promtool_check(&text);
    let restarted = v(&m, "corral_program_start_time_seconds", "victim");
    assert!(restarted > started, "{restarted} after {started}");
    assert!((now() - restarted).abs() < 30.0);
    assert!(m["corral_reaped_total"] >= 1.0, "{m:?}");
    assert_eq!(s.status_of("victim")["restarts"], 1);

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// What corral logs, its interfaces already show: the moment a "ready" line
/// appears, /metrics says that program is ready. Each program here starts
/// the next one, so corral spawns a process between deciding "ready" and
/// publishing it. It holds because the listeners share the loop's one
/// thread: a question is answered only when the loop waits again, after it
/// has published. Tests (and users' scripts) that act on a log line rely on
/// this; it guards against moving the listeners to other threads.
#[test]
fn a_logged_state_is_already_published() {
    let s = Scratch::new();
    let port = free_port();
    let n = 12;
    let mut cfg = http_config(port);
    for i in 0..n {
        let dep = if i == 0 {
            String::new()
        } else {
            format!("depends_on = [\"p{}\"]\n", i - 1)
        };
        cfg.push_str(&format!(
            "[programs.p{i}]\ncommand = {}\nready = {{ log = \"^up$\" }}\n{dep}\n",
            tp(&["print", "up", "wait"])
        ));
    }
    let mut c = s.start(&cfg);
    c.wait_message("serving /livez /readyz /metrics", None, TIMEOUT);
    for i in 0..n {
        let name = format!("p{i}");
        c.wait_event("ready", Some(&name), TIMEOUT);
        let (_, m) = metrics(port);
        let key = format!("corral_program_ready{{program=\"{name}\"}}");
        assert_eq!(
            m.get(&key),
            Some(&1.0),
            "{key} right after its 'ready' line"
        );
    }
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn the_probe_port_waits_out_running_out_of_descriptors() {
    use corral_testkit::listener::assert_idle_when_out_of_fds;
    let s = Scratch::new();
    let port = free_port();
    let cfg = format!(
        "{http}[programs.app]\ncommand = {wait}\n",
        http = http_config(port),
        wait = tp(&["wait"]),
    );
    let mut c = s.start(&cfg);
    assert!(c.pid1, "the probe port is checked on corral as PID 1");
    c.wait_message("serving /livez /readyz /metrics", None, TIMEOUT);
    c.wait_event("started", Some("app"), TIMEOUT);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert_idle_when_out_of_fds(c.pid, addr, "/readyz");
    assert_eq!(get(port, "/livez"), (200, "ok\n".into()));
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}
