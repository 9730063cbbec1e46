//! `POST /process/spawn {"allocate_tty": true, rows, cols}` and
//! `POST /process/{id}/resize` against the real corral-api under corral
//! (PID 1): a real pseudo-terminal, read by the real `tty` and `stty`.

mod common;

use common::*;
use serde_json::{json, Value};

fn spawn(env: &Env, body: Value) -> String {
    let v = env.post("/process/spawn", &body).expect(201).json();
    v["id"].as_str().unwrap().to_string()
}

fn status(env: &Env, id: &str) -> Value {
    env.get(&format!("/process/{id}/status")).expect(200).json()
}

#[test]
fn pty_tty_stty_size_resize_and_stdin() {
    let env = Env::start(Setup::default());
    let id = spawn(
        &env,
        json!({
            "argv": ["sh", "-c", "tty; stty size; read line; stty size; echo \"got:$line\""],
            "allocate_tty": true, "rows": 33, "cols": 101,
        }),
    );
    let s = env.sse(&format!("/process/{id}/stdout/stream"));
    s.wait_output("stdout", "33 101", TIMEOUT);
    let out = s.output("stdout");
    assert!(
        out.starts_with("/dev/pts/"),
        "tty names a pseudo-terminal: {out:?}"
    );
    let st = status(&env, &id);
    assert_eq!(st["tty"], true);
    assert_eq!(st["tty_size"], json!({"rows": 33, "cols": 101}));

    let v = env
        .post(
            &format!("/process/{id}/resize"),
            &json!({"rows": 40, "cols": 120}),
        )
        .expect(200)
        .json();
    assert_eq!(v, json!({"id": id, "rows": 40, "cols": 120}));
    assert_eq!(
        status(&env, &id)["tty_size"],
        json!({"rows": 40, "cols": 120})
    );
    env.post(&format!("/process/{id}/stdin"), &json!({"data": "typed\n"}))
        .expect(200);
    s.wait_output("stdout", "got:typed", TIMEOUT);
    let out = s.output("stdout");
    assert!(out.contains("40 120"), "stty follows the resize: {out:?}");
    let evs = s.wait_end(TIMEOUT);
    let exit: Value = serde_json::from_str(&evs.last().unwrap().data).unwrap();
    assert_eq!(exit["exit_code"], 0);
    // stderr goes to the terminal too: no stderr events on a PTY.
    assert!(evs.iter().all(|e| e.event != "stderr"));
    env.post(
        &format!("/process/{id}/resize"),
        &json!({"rows": 10, "cols": 10}),
    )
    .expect_error(409);
}

#[test]
fn pty_resize_sends_sigwinch() {
    let env = Env::start(Setup::default());
    let id = spawn(
        &env,
        json!({
            "argv": ["sh", "-c", "trap 'stty size; exit 7' WINCH; echo ready; while :; do sleep 1; done"],
            "allocate_tty": true,
        }),
    );
    let s = env.sse(&format!("/process/{id}/stdout/stream"));
    s.wait_output("stdout", "ready", TIMEOUT);
    assert_eq!(
        status(&env, &id)["tty_size"],
        json!({"rows": 24, "cols": 80})
    );
    env.post(
        &format!("/process/{id}/resize"),
        &json!({"rows": 50, "cols": 132}),
    )
    .expect(200);
    s.wait_output("stdout", "50 132", TIMEOUT);
    let evs = s.wait_end(TIMEOUT);
    let exit: Value = serde_json::from_str(&evs.last().unwrap().data).unwrap();
    assert_eq!(exit["exit_code"], 7, "the trap ran on SIGWINCH");
}

#[test]
fn pty_is_the_controlling_terminal() {
    // ^C typed into the terminal interrupts the foreground process: only
    // possible when the PTY is the process's controlling terminal.
    let env = Env::start(Setup::default());
    let id = spawn(
        &env,
        json!({"argv": ["sh", "-c", "echo up; exec sleep 100"], "allocate_tty": true}),
    );
    let s = env.sse(&format!("/process/{id}/stdout/stream"));
    s.wait_output("stdout", "up", TIMEOUT);
    // The exec may not have happened yet when "up" arrives; ^C reaches
    // sh or sleep alike (same foreground group), and both die of SIGINT.
    env.post(&format!("/process/{id}/stdin"), &json!({"data": "\u{3}"}))
        .expect(200);
    let evs = s.wait_end(TIMEOUT);
    let exit: Value = serde_json::from_str(&evs.last().unwrap().data).unwrap();
    assert_eq!(exit["signal"], 2, "{exit}");

    // `close` types the EOF character: `cat` ends.
    let id = spawn(&env, json!({"argv": ["cat"], "allocate_tty": true}));
    let s = env.sse(&format!("/process/{id}/stdout/stream"));
    env.post(
        &format!("/process/{id}/stdin"),
        &json!({"data": "line\n", "close": true}),
    )
    .expect(200);
    let evs = s.wait_end(TIMEOUT);
    let exit: Value = serde_json::from_str(&evs.last().unwrap().data).unwrap();
    assert_eq!(exit["exit_code"], 0);
    assert!(s.output("stdout").contains("line"));

    // Input given at spawn is typed, then the EOF character.
    let id = spawn(
        &env,
        json!({"argv": ["sh", "-c", "read a; echo \"read:$a\"; cat; echo done"], "allocate_tty": true, "stdin": "first\n"}),
    );
    let s = env.sse(&format!("/process/{id}/stdout/stream"));
    let evs = s.wait_end(TIMEOUT);
    let exit: Value = serde_json::from_str(&evs.last().unwrap().data).unwrap();
    assert_eq!(exit["exit_code"], 0);
    let out = s.output("stdout");
    assert!(
        out.contains("read:first") && out.contains("done"),
        "{out:?}"
    );
}

#[test]
fn pty_bad_requests() {
    let env = Env::start(Setup::default());
    // No terminal: resize is 409 and says why.
    let id = spawn(&env, json!({"argv": ["sleep", "30"]}));
    assert_eq!(status(&env, &id)["tty"], false);
    let e = env
        .post(
            &format!("/process/{id}/resize"),
            &json!({"rows": 10, "cols": 10}),
        )
        .expect_error(409);
    assert!(
        e["detail"].as_str().unwrap().contains("allocate_tty"),
        "{e}"
    );
    env.post(&format!("/process/{id}/kill"), &json!({"signal": "KILL"}))
        .expect(200);

    let tty = spawn(&env, json!({"argv": ["sleep", "30"], "allocate_tty": true}));
    let resize = |b: Value| env.post(&format!("/process/{tty}/resize"), &b);
    resize(json!({"rows": 0, "cols": 10})).expect_error(400);
    resize(json!({"rows": 10})).expect_error(400);
    resize(json!({"rows": 70000, "cols": 10})).expect_error(400);
    resize(json!({"rows": -1, "cols": 10})).expect_error(400);
    resize(json!({"rows": 10, "cols": 10, "x": 1})).expect_error(400);
    env.post("/process/p-nope/resize", &json!({"rows": 1, "cols": 1}))
        .expect_error(404);
    assert_eq!(
        status(&env, &tty)["tty_size"],
        json!({"rows": 24, "cols": 80})
    );

    // Sizes only with a terminal; terminals only for spawn.
    env.post("/process/spawn", &json!({"argv": ["true"], "rows": 5}))
        .expect_error(400);
    env.post(
        "/process/spawn",
        &json!({"argv": ["true"], "allocate_tty": true, "cols": 0}),
    )
    .expect_error(400);
    env.post(
        "/process/exec",
        &json!({"argv": ["true"], "allocate_tty": true}),
    )
    .expect_error(400);
    env.post(&format!("/process/{tty}/kill"), &json!({"signal": "KILL"}))
        .expect(200);
}
