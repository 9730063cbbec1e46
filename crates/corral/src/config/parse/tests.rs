//! End-to-end tests of `load_str`: valid files, defaults, and every kind of
//! error with its exact `line:col`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use corral_boot::signal::Sig;

use crate::config::*;

fn env() -> BTreeMap<String, String> {
    [
        ("HOME", "/root"),
        ("PROFILE", "/data/profile"),
        ("ARGS", "a 'b c'"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn load(text: &str) -> Result<Config, ConfigError> {
    load_str(Path::new("supervisor.toml"), text, &env())
}

fn ok(text: &str) -> Config {
    load(text).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

/// Every diagnostic as `line:col key: message`.
fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("config unexpectedly valid:\n{text}"),
        Err(e) => e
            .diagnostics()
            .iter()
            .map(|d| format!("{}:{} {}: {}", d.line, d.col, d.key, d.message))
            .collect(),
    }
}

/// The single diagnostic of a program `p` whose body is `body`.
fn prog_error(body: &str) -> String {
    let errs = errors(&format!("[programs.p]\n{body}\n"));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.into_iter().next().unwrap()
}

fn assert_starts(got: &str, want: &str) {
    assert!(got.starts_with(want), "got:  {got}\nwant: {want}…");
}

const CONTRACT: &str = r#"
[supervisor]
control_socket = "/run/corral/control.sock"
http = "0.0.0.0:9100"
log_dir = "/var/log/corral"
stop_timeout = "10s"
shutdown_timeout = "30s"
rlimits = { nofile = 65536 }

[programs.xvfb]
command = ["Xvfb", ":99", "-screen", "0", "${SCREEN:-1280x720x24}", "-nolisten", "tcp"]
ready = { x11 = ":99" }
restart = "always"
critical = true

[programs.chromium]
command = ["chromium", "--remote-debugging-port=9223", "--user-data-dir=${PROFILE}"]
env = { DISPLAY = ":99", HOME = "${HOME}" }
user = "browser"
binds_to = ["xvfb"]
pre_start = ["corral", "prep-profile", "${PROFILE}"]
ready = { tcp = "127.0.0.1:9223", timeout = "30s" }
stop_signal = "TERM"
stop_timeout = "15s"

[programs.x11vnc]
command = ["x11vnc", "-display", ":99", "-rfbport", "5900", "-localhost", "-forever", "-shared"]
binds_to = ["xvfb"]
rlimits = { nofile = 4096 }
ready = { tcp = "127.0.0.1:5900" }

[programs.websockify]
command = ["websockify", "--web", "/usr/share/novnc", "6080", "127.0.0.1:5900"]
depends_on = ["x11vnc"]
"#;

#[test]
fn contract_example_loads() {
    let c = ok(CONTRACT);
    let s = &c.supervisor;
    assert_eq!(s.http, Some("0.0.0.0:9100".parse().unwrap()));
    assert_eq!(s.log_dir.as_deref(), Some(Path::new("/var/log/corral")));
    assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(s.rlimits.limits[&RlimitResource::Nofile], (65536, 65536));

    let xvfb = &c.programs["xvfb"];
    assert_eq!(xvfb.command[4], "1280x720x24");
    assert_eq!(
        xvfb.ready.as_ref().unwrap().kind,
        ReadyKind::X11(":99".into())
    );
    assert_eq!(xvfb.restart, RestartPolicy::Always);
    assert!(xvfb.critical);

    let chromium = &c.programs["chromium"];
    assert_eq!(chromium.command[2], "--user-data-dir=/data/profile");
    assert_eq!(chromium.env["HOME"], "/root");
    assert_eq!(chromium.user.as_deref(), Some("browser"));
    assert_eq!(chromium.binds_to, ["xvfb"]);
    assert_eq!(
        chromium.pre_start.as_deref(),
        Some(
            &[
                "corral".to_string(),
                "prep-profile".into(),
                "/data/profile".into()
            ][..]
        )
    );
    let ready = chromium.ready.as_ref().unwrap();
    assert_eq!(ready.kind, ReadyKind::Tcp("127.0.0.1:9223".into()));
    assert_eq!(ready.timeout, Duration::from_secs(30));
    assert_eq!(chromium.stop_signal, Sig::TERM);
    assert_eq!(chromium.stop_timeout, Duration::from_secs(15));
    // Inherited from [supervisor] rlimits; x11vnc overrides it.
    assert_eq!(
        chromium.rlimits.limits[&RlimitResource::Nofile],
        (65536, 65536)
    );
    assert_eq!(
        c.programs["x11vnc"].rlimits.limits[&RlimitResource::Nofile],
        (4096, 4096)
    );
    assert_eq!(c.programs["websockify"].depends_on, ["x11vnc"]);

    assert_eq!(
        start_order(&c).to_string(),
        "start order (4 programs):\n  1. xvfb\n  2. chromium x11vnc\n  3. websockify"
    );
}

#[test]
fn env_overrides_default() {
    let mut e = env();
    e.insert("SCREEN".into(), "1920x1080x24".into());
    let c = load_str(Path::new("s.toml"), CONTRACT, &e).unwrap();
    assert_eq!(c.programs["xvfb"].command[4], "1920x1080x24");
}

#[test]
fn defaults() {
    let c = ok("[programs.a]\ncommand = [\"a\"]\n[programs.b]\ncommand = \"b\"\noneshot = true\n");
    assert_eq!(c.supervisor, SupervisorSettings::default());
    let a = &c.programs["a"];
    assert_eq!(a.restart, RestartPolicy::OnFailure);
    assert_eq!(a.backoff, Backoff::default());
    assert_eq!(a.restart_window, Duration::from_secs(60));
    assert_eq!(a.stop_timeout, Duration::from_secs(10));
    assert_eq!(a.stop_signal, Sig::TERM);
    assert!(a.autostart && !a.oneshot && !a.critical);
    assert_eq!(
        (a.max_restarts, a.ready.as_ref(), a.pre_start.as_ref()),
        (None, None, None)
    );
    assert!(a.rlimits.limits.is_empty());
    assert_eq!(c.programs["b"].restart, RestartPolicy::Never);
    // No [programs] at all is a valid, if idle, config.
    assert!(ok("").programs.is_empty());
}

#[test]
fn supervisor_values_and_program_overrides() {
    let c = ok(r#"
[supervisor]
log_max_bytes = "512KiB"
log_backups = 7
stop_timeout = "3s"
[programs.a]
command = ["a"]
backoff = { max = "1m" }
restart_window = "5m"
max_restarts = 4
stop_signal = 2
user = 1000
autostart = false
ready = { log = "listening on .*:\\d+$", timeout = "1m30s" }
[programs.b]
command = ["b"]
ready.exec = "curl -fsS http://127.0.0.1/"
"#);
    assert_eq!(c.supervisor.log_max_bytes, 512 * 1024);
    assert_eq!(c.supervisor.log_backups, 7);
    let a = &c.programs["a"];
    assert_eq!(a.stop_timeout, Duration::from_secs(3));
    assert_eq!(a.backoff.max, Duration::from_secs(60));
    assert_eq!(a.backoff.initial, Backoff::default().initial);
    assert_eq!(
        (a.restart_window, a.max_restarts),
        (Duration::from_secs(300), Some(4))
    );
    assert_eq!(a.stop_signal, Sig::INT);
    assert_eq!(a.user.as_deref(), Some("1000"));
    assert!(!a.autostart);
    let ready = a.ready.as_ref().unwrap();
    assert_eq!(ready.timeout, Duration::from_secs(90));
    let ReadyKind::Log(re) = &ready.kind else {
        panic!()
    };
    assert!(re.is_match("listening on 0.0.0.0:80"));
    let exec = &c.programs["b"].ready.as_ref().unwrap().kind;
    assert_eq!(
        exec,
        &ReadyKind::Exec(vec![
            "curl".into(),
            "-fsS".into(),
            "http://127.0.0.1/".into()
        ])
    );
    assert_eq!(
        ok("[supervisor]\nlog_max_bytes = 4096\n")
            .supervisor
            .log_max_bytes,
        4096
    );
}

#[test]
fn string_command_is_split_after_expansion() {
    let c = ok("[programs.p]\ncommand = \"sh -c 'echo $$HOME; sleep 1' ${ARGS}\"\n");
    assert_eq!(
        c.programs["p"].command,
        ["sh", "-c", "echo $HOME; sleep 1", "a", "b c"]
    );
    // In an array, an expanded value stays one argument.
    let c = ok("[programs.p]\ncommand = [\"x\", \"${ARGS}\"]\n");
    assert_eq!(c.programs["p"].command, ["x", "a 'b c'"]);
    assert_eq!(
        prog_error("command = \"sh -c 'oops\""),
        "2:11 programs.p.command: cannot split \"sh -c 'oops\" into words (unbalanced quotes?)"
    );
}

#[test]
fn rlimit_forms() {
    let c = ok(r#"
[supervisor]
rlimits = { nofile = 65536, core = 0, stack = "unlimited" }
[programs.p]
command = ["p"]
rlimits = { nofile = { soft = 1024, hard = 4096 }, memlock = { soft = 64, hard = "unlimited" }, core = "unlimited" }
"#);
    let l = &c.programs["p"].rlimits.limits;
    assert_eq!(l[&RlimitResource::Nofile], (1024, 4096));
    assert_eq!(l[&RlimitResource::Memlock], (64, RLIMIT_UNLIMITED));
    assert_eq!(
        l[&RlimitResource::Core],
        (RLIMIT_UNLIMITED, RLIMIT_UNLIMITED)
    );
    assert_eq!(
        l[&RlimitResource::Stack],
        (RLIMIT_UNLIMITED, RLIMIT_UNLIMITED)
    );
    assert_eq!(l.len(), 4);

    let bad = |v: &str| prog_error(&format!("command = [\"p\"]\nrlimits = {{ {v} }}"));
    assert_starts(
        &bad("files = 5"),
        "3:13 programs.p.rlimits.files: unknown rlimit \"files\" (known: nofile, nproc, core",
    );
    assert_eq!(
        bad("nofile = { soft = 9, hard = 5 }"),
        "3:22 programs.p.rlimits.nofile: soft limit 9 is above hard limit 5"
    );
    assert_eq!(
        bad("nofile = { soft = 9 }"),
        "3:22 programs.p.rlimits.nofile: needs both soft and hard"
    );
    assert_eq!(
        bad("nofile = -1"),
        "3:22 programs.p.rlimits.nofile: must not be negative"
    );
    assert_eq!(
        bad("nofile = \"lots\""),
        "3:22 programs.p.rlimits.nofile: invalid rlimit value \"lots\" (expected an integer or \"unlimited\")"
    );
    assert_eq!(
        bad("nofile = { soft = 1, hard = 2, max = 3 }"),
        "3:44 programs.p.rlimits.nofile.max: unknown key \"max\" (allowed: soft, hard)"
    );
}

#[test]
fn syntax_error_is_one_diagnostic() {
    let errs = errors("[programs.p]\ncommand = [\"a\",\nready = 1\n");
    assert_eq!(errs.len(), 1);
    assert_starts(&errs[0], "3:7 : TOML syntax error: ");
    let e = load("a = 1\na = 2\n").unwrap_err().to_string();
    assert_eq!(
        e,
        "supervisor.toml:2:1: TOML syntax error: duplicate key\nsupervisor.toml: 1 error"
    );
}

#[test]
fn unknown_keys_and_types() {
    assert_eq!(
        errors("[supervisor]\nlogdir = \"/x\"\n"),
        ["2:1 supervisor.logdir: unknown key \"logdir\" (allowed: control_socket, http, log_dir, log_max_bytes, log_backups, stop_timeout, shutdown_timeout, rlimits)"]
    );
    assert_eq!(
        errors("[program.p]\n"),
        ["1:2 program: unknown key \"program\" (allowed: supervisor, programs)"]
    );
    assert_starts(
        &prog_error("command = [\"p\"]\nrestrat = \"always\""),
        "3:1 programs.p.restrat: unknown key \"restrat\" (allowed: command, env,",
    );
    assert_eq!(
        prog_error("command = [\"p\"]\nbackoff = { initial = \"1s\", jitter = true }"),
        "3:29 programs.p.backoff.jitter: unknown key \"jitter\" (allowed: initial, max, reset_after)"
    );
    assert_eq!(
        prog_error("command = [\"p\"]\ncritical = \"yes\""),
        "3:12 programs.p.critical: expected a boolean (true or false), found string"
    );
    assert_eq!(
        prog_error("command = 5"),
        "2:11 programs.p.command: expected an array of strings or a string, found integer"
    );
    assert_eq!(
        prog_error("command = [\"p\", 1]"),
        "2:17 programs.p.command: expected a string, found integer"
    );
    assert_eq!(
        prog_error("command = [\"p\"]\nenv = { A = 1 }"),
        "3:13 programs.p.env.A: expected a string, found integer"
    );
    assert_eq!(
        prog_error("command = [\"p\"]\nmax_restarts = 1.5"),
        "3:16 programs.p.max_restarts: expected an integer, found float"
    );
    assert_eq!(prog_error("command = [\"p\"]\nstop_timeout = 10"), "3:16 programs.p.stop_timeout: expected a duration string such as \"10s\" or \"500ms\", found integer");
    assert_eq!(
        errors("programs = 3\n"),
        ["1:12 programs: expected a table, found integer"]
    );
}

#[test]
fn value_errors() {
    let p = |body: &str| prog_error(&format!("command = [\"p\"]\n{body}"));
    assert_starts(
        &p("stop_timeout = \"10 parsecs\""),
        "3:16 programs.p.stop_timeout: invalid duration \"10 parsecs\"",
    );
    assert_starts(
        &p("stop_signal = \"TERMINATE\""),
        "3:15 programs.p.stop_signal: unknown signal \"TERMINATE\"",
    );
    assert_starts(
        &p("stop_signal = 99"),
        "3:15 programs.p.stop_signal: unknown signal number 99 (1-31 or ",
    );
    assert_eq!(
        p("restart = \"sometimes\""),
        "3:11 programs.p.restart: invalid restart policy \"sometimes\" (expected \"always\", \"on-failure\" or \"never\")"
    );
    assert_starts(
        &p("oneshot = true\nrestart = \"always\""),
        "4:11 programs.p.restart: a oneshot program cannot use restart = \"always\"",
    );
    assert_eq!(
        p("ready = {}"),
        "3:9 programs.p.ready: needs one of tcp, http, x11, file, log, exec"
    );
    assert_eq!(
        p("ready = { tcp = \"127.0.0.1:1\", log = \"up\" }"),
        "3:9 programs.p.ready: has 2 kinds (log, tcp); give exactly one"
    );
    assert_starts(
        &p("kill_mode = \"soft\""),
        "3:13 programs.p.kill_mode: invalid kill_mode \"soft\"",
    );
    assert_starts(
        &p("ready = { log = \"(up\" }"),
        "3:17 programs.p.ready.log: invalid regex \"(up\": ",
    );
    assert_starts(
        &p("ready = { tcp = \"9223\" }"),
        "3:17 programs.p.ready.tcp: invalid TCP address \"9223\"",
    );
    assert_starts(
        &p("ready = { x11 = \"99\" }"),
        "3:17 programs.p.ready.x11: invalid X display \"99\"",
    );
    assert_eq!(
        p("ready = { tcp = \"h:1\", timeout = \"0s\" }"),
        "3:34 programs.p.ready.timeout: must be greater than 0"
    );
    assert_starts(
        &p("backoff = { initial = \"1m\", max = \"10s\" }"),
        "3:11 programs.p.backoff: initial (1m) is longer than max (10s)",
    );
    assert_eq!(
        prog_error("command = []"),
        "2:11 programs.p.command: empty command"
    );
    assert_eq!(
        prog_error("command = \"  \""),
        "2:11 programs.p.command: empty command"
    );
    assert_eq!(
        prog_error("cwd = \"/\""),
        "1:1 programs.p.command: missing required key \"command\""
    );
    assert_starts(
        &errors("[supervisor]\nhttp = \"localhost:9100\"\n")[0],
        "2:8 supervisor.http: invalid socket address \"localhost:9100\"",
    );
    assert_eq!(errors("[supervisor]\nlog_max_bytes = \"10XB\"\n").len(), 1);
    assert_eq!(
        errors("[programs.\"a b\"]\ncommand = [\"x\"]\n"),
        ["1:11 programs.\"a b\": invalid program name \"a b\" (use only letters, digits, `_`, `.` and `-`)"]
    );
}

#[test]
fn expansion_errors_point_at_the_string() {
    assert_eq!(
        prog_error("command = [\"p\", \"${NOPE}\"]"),
        "2:17 programs.p.command: environment variable NOPE is not set (write `${NOPE:-}` to allow an empty value)"
    );
    assert_starts(
        &prog_error("command = [\"p\"]\ncwd = \"${HOME\""),
        "3:7 programs.p.cwd: unterminated `${`",
    );
    // Durations and addresses are expanded too.
    let c = ok("[supervisor]\nstop_timeout = \"${T:-2s}\"\nhttp = \"${H:-127.0.0.1:1}\"\n");
    assert_eq!(c.supervisor.stop_timeout, Duration::from_secs(2));
}

#[test]
fn dependency_errors() {
    let base = "[programs.a]\ncommand = [\"a\"]\n";
    assert_eq!(
        errors(&format!("{base}depends_on = [\"b\"]\n")),
        ["3:15 programs.a.depends_on: unknown program \"b\" (defined: a)"]
    );
    assert_eq!(
        errors(&format!("{base}binds_to = [\"a\"]\n")),
        ["3:13 programs.a.binds_to: program \"a\" cannot depend on itself"]
    );
    let cycle = "[programs.a]\ncommand = [\"a\"]\ndepends_on = [\"b\"]\n\
                 [programs.b]\ncommand = [\"b\"]\nbinds_to = [\"c\"]\n\
                 [programs.c]\ncommand = [\"c\"]\ndepends_on = [\"a\"]\n";
    assert_eq!(
        errors(cycle),
        ["3:15 programs.a.depends_on: dependency cycle: a -> b -> c -> a"]
    );
    assert_eq!(
        errors(&format!("{base}[programs.b]\ncommand = [\"b\"]\ndepends_on = [\"a\", \"a\"]\nbinds_to = [\"a\"]\n")),
        [
            "5:20 programs.b.depends_on: \"a\" is listed twice",
            "6:13 programs.b.binds_to: \"a\" is in both depends_on and binds_to (binds_to implies depends_on)"
        ]
    );
}

#[test]
fn all_errors_are_reported_together_in_file_order() {
    let text = r#"[supervisor]
stop_timeout = "forever"
bogus = 1

[programs.a]
command = []
depends_on = ["ghost"]
ready = { tcp = "x:1", http = "http://x/" }

[programs.b]
command = ["b", "${UNSET}"]
stop_signal = "NOPE"
"#;
    let err = load(text).unwrap_err();
    let got: Vec<String> = err
        .diagnostics()
        .iter()
        .map(|d| format!("{}:{} {}", d.line, d.col, d.key))
        .collect();
    assert_eq!(
        got,
        [
            "2:16 supervisor.stop_timeout",
            "3:1 supervisor.bogus",
            "6:11 programs.a.command",
            "7:15 programs.a.depends_on",
            "8:9 programs.a.ready",
            "11:17 programs.b.command",
            "12:15 programs.b.stop_signal",
        ]
    );
    let shown = err.to_string();
    assert!(
        shown.starts_with("supervisor.toml:2:16: supervisor.stop_timeout: invalid duration"),
        "{shown}"
    );
    assert!(shown.ends_with("\nsupervisor.toml: 7 errors"), "{shown}");
}
