//! `/programs` and `/chromium/restart` against the real corral-api under
//! corral, through corral's control socket: list/start/stop/restart of real
//! programs, and a graceful restart of a real Chromium under Xvfb that
//! answers once DevTools answers again.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn program<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no program {name} in {list}"))
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn programs_list_start_stop_restart() {
    let (p1, p2) = (free_port(), free_port());
    let tp = testprog();
    let programs = format!(
        "[programs.worker]\ncommand = {w}\nready = {{ tcp = \"127.0.0.1:{p1}\" }}\n\n\
         [programs.idle]\ncommand = {i}\nready = {{ tcp = \"127.0.0.1:{p2}\" }}\nautostart = false\n\n\
         [programs.broken]\ncommand = {b}\nautostart = false\nrestart = \"never\"\n\
         ready = {{ tcp = \"127.0.0.1:1\", timeout = \"5s\" }}\n",
        w = argv(&[tp.as_str(), "print", "worker-up", "listen", &format!("127.0.0.1:{p1}"), "wait"]),
        i = argv(&[tp.as_str(), "listen", &format!("127.0.0.1:{p2}"), "wait"]),
        b = argv(&[tp.as_str(), "eprint", "broken-start", "exit", "3"]),
    );
    let env = Env::start(Setup {
        programs,
        ..Setup::default()
    });
    // corral-api answers before corral's readiness check of it has polled:
    // wait for its own RUNNING too.
    let list = wait_for("worker and api RUNNING", TIMEOUT, || {
        let l = env.get("/programs").expect(200).json();
        (program(&l, "worker")["state"] == "RUNNING" && program(&l, "api")["state"] == "RUNNING")
            .then_some(l)
    });
    assert_eq!(list["shutting_down"], false);
    let w = program(&list, "worker");
    assert!(w["pid"].as_i64().unwrap() > 1 && w["ready"] == true, "{w}");
    assert_eq!(program(&list, "api")["state"], "RUNNING");
    let idle = program(&list, "idle");
    assert_eq!(
        (idle["state"].as_str(), idle["autostart"].as_bool()),
        (Some("STOPPED"), Some(false))
    );
    assert!(listening(p1) && !listening(p2));

    // start: answers once ready.
    let v = env
        .post("/programs/idle/start", &Value::Null)
        .expect(200)
        .json();
    let idle = program(&v, "idle");
    assert_eq!(
        (idle["state"].as_str(), idle["ready"].as_bool()),
        (Some("RUNNING"), Some(true))
    );
    assert!(listening(p2), "ready means listening");
    let idle_pid = idle["pid"].as_i64().unwrap();

    // restart: a new process, ready again.
    let v = env
        .post("/programs/idle/restart", &Value::Null)
        .expect(200)
        .json();
    let idle = program(&v, "idle");
    assert_eq!(idle["state"], "RUNNING");
    assert_ne!(idle["pid"].as_i64().unwrap(), idle_pid, "{idle}");
    assert!(listening(p2));

    // stop: answers once it is down.
    let v = env
        .post("/programs/worker/stop", &Value::Null)
        .expect(200)
        .json();
    assert_eq!(program(&v, "worker")["state"], "STOPPED");
    assert!(!listening(p1), "stopped means the port is closed");
    let v = env
        .post("/programs/worker/start", &Value::Null)
        .expect(200)
        .json();
    assert_eq!(program(&v, "worker")["state"], "RUNNING");
    assert!(listening(p1));

    // Errors: unknown program 404, a start that fails 409.
    env.post("/programs/nope/start", &Value::Null)
        .expect_error(404);
    let v = env
        .post("/programs/broken/start", &Value::Null)
        .expect_error(409);
    assert!(v["detail"].as_str().unwrap().contains("broken"), "{v}");
    env.get("/programs/worker/start").expect_error(405);
}

#[test]
fn programs_api_without_corral_is_503() {
    // corral-api whose socket leads nowhere.
    let env = Env::start(Setup {
        api_args: vec!["--socket".into(), "/nonexistent/corral.sock".into()],
        ..Setup::default()
    });
    let v = env.get("/programs").expect_error(503);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/corral.sock"),
        "{v}"
    );
    env.post("/programs/api/restart", &Value::Null)
        .expect_error(503);
    env.post("/chromium/restart", &Value::Null)
        .expect_error(503);
}

/// DevTools' `/json/version` of the Chromium on `port`.
fn cdp_version(port: u16) -> Option<Value> {
    let r = try_request(port, "GET", "/json/version", &[], b"").ok()?;
    (r.status == 200).then(|| r.json())
}

#[test]
fn programs_chromium_restart_with_a_real_chromium() {
    let cdp = free_port();
    let display = free_display();
    let profile = tempfile::tempdir().unwrap();
    let (port_flag, dir_flag) = (
        format!("--remote-debugging-port={cdp}"),
        format!("--user-data-dir={}", profile.path().display()),
    );
    let mut chromium = CHROMIUM.to_vec();
    chromium.extend([port_flag.as_str(), dir_flag.as_str(), "about:blank"]);
    let programs = format!(
        "[programs.xvfb]\ncommand = {x}\nready = {{ x11 = \":{display}\", timeout = \"30s\" }}\n\n\
         [programs.chromium]\ncommand = {c}\nenv = {{ DISPLAY = \":{display}\" }}\nbinds_to = [\"xvfb\"]\n\
         ready = {{ tcp = \"127.0.0.1:{cdp}\", timeout = \"60s\" }}\nstop_signal = \"TERM\"\nstop_timeout = \"15s\"\n",
        x = argv(&["Xvfb", &format!(":{display}"), "-screen", "0", "1280x720x24", "-nolisten", "tcp"]),
        c = argv(&chromium),
    );
    let env = Env::start(Setup {
        programs,
        api_args: vec!["--cdp".into(), format!("http://127.0.0.1:{cdp}")],
        ..Setup::default()
    });
    let before = wait_for("Chromium's DevTools", Duration::from_secs(90), || {
        cdp_version(cdp)
    });
    let browser = before["Browser"].as_str().unwrap().to_string();
    let ws_before = before["webSocketDebuggerUrl"].as_str().unwrap().to_string();
    let list = env.get("/programs").expect(200).json();
    let pid_before = program(&list, "chromium")["pid"].as_i64().unwrap();
    assert_eq!(program(&list, "xvfb")["state"], "RUNNING");

    let t = Instant::now();
    let v = env
        .post("/chromium/restart", &Value::Null)
        .expect(200)
        .json();
    let took = t.elapsed();
    assert_eq!(v["restarted"], "chromium");
    assert_eq!(v["browser"], browser.as_str());
    let (elapsed, running) = (
        v["elapsed_ms"].as_u64().unwrap(),
        v["running_after_ms"].as_u64().unwrap(),
    );
    assert!(
        running <= elapsed && elapsed <= took.as_millis() as u64 + 1,
        "{v} vs {took:?}"
    );
    // It answered only once DevTools answers: no wait needed now.
    let after = cdp_version(cdp).expect("DevTools answers as soon as /chromium/restart has");
    assert_ne!(
        after["webSocketDebuggerUrl"].as_str().unwrap(),
        ws_before,
        "a new browser"
    );
    let list = env.get("/programs").expect(200).json();
    let c = program(&list, "chromium");
    assert_eq!(c["state"], "RUNNING");
    assert_ne!(c["pid"].as_i64().unwrap(), pid_before);
    // Gracefully: corral stopped it with TERM and it exited by itself, not
    // with a KILL after the grace period (15 s).
    assert!(elapsed < 15_000, "{v}");
    let killed = env
        .corral
        .lines()
        .into_iter()
        .any(|l| l.contains("\"program\":\"chromium\"") && l.contains("SIGKILL"));
    assert!(!killed, "chromium needed a KILL:\n{}", env.corral.dump());
    // Xvfb was not restarted with it.
    assert_eq!(program(&list, "xvfb")["restarts"], 0);

    // And the generic restart of the same program works too.
    let v = env
        .post("/programs/chromium/restart", &Value::Null)
        .expect(200)
        .json();
    assert_eq!(program(&v, "chromium")["state"], "RUNNING");
    wait_for("DevTools after /programs/chromium/restart", TIMEOUT, || {
        cdp_version(cdp)
    });
}
