//! Bad configs are refused with exit code 2 and file:line:col: key: message;
//! `--check` prints the start order; `${VAR:-default}` expands.

mod common;

use common::*;

/// 1-based line and column of the first occurrence of `needle` in `text`.
fn pos(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in config"));
    let line = text[..at].matches('\n').count() + 1;
    let col = text[..at].rfind('\n').map_or(at, |nl| at - nl - 1) + 1;
    (line, col)
}

/// Writes `text`, runs `corral --check` on it; expects exit 2 and returns stderr.
fn refused(s: &Scratch, text: &str) -> (String, String) {
    let path = s.write_config(text);
    let path = path.to_string_lossy().into_owned();
    let (code, out, err) = run_corral(&["--check", "-c", &path], &[]);
    assert_eq!(code, 2, "expected exit 2\nstdout: {out}\nstderr: {err}");
    (path, err)
}

/// Asserts stderr has `PATH:LINE:COL: KEY: …MESSAGE…` with the position of `at`.
fn has_diag(err: &str, path: &str, text: &str, at: &str, key: &str, message: &str) {
    let (line, col) = pos(text, at);
    let head = format!("{path}:{line}:{col}: {key}: ");
    assert!(
        err.lines()
            .any(|l| l.contains(&head) && l.contains(message)),
        "no diagnostic {head}…{message}… in:\n{err}"
    );
}

fn one_error(text: &str, at: &str, key: &str, message: &str) {
    let s = Scratch::new();
    let (path, err) = refused(&s, text);
    has_diag(&err, &path, text, at, key, message);
    assert!(err.contains(": 1 error"), "{err}");
}

#[test]
fn unknown_key() {
    one_error(
        "[programs.a]\ncommand = [\"true\"]\nrestrat = \"always\"\n",
        "restrat",
        "programs.a.restrat",
        "unknown key \"restrat\"",
    );
}

#[test]
fn unknown_program_in_depends_on() {
    one_error(
        "[programs.a]\ncommand = [\"true\"]\ndepends_on = [\"ghost\"]\n",
        "\"ghost\"",
        "programs.a.depends_on",
        "unknown program \"ghost\"",
    );
}

#[test]
fn dependency_cycle() {
    let text = "[programs.a]\ncommand = [\"true\"]\ndepends_on = [\"b\"]\n\n[programs.b]\ncommand = [\"true\"]\nbinds_to = [\"a\"]\n";
    one_error(
        text,
        "\"b\"]",
        "programs.a.depends_on",
        "dependency cycle: a -> b -> a",
    );
}

#[test]
fn bad_duration() {
    one_error(
        "[programs.a]\ncommand = [\"true\"]\nstop_timeout = \"10\"\n",
        "\"10\"",
        "programs.a.stop_timeout",
        "invalid duration \"10\"",
    );
}

#[test]
fn bad_signal() {
    one_error(
        "[programs.a]\ncommand = [\"true\"]\nstop_signal = \"TERMINATE\"\n",
        "\"TERMINATE\"",
        "programs.a.stop_signal",
        "unknown signal \"TERMINATE\"",
    );
}

#[test]
fn bad_restart_value() {
    one_error(
        "[programs.a]\ncommand = [\"true\"]\nrestart = \"sometimes\"\n",
        "\"sometimes\"",
        "programs.a.restart",
        "invalid restart policy \"sometimes\"",
    );
}

#[test]
fn unset_variable() {
    one_error(
        "[programs.a]\ncommand = [\"echo\", \"${CORRAL_IT_SURELY_UNSET}\"]\n",
        "\"${CORRAL",
        "programs.a.command",
        "environment variable CORRAL_IT_SURELY_UNSET is not set",
    );
}

#[test]
fn toml_syntax_error() {
    let s = Scratch::new();
    let text = "[programs.a]\ncommand = [\"true\"\nrestart = \"never\"\n";
    let (path, err) = refused(&s, text);
    let re = regex_lite::Regex::new(&format!(
        r"{}:(\d+):(\d+): TOML syntax error",
        regex_lite::escape(&path)
    ))
    .unwrap();
    let caps = re
        .captures(&err)
        .unwrap_or_else(|| panic!("no syntax error with a position in:\n{err}"));
    let line: usize = caps[1].parse().unwrap();
    assert!(
        (2..=3).contains(&line),
        "error placed on line {line}:\n{err}"
    );
}

#[test]
fn several_errors_are_all_reported() {
    let s = Scratch::new();
    let text = "[programs.a]\ncommand = [\"true\"]\nrestrat = \"always\"\nstop_timeout = \"forever\"\n\n[programs.b]\ncommand = [\"true\"]\ndepends_on = [\"ghost\"]\nstop_signal = \"NOPE\"\n";
    let (path, err) = refused(&s, text);
    has_diag(
        &err,
        &path,
        text,
        "restrat",
        "programs.a.restrat",
        "unknown key",
    );
    has_diag(
        &err,
        &path,
        text,
        "\"forever\"",
        "programs.a.stop_timeout",
        "invalid duration",
    );
    has_diag(
        &err,
        &path,
        text,
        "\"ghost\"",
        "programs.b.depends_on",
        "unknown program",
    );
    has_diag(
        &err,
        &path,
        text,
        "\"NOPE\"",
        "programs.b.stop_signal",
        "unknown signal",
    );
    assert!(err.contains(": 4 errors"), "{err}");
}

/// Without --check, a bad config is refused the same way before anything starts.
#[test]
fn bad_config_refused_at_start() {
    let s = Scratch::new();
    let text = format!(
        "[programs.a]\ncommand = {}\nrestart = \"sometimes\"\n",
        tp(&["touch", &s.p("ran"), "wait"])
    );
    let path = s.write_config(&text);
    let (code, _, err) = run_corral(&["-c", &path.to_string_lossy()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid restart policy"), "{err}");
    assert!(
        !s.path("ran").exists(),
        "a program ran despite the bad config"
    );
}

#[test]
fn bad_arguments_exit_2() {
    let (code, _, err) = run_corral(&["--no-such-flag"], &[]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn check_prints_the_start_order() {
    let s = Scratch::new();
    let text = r#"
[programs.xvfb]
command = ["Xvfb", ":99"]

[programs.chromium]
command = "chromium --headless"
binds_to = ["xvfb"]

[programs.x11vnc]
command = ["x11vnc"]
binds_to = ["xvfb"]

[programs.websockify]
command = ["websockify"]
depends_on = ["x11vnc"]
"#;
    let path = s.write_config(text);
    let path = path.to_string_lossy().into_owned();
    let (code, out, err) = run_corral(&["--check", "-c", &path], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{path}: ok")), "{out}");
    assert!(
        out.contains("start order (4 programs):\n  1. xvfb\n  2. chromium x11vnc\n  3. websockify"),
        "{out}"
    );
    // CORRAL_CONFIG works too.
    let (code, out, _) = run_corral(&["--check"], &[("CORRAL_CONFIG", &path)]);
    assert_eq!(code, 0);
    assert!(out.contains("start order (4 programs)"), "{out}");
}

#[test]
fn variables_expand_with_defaults_in_commands() {
    let s = Scratch::new();
    let cfg = format!(
        "[programs.echo]\ncommand = {}\n",
        tp(&[
            "print",
            "unset=${CORRAL_IT_UNSET_VAR:-fallback value}",
            "print",
            "set=${CORRAL_IT_SET_VAR:-not used}",
            "print",
            "cost=$$5",
            "wait"
        ])
    );
    let opts = Options {
        env: vec![("CORRAL_IT_SET_VAR".into(), "from env".into())],
        ..Options::default()
    };
    let mut c = s.start_with(&cfg, opts);
    c.wait_line(Stream::Stdout, r"^\[echo\] unset=fallback value$", TIMEOUT);
    c.wait_line(Stream::Stdout, r"^\[echo\] set=from env$", TIMEOUT);
    c.wait_line(Stream::Stdout, r"^\[echo\] cost=\$5$", TIMEOUT);
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}
