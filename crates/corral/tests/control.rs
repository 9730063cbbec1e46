//! The real `corralctl` against the real corral (PID 1 of its own PID
//! namespace): every verb, its output and its exit code.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// xvfb; chromium binds_to xvfb; websockify depends_on xvfb. Each is ready
/// once its TERM handler (which appends "NAME" to `terms`) is in place, and
/// writes nothing else.
fn trio(s: &Scratch) -> String {
    let prog = |name: &str, needs: &str| {
        format!(
            "[programs.{name}]\ncommand = {}\nready = {{ log = \"^{name}-up$\" }}\n{needs}\n\n",
            tp(&[
                "on-term",
                &s.p("terms"),
                name,
                "print",
                &format!("{name}-up"),
                "wait"
            ]),
        )
    };
    [
        prog("xvfb", ""),
        prog("chromium", "binds_to = [\"xvfb\"]"),
        prog("websockify", "depends_on = [\"xvfb\"]"),
    ]
    .concat()
}

/// A program that is only started on request and is ready once spawned.
fn idle(name: &str) -> String {
    format!(
        "[programs.{name}]\ncommand = {}\nautostart = false\n\n",
        tp(&["wait"])
    )
}

fn wait_ready(c: &Corral, names: &[&str]) {
    for name in names {
        c.wait_event("ready", Some(name), TIMEOUT);
    }
}

#[test]
fn status_shows_a_table_json_a_subset_and_refuses_unknown_names() {
    let s = Scratch::new();
    let mut c = s.start(&(trio(&s) + &idle("idle")));
    wait_ready(&c, &["xvfb", "chromium", "websockify"]);
    let xvfb = ev_pid(&c.wait_event("started", Some("xvfb"), TIMEOUT));

    let table = s.ctl(&["status"]).ok().stdout;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][..5],
        ["NAME", "STATE", "PID", "UPTIME", "RESTARTS"],
        "{table}"
    );
    let names: Vec<&str> = rows[1..].iter().map(|r| r[0]).collect();
    assert_eq!(names, ["chromium", "idle", "websockify", "xvfb"], "{table}");
    let row = |n: &str| rows.iter().find(|r| r[0] == n).unwrap().clone();
    assert_eq!(row("xvfb")[1], "RUNNING");
    assert_eq!(row("xvfb")[2], xvfb.to_string());
    assert_eq!(row("xvfb")[4], "0");
    assert_eq!(row("idle")[1..4], ["STOPPED", "-", "-"]);

    let all = s.status(&[]);
    assert_eq!(all.len(), 4);
    let x = s.status_of("xvfb");
    assert_eq!(x["state"], "RUNNING");
    assert_eq!(st_pid(&x), xvfb);
    assert_eq!(x["ready"], true);
    assert_eq!(x["restarts"], 0);
    assert!(x["uptime_ms"].as_u64().is_some(), "{x}");
    assert_eq!(s.status_of("idle")["pid"], serde_json::Value::Null);

    // A named subset, in name order.
    let subset = s.ctl(&["status", "xvfb", "chromium"]).ok().stdout;
    let names: Vec<&str> = subset
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["chromium", "xvfb"], "{subset}");

    // Unknown names: exit 2, nothing on stdout, the name on stderr.
    let out = s.ctl(&["status", "xvfb", "ghost"]).expect(2);
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.contains("no program named \"ghost\""), "{out:?}");
    let out = s.ctl(&["--json", "status", "ghost"]).expect(2);
    let err = out.json();
    assert_eq!(err["kind"], "error");
    assert_eq!(err["code"], "unknown_program");

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn stop_takes_dependents_down_first_and_start_brings_up_requirements() {
    let s = Scratch::new();
    let mut c = s.start(&(trio(&s) + &idle("other")));
    wait_ready(&c, &["xvfb", "chromium", "websockify"]);

    let out = s.ctl(&["stop", "xvfb"]).ok();
    assert_eq!(out.stdout, "xvfb: stopped\n");
    // Both dependents got their TERM before xvfb did.
    let terms = lines(&s.path("terms"));
    assert_eq!(terms.len(), 3, "{terms:?}");
    assert_eq!(terms[2], "xvfb", "xvfb must stop last: {terms:?}");
    for name in ["xvfb", "chromium", "websockify"] {
        assert_eq!(s.status_of(name)["state"], "STOPPED", "{name}");
    }

    // Other activity (a start, its events, a reconcile) does not bring
    // them back: they stay down until asked.
    assert_eq!(s.ctl(&["start", "other"]).ok().stdout, "other: started\n");
    for name in ["xvfb", "chromium", "websockify"] {
        assert_eq!(s.status_of(name)["state"], "STOPPED", "{name}");
        assert_eq!(c.events_of("started", Some(name)).len(), 1, "{name}");
    }

    // Starting chromium starts xvfb first, and only that.
    let out = s.ctl(&["start", "chromium"]).ok();
    assert_eq!(out.stdout, "chromium: started\n");
    let x = s.status_of("xvfb");
    assert_eq!(
        (x["state"].as_str(), x["ready"].as_bool()),
        (Some("RUNNING"), Some(true))
    );
    assert_eq!(s.status_of("chromium")["state"], "RUNNING");
    assert_eq!(s.status_of("websockify")["state"], "STOPPED");
    let events = c.events();
    let at = |msg: &str, prog: &str| {
        events
            .iter()
            .enumerate()
            .filter(|(_, e)| is(e, msg, Some(prog)))
            .map(|(i, _)| i)
            .nth(1)
            .unwrap_or_else(|| panic!("no second {msg} of {prog}"))
    };
    assert!(at("ready", "xvfb") < at("started", "chromium"));

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn restart_takes_binds_to_dependents_along_but_not_depends_on() {
    let s = Scratch::new();
    let mut c = s.start(&trio(&s));
    wait_ready(&c, &["xvfb", "chromium", "websockify"]);
    let before = |n| st_pid(&s.status_of(n));
    let (xvfb, chromium, websockify) = (before("xvfb"), before("chromium"), before("websockify"));

    let out = s.ctl(&["restart", "xvfb"]).ok();
    assert_eq!(out.stdout, "xvfb: restarted\n");
    let x = s.status_of("xvfb");
    assert_eq!(x["state"], "RUNNING");
    assert_ne!(st_pid(&x), xvfb, "xvfb has a new process");

    // chromium comes back with a new pid once xvfb is ready again.
    wait_until("chromium to run again", TIMEOUT, || {
        let p = s.status_of("chromium");
        p["ready"] == true && st_pid(&p) != chromium
    });
    // websockify was left alone.
    let w = s.status_of("websockify");
    assert_eq!(
        (w["state"].as_str(), st_pid(&w)),
        (Some("RUNNING"), websockify)
    );
    assert_eq!(c.events_of("started", Some("websockify")).len(), 1);
    let terms = lines(&s.path("terms"));
    assert_eq!(terms, ["chromium", "xvfb"], "who got TERM");
    // A restart asked for is not a restart by the policy.
    assert_eq!(s.status_of("xvfb")["restarts"], 0);

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn no_wait_returns_at_once_and_an_expired_timeout_is_exit_1() {
    let s = Scratch::new();
    let cfg = format!(
        "[programs.slow]\ncommand = {}\nautostart = false\nready = {{ file = {}, timeout = \"60s\" }}\n",
        tp(&["wait"]),
        q(&s.p("never")),
    );
    let mut c = s.start(&cfg);
    c.wait_message("corral starting", None, TIMEOUT);

    let out = s.ctl(&["start", "--no-wait", "slow"]).ok();
    assert_eq!(out.stdout, "slow: STARTING\n");
    assert_eq!(s.status_of("slow")["state"], "STARTING");

    let t = Instant::now();
    let out = s.ctl(&["start", "--timeout", "300ms", "slow"]).expect(1);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(
        out.stderr
            .contains("gave up waiting after 300ms: slow is STARTING"),
        "{out:?}"
    );
    assert!(out.stderr.contains("the action goes on"), "{out:?}");
    // …and it does.
    assert_eq!(s.status_of("slow")["state"], "STARTING");

    // Readiness comes: a waiting start now succeeds.
    std::fs::write(s.path("never"), "").unwrap();
    assert_eq!(s.ctl(&["start", "slow"]).ok().stdout, "slow: started\n");

    let out = s.ctl(&["stop", "--no-wait", "slow"]).ok();
    assert!(
        out.stdout == "slow: STOPPING\n" || out.stdout == "slow: stopped\n",
        "{out:?}"
    );
    s.wait_state("slow", "STOPPED", TIMEOUT);
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn all_means_every_program() {
    let s = Scratch::new();
    let mut c = s.start(&[idle("a"), idle("b"), idle("c")].concat());
    c.wait_message("corral starting", None, TIMEOUT);

    let out = s.ctl(&["start", "all"]).ok();
    let mut got: Vec<&str> = out.stdout.lines().collect();
    got.sort();
    assert_eq!(got, ["a: started", "b: started", "c: started"]);
    let pids: Vec<i32> = s.status(&[]).iter().map(st_pid).collect();

    let out = s.ctl(&["restart", "all"]).ok();
    assert_eq!(out.stdout.lines().count(), 3, "{out:?}");
    assert!(out.stdout.lines().all(|l| l.ends_with(": restarted")));
    let after: Vec<i32> = s.status(&[]).iter().map(st_pid).collect();
    for (old, new) in pids.iter().zip(&after) {
        assert_ne!(
            old, new,
            "restart all must give every program a new process"
        );
    }

    let out = s.ctl(&["stop", "all"]).ok();
    let mut got: Vec<&str> = out.stdout.lines().collect();
    got.sort();
    assert_eq!(got, ["a: stopped", "b: stopped", "c: stopped"]);
    assert!(s.status(&[]).iter().all(|p| p["state"] == "STOPPED"));

    let out = s.ctl(&["stop", "all", "a"]).expect(2);
    assert!(out.stderr.contains("`all` cannot be combined"), "{out:?}");

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn signal_reaches_the_whole_process_group_and_pid_prints_the_leader() {
    let s = Scratch::new();
    // The children keep TERM's default; the leader ignores it afterwards.
    let cfg = format!(
        "[programs.grp]\ncommand = {}\nready = {{ file = {} }}\nrestart = \"never\"\nstop_timeout = \"200ms\"\n\n{}",
        tp(&[
            "children",
            "2",
            "ignore-term",
            "touch",
            &s.p("ready"),
            "wait"
        ]),
        q(&s.p("ready")),
        idle("idle"),
    );
    let mut c = s.start(&cfg);
    c.wait_event("ready", Some("grp"), TIMEOUT);
    let leader = c.pid_of("grp");
    let kids = children(leader);
    assert_eq!(kids.len(), 2, "{kids:?}");

    // pid: the leader's pid as corral sees it (namespace pid).
    let ns = ev_pid(&c.wait_event("started", Some("grp"), TIMEOUT));
    assert_eq!(s.ctl(&["pid", "grp"]).ok().stdout, format!("{ns}\n"));

    let out = s.ctl(&["signal", "TERM", "grp"]).ok();
    assert_eq!(out.stdout, "sent SIGTERM to grp\n");
    wait_until("grp's children to die of TERM", TIMEOUT, || {
        kids.iter().all(|&k| !alive(k))
    });
    assert!(alive(leader), "the leader ignores TERM");
    let g = s.status_of("grp");
    assert_eq!((g["state"].as_str(), st_pid(&g)), (Some("RUNNING"), ns));

    // Signalling a program that is not running is a failed action.
    let out = s.ctl(&["signal", "HUP", "idle"]).expect(1);
    assert!(out.stderr.contains("not running: idle"), "{out:?}");
    // pid of a stopped program: failed; of an unknown one: usage.
    let out = s.ctl(&["pid", "idle"]).expect(1);
    assert!(
        out.stderr.contains("idle is not running (STOPPED)"),
        "{out:?}"
    );
    s.ctl(&["pid", "ghost"]).expect(2);
    s.ctl(&["signal", "TERM", "ghost"]).expect(2);
    // A misspelt signal is refused before anything is sent.
    let out = s.ctl(&["signal", "TREM", "grp"]).expect(2);
    assert!(out.stderr.contains("unknown signal"), "{out:?}");
    assert!(alive(leader));

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn tail_prints_the_last_lines_and_follows_new_ones() {
    let s = Scratch::new();
    // Prints a line each time it gets USR1 (`wait` returns, the trap runs;
    // the `sleep` in its group ignores USR1).
    let script = "trap 'echo got-usr1' USR1; for i in 1 2 3 4 5; do echo line $i; done; \
                  (trap '' USR1; exec sleep 100000) & echo talker-up; while :; do wait $!; done";
    let cfg = format!(
        "[programs.talker]\ncommand = {}\nready = {{ log = \"^talker-up$\" }}\n",
        sh(script)
    );
    let mut c = s.start(&cfg);
    c.wait_event("ready", Some("talker"), TIMEOUT);
    wait_until("talker's output in the ring", TIMEOUT, || {
        s.ctl(&["tail", "-n", "3", "talker"]).stdout == "line 4\nline 5\ntalker-up\n"
    });
    let out = s.ctl(&["tail", "talker"]).ok();
    assert_eq!(
        out.stdout,
        "line 1\nline 2\nline 3\nline 4\nline 5\ntalker-up\n"
    );
    let out = s.ctl(&["--json", "tail", "-n", "1", "talker"]).ok();
    assert_eq!(
        out.json(),
        serde_json::json!({"kind": "lines", "lines": ["talker-up"]})
    );
    s.ctl(&["tail", "ghost"]).expect(2);

    let follower = Follower::spawn(&s.socket(), &["tail", "-f", "-n", "1", "talker"]);
    follower.wait_matches("^talker-up$", 1, TIMEOUT);
    for n in 1..=2 {
        s.ctl(&["signal", "USR1", "talker"]).ok();
        follower.wait_matches("^got-usr1$", n, TIMEOUT);
    }
    assert_eq!(follower.lines(), ["talker-up", "got-usr1", "got-usr1"]);
    drop(follower);

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn health_is_0_when_critical_programs_are_ready_and_1_otherwise() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[programs.crit]
command = {wait}
critical = true
ready = {{ file = {crit}, timeout = "60s" }}

[programs.lazy]
command = {wait}
ready = {{ file = {lazy}, timeout = "60s" }}
"#,
        wait = tp(&["wait"]),
        crit = q(&s.p("crit-ready")),
        lazy = q(&s.p("lazy-ready")),
    );
    let mut c = s.start(&cfg);
    c.wait_event("started", Some("crit"), TIMEOUT);

    let out = s.ctl(&["health"]).expect(1);
    assert!(
        out.stderr
            .contains("not healthy: critical programs not ready: crit"),
        "{out:?}"
    );
    let out = s.ctl(&["--json", "health"]).expect(1);
    assert_eq!(
        out.json(),
        serde_json::json!({"kind": "health", "healthy": false, "not_ready": ["crit"]})
    );

    std::fs::write(s.path("crit-ready"), "").unwrap();
    c.wait_event("ready", Some("crit"), TIMEOUT);
    // lazy is not critical: still starting, and health does not care.
    let out = s.ctl(&["health", "--timeout", "2s"]).ok();
    assert_eq!(out.stdout, "healthy\n");
    assert_eq!(s.status_of("lazy")["state"], "STARTING");

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn shutdown_returns_only_once_corral_has_exited() {
    let s = Scratch::new();
    // Takes its whole 1s grace: the shutdown cannot be instant.
    let cfg = format!(
        "[programs.slow]\ncommand = {}\nready = {{ file = {} }}\nstop_timeout = \"1s\"\n",
        tp(&["ignore-term", "touch", &s.p("ready"), "wait"]),
        q(&s.p("ready")),
    );
    let mut c = s.start(&cfg);
    c.wait_event("ready", Some("slow"), TIMEOUT);
    let slow = c.pid_of("slow");

    let t = Instant::now();
    let out = s.ctl(&["shutdown"]).ok();
    let took = t.elapsed();
    assert_eq!(out.stdout, "shutting down\n");
    assert!(
        took >= Duration::from_millis(900),
        "returned after {took:?}"
    );
    assert!(!alive(slow), "corralctl returned while a program still ran");
    assert_eq!(c.wait_exit(Duration::from_secs(5)), 0);

    // Gone: exit 3, naming the socket.
    let out = s.ctl(&["status"]).expect(3);
    let want = format!("cannot reach corral at {}", s.socket().display());
    assert!(out.stderr.contains(&want), "{out:?}");
}

/// With nothing running the shutdown is immediate; corralctl must still get
/// its answer before corral exits, not a closed connection (exit 3).
#[test]
fn shutdown_with_nothing_running_is_answered() {
    let s = Scratch::new();
    let mut c = s.start(&idle("idle"));
    c.wait_message("corral starting", None, TIMEOUT);
    s.ctl(&["status"]).ok();
    let out = s.ctl(&["shutdown"]);
    assert_eq!(c.wait_exit(TIMEOUT), 0);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "shutting down\n"),
        "{out:?}"
    );
}
