//! Reload (`corralctl reload` and SIGHUP): only what changed is started,
//! stopped or restarted; an invalid file changes nothing and says why.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;

/// Rewrites the config file corral reads; returns the text written.
fn rewrite(s: &Scratch, text: &str) -> String {
    let text = s.with_socket(text);
    s.write_config(&text);
    text
}

/// name → (state, pid) of every program, as `status --json` shows them.
fn states(s: &Scratch) -> BTreeMap<String, (String, Option<i64>)> {
    s.status(&[])
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_string();
            (
                name,
                (p["state"].as_str().unwrap().into(), p["pid"].as_i64()),
            )
        })
        .collect()
}

fn pid(s: &Scratch, name: &str) -> i32 {
    st_pid(&s.status_of(name))
}

fn program(name: &str, command: &str, extra: &str) -> String {
    format!("[programs.{name}]\ncommand = {command}\n{extra}\n\n")
}

#[test]
fn reload_adds_removes_and_restarts_only_what_changed() {
    let s = Scratch::new();
    let wait = tp(&["wait"]);
    let base = |v: &str| {
        program(
            "base",
            &tp(&["print", &format!("base-{v}"), "wait"]),
            &format!("ready = {{ log = \"^base-{v}$\" }}"),
        )
    };
    let common = [
        program("keep", &wait, ""),
        program("bound", &wait, "binds_to = [\"base\"]"),
        program("leaner", &wait, "depends_on = [\"base\"]"),
    ]
    .concat();
    let gone = program("gone", &tp(&["on-term", &s.p("terms"), "gone", "wait"]), "");
    let mut c = s.start(&(base("v1") + &common + &gone));
    for name in ["keep", "bound", "leaner", "gone"] {
        c.wait_event("started", Some(name), TIMEOUT);
    }
    let before: BTreeMap<&str, i32> = ["keep", "base", "bound", "leaner"]
        .into_iter()
        .map(|n| (n, pid(&s, n)))
        .collect();

    // Nothing changed yet: nothing happens.
    assert_eq!(s.ctl(&["reload"]).ok().stdout, "no changes\n");

    rewrite(&s, &(base("v2") + &common + &program("fresh", &wait, "")));
    let out = s.ctl(&["reload"]).ok();
    assert_eq!(
        out.stdout, "added: fresh\nremoved: gone\nchanged: base\n",
        "{out:?}"
    );

    wait_until("the reload to settle", TIMEOUT, || {
        let st = states(&s);
        let running = |n: &str| st.get(n).is_some_and(|(state, _)| state == "RUNNING");
        !st.contains_key("gone")
            && running("fresh")
            && running("base")
            && running("bound")
            && st["base"].1 != Some(before["base"].into())
            && st["bound"].1 != Some(before["bound"].into())
    });
    assert_eq!(read(&s.path("terms")), "gone\n", "gone got its stop signal");
    // The new config is the one running.
    c.wait_event("ready", Some("base"), TIMEOUT);
    assert!(s.ctl(&["tail", "base"]).ok().stdout.contains("base-v2"));
    // Unchanged programs were not touched, a depends_on dependent included.
    assert_eq!(pid(&s, "keep"), before["keep"]);
    assert_eq!(pid(&s, "leaner"), before["leaner"]);
    assert_eq!(c.events_of("started", Some("keep")).len(), 1);
    assert_eq!(c.events_of("started", Some("leaner")).len(), 1);
    // A removed program is no longer known.
    s.ctl(&["status", "gone"]).expect(2);

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn sighup_reloads_too() {
    let s = Scratch::new();
    let wait = tp(&["wait"]);
    let v1 = program("keep", &wait, "") + &program("tweaked", &wait, "env = { MODE = \"one\" }");
    let mut c = s.start(&v1);
    c.wait_event("started", Some("keep"), TIMEOUT);
    c.wait_event("started", Some("tweaked"), TIMEOUT);
    let (keep, tweaked) = (pid(&s, "keep"), pid(&s, "tweaked"));

    rewrite(
        &s,
        &(program("keep", &wait, "")
            + &program("tweaked", &wait, "env = { MODE = \"two\" }")
            + &program("added", &wait, "")),
    );
    c.signal(libc::SIGHUP);
    let ev = c.wait_event("reloaded", None, TIMEOUT);
    assert_eq!(ev["added"], "[\"added\"]", "{ev}");
    assert_eq!(ev["changed"], "[\"tweaked\"]", "{ev}");
    c.wait_event("started", Some("added"), TIMEOUT);
    c.wait_events("started", Some("tweaked"), 2, TIMEOUT);
    wait_until("tweaked to run again", TIMEOUT, || {
        let t = s.status_of("tweaked");
        t["state"] == "RUNNING" && st_pid(&t) != tweaked
    });
    let host = c.pid_of("tweaked");
    let env = std::fs::read(format!("/proc/{host}/environ")).unwrap();
    assert!(
        env.split(|b| *b == 0).any(|v| v == b"MODE=two"),
        "tweaked runs with the new env"
    );
    assert_eq!(pid(&s, "keep"), keep);
    assert!(c.alive());

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// `file:line:col` of the first line of `text` containing `needle`, the
/// column being where `at` starts in that line.
fn position(s: &Scratch, text: &str, needle: &str, at: &str) -> String {
    let (n, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {text}"));
    let col = line.find(at).expect("column") + 1;
    format!("{}:{}:{col}", s.path("supervisor.toml").display(), n + 1)
}

#[test]
fn an_invalid_file_changes_nothing_and_a_good_one_still_applies() {
    let s = Scratch::new();
    let wait = tp(&["wait"]);
    let good = program("keep", &wait, "") + &program("base", &wait, "");
    let mut c = s.start(&good);
    c.wait_event("started", Some("keep"), TIMEOUT);
    c.wait_event("started", Some("base"), TIMEOUT);
    let before = states(&s);
    assert_eq!(before.len(), 2);

    let syntax = program("keep", &wait, "") + "[programs.base]\ncommand = [\"true\"] junk\n\n";
    let unknown = program("keep", &wait, "") + &program("base", &wait, "bogus = 1");
    let cycle = program("keep", &wait, "depends_on = [\"base\"]")
        + &program("base", &wait, "depends_on = [\"keep\"]")
        + &program("extra", &wait, "");
    // What each file's diagnostic must say, where: the file as written
    // (with this test's socket line) gives the line and column.
    let (syntax, unknown, cycle) = (
        s.with_socket(&syntax),
        s.with_socket(&unknown),
        s.with_socket(&cycle),
    );
    let file = s.path("supervisor.toml");
    let syntax_line = syntax.lines().position(|l| l.contains("junk")).unwrap() + 1;
    let cases = [
        (
            "syntax error",
            &syntax,
            format!("{}:{syntax_line}:", file.display()),
        ),
        (
            "unknown key",
            &unknown,
            format!(
                "{}: programs.base.bogus: unknown key",
                position(&s, &unknown, "bogus", "bogus")
            ),
        ),
        (
            "cycle",
            &cycle,
            format!(
                "{}: programs.base.depends_on: dependency cycle: base -> keep -> base",
                position(&s, &cycle, "depends_on = [\"keep\"]", "\"keep\"")
            ),
        ),
    ];
    for (what, text, want) in cases {
        s.write_config(text);
        let out = s.ctl(&["reload"]).expect(1);
        assert!(
            out.stderr.contains(&want),
            "{what}: want {want:?} in {out:?}"
        );
        let json = s.ctl(&["--json", "reload"]).expect(1).json();
        assert_eq!(json["code"], "invalid_config", "{what}: {json}");
        // The same file by SIGHUP: refused, logged.
        let refusals = c.events().iter().filter(|e| refused(e)).count();
        c.signal(libc::SIGHUP);
        c.wait_lines("the SIGHUP reload to be refused", TIMEOUT, |lines| {
            let n = lines
                .iter()
                .filter_map(|l| l.json.as_ref())
                .filter(|e| refused(e))
                .count();
            (n > refusals).then_some(())
        });
        assert_eq!(states(&s), before, "{what}: something changed");
    }
    assert!(c.events_of("reloaded", None).is_empty());
    assert!(c.events_of("started", Some("extra")).is_empty());

    // A good file after all that still applies.
    rewrite(&s, &(good.clone() + &program("extra", &wait, "")));
    assert_eq!(s.ctl(&["reload"]).ok().stdout, "added: extra\n");
    c.wait_event("started", Some("extra"), TIMEOUT);
    let after = states(&s);
    assert_eq!(after["keep"], before["keep"]);
    assert_eq!(after["base"], before["base"]);

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

fn refused(e: &Value) -> bool {
    e["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("reload refused, nothing changed"))
}
