//! `/process/*` against the real corral-api under corral (PID 1): exec,
//! spawn with its output as Server-Sent Events while it runs (the exit
//! event last), stdin, kill of the whole process group, status with RSS
//! and CPU. The commands run in corral's PID namespace, so a process's
//! existence is checked from inside it (`/process/exec` of `test -e /proc/N`).

mod common;

use common::*;
use serde_json::{json, Value};

fn spawn(env: &Env, body: Value) -> (String, i64) {
    let v = env.post("/process/spawn", &body).expect(201).json();
    (
        v["id"].as_str().unwrap().to_string(),
        v["pid"].as_i64().unwrap(),
    )
}

fn status(env: &Env, id: &str) -> Value {
    env.get(&format!("/process/{id}/status")).expect(200).json()
}

/// Does namespace pid `pid` exist (as a live process) in corral's namespace?
fn alive_in_ns(env: &Env, pid: i64) -> bool {
    let script = format!("test -e /proc/{pid} && ! grep -q '^State:.*Z' /proc/{pid}/status");
    let v = env
        .post("/process/exec", &json!({"argv": ["sh", "-c", script]}))
        .expect(200)
        .json();
    v["exit_code"] == 0
}

#[test]
fn procs_exec_runs_to_completion() {
    let env = Env::start(Setup::default());
    let v = env
        .post(
            "/process/exec",
            &json!({"argv": ["echo", "hello", "world"]}),
        )
        .expect(200)
        .json();
    assert_eq!(v["stdout"], "hello world\n");
    assert_eq!(
        (v["exit_code"].as_i64(), v["signal"].as_i64()),
        (Some(0), None)
    );
    assert_eq!(v["timed_out"], false);
    assert!(v["duration_ms"].is_u64());

    // Exit status, stderr, env, cwd, stdin; no shell unless asked.
    let v = env
        .post(
            "/process/exec",
            &json!({
                "argv": ["sh", "-c", "echo \"$GREETING\" >&2; pwd; cat; exit 3"],
                "env": {"GREETING": "hi there"},
                "cwd": "/tmp",
                "stdin": "from stdin",
            }),
        )
        .expect(200)
        .json();
    assert_eq!(
        (v["exit_code"].as_i64(), v["stderr"].as_str()),
        (Some(3), Some("hi there\n"))
    );
    assert_eq!(v["stdout"], "/tmp\nfrom stdin");
    let v = env
        .post(
            "/process/exec",
            &json!({"argv": ["echo", "$HOME; rm -rf /"]}),
        )
        .expect(200)
        .json();
    assert_eq!(v["stdout"], "$HOME; rm -rf /\n");

    // Exact bytes as base64; output capped.
    let v = env
        .post(
            "/process/exec",
            &json!({
                "argv": ["printf", "\\377\\000A"], "encoding": "base64",
            }),
        )
        .expect(200)
        .json();
    assert_eq!(v["stdout"], "/wBB");
    let v = env
        .post(
            "/process/exec",
            &json!({
                "argv": ["sh", "-c", "yes | head -c 100000"], "max_output_bytes": 1000,
            }),
        )
        .expect(200)
        .json();
    assert_eq!(v["stdout"].as_str().unwrap().len(), 1000);
    assert_eq!(v["stdout_truncated"], true);

    // A timeout ends the whole group: the shell and what it started.
    let v = env
        .post(
            "/process/exec",
            &json!({
                "argv": ["sh", "-c", "sleep 600 & echo $!; wait"], "timeout_ms": 3000,
            }),
        )
        .expect(200)
        .json();
    assert_eq!(v["timed_out"], true, "{v}");
    assert_eq!(v["signal"], 9, "{v}");
    let child: i64 = v["stdout"].as_str().unwrap().trim().parse().unwrap();
    wait_until("the timed-out command's child to be gone", TIMEOUT, || {
        !alive_in_ns(&env, child)
    });

    // Cannot start: 422; malformed: 400.
    let v = env
        .post("/process/exec", &json!({"argv": ["/no/such/program"]}))
        .expect_error(422);
    assert!(
        v["detail"].as_str().unwrap().contains("/no/such/program"),
        "{v}"
    );
    env.post(
        "/process/exec",
        &json!({"argv": ["true"], "cwd": "/no/such/dir"}),
    )
    .expect_error(422);
    env.post("/process/exec", &json!({"argv": []}))
        .expect_error(400);
    env.post("/process/exec", &json!({"argv": ["true"], "timeout": 5}))
        .expect_error(400);
    env.post("/process/exec", &json!({"argv": ["true"], "timeout_ms": 0}))
        .expect_error(400);
    env.post(
        "/process/exec",
        &json!({"argv": ["true"], "stdin_b64": "%%%"}),
    )
    .expect_error(400);
}

#[test]
fn procs_spawn_streams_output_live_with_exit_last() {
    let env = Env::start(Setup::default());
    // Prints a line for each line it reads: the test decides when output
    // comes, so events must arrive while the process still runs.
    let (id, _pid) = spawn(
        &env,
        json!({
            "argv": ["sh", "-c", "echo started; while read l; do echo \"got $l\"; echo \"err $l\" >&2; done; echo bye; exit 7"],
        }),
    );
    let sse = env.sse(&format!("/process/{id}/stdout/stream"));
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    sse.wait_output("stdout", "started\n", TIMEOUT);
    for i in 0..3 {
        let r = env.post(
            &format!("/process/{id}/stdin"),
            &json!({"data": format!("n{i}\n")}),
        );
        assert_eq!(
            r.expect(200).json(),
            json!({"written": 3, "stdin_open": true})
        );
        sse.wait_output("stdout", &format!("got n{i}\n"), TIMEOUT);
        sse.wait_output("stderr", &format!("err n{i}\n"), TIMEOUT);
        assert_eq!(status(&env, &id)["state"], "running");
        assert!(!sse.ended());
    }
    // data_b64, then EOF.
    env.post(
        &format!("/process/{id}/stdin"),
        &json!({"data_b64": "YjY0Cg==", "close": true}),
    )
    .expect(200);
    let events = sse.wait_end(TIMEOUT);
    let last = events.last().unwrap();
    assert_eq!(last.event, "exit", "{events:?}");
    let exit: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(
        (exit["exit_code"].as_i64(), exit["timed_out"].as_bool()),
        (Some(7), Some(false))
    );
    assert_eq!(events.iter().filter(|e| e.event == "exit").count(), 1);
    let out = concat(&events, "stdout");
    assert_eq!(out, "started\ngot n0\ngot n1\ngot n2\ngot b64\nbye\n");
    assert_eq!(
        concat(&events, "stderr"),
        "err n0\nerr n1\nerr n2\nerr b64\n"
    );

    // After exit: stdin is 409, status exited, and a late client gets the
    // replay then the exit.
    env.post(&format!("/process/{id}/stdin"), &json!({"data": "x"}))
        .expect_error(409);
    env.post(&format!("/process/{id}/kill"), &json!({}))
        .expect_error(409);
    let st = status(&env, &id);
    assert_eq!(
        (st["state"].as_str(), st["exit_code"].as_i64()),
        (Some("exited"), Some(7))
    );
    assert!(
        st["ended_at"].is_string() && st["rss_bytes"].is_null(),
        "{st}"
    );
    let late = env.sse(&format!("/process/{id}/stdout/stream"));
    let again = late.wait_end(TIMEOUT);
    assert_eq!(concat(&again, "stdout"), out);
    assert_eq!(again.last().map(|e| e.event.as_str()), Some("exit"));
}

#[test]
fn procs_kill_signals_the_whole_group() {
    let env = Env::start(Setup::default());
    let (id, pid) = spawn(
        &env,
        json!({
            "argv": ["sh", "-c", "sleep 600 & echo $!; sleep 601 & echo $!; wait"],
        }),
    );
    let sse = env.sse(&format!("/process/{id}/stdout/stream"));
    let kids: Vec<i64> = sse.wait("two child pids", TIMEOUT, |evs| {
        let out = concat(evs, "stdout");
        let pids: Vec<i64> = out
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (pids.len() == 2).then_some(pids)
    });
    assert!(alive_in_ns(&env, pid) && kids.iter().all(|&k| alive_in_ns(&env, k)));
    let r = env.post(
        &format!("/process/{id}/kill"),
        &json!({"signal": "SIGTERM"}),
    );
    assert_eq!(r.expect(200).json(), json!({"id": id, "signal": 15}));
    let events = sse.wait_end(TIMEOUT);
    let exit: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    assert_eq!(exit["signal"], 15, "{exit}");
    for k in kids {
        wait_until("the grandchildren to die with the group", TIMEOUT, || {
            !alive_in_ns(&env, k)
        });
    }
    // Bad signal names, unknown ids.
    let (id2, _) = spawn(&env, json!({"argv": ["sleep", "600"]}));
    env.post(&format!("/process/{id2}/kill"), &json!({"signal": "NOPE"}))
        .expect_error(400);
    env.post(&format!("/process/{id2}/kill"), &json!({"signal": 9}))
        .expect(200);
    // An empty body means TERM.
    env.call("POST", "/process/p-0-0/kill", &[], b"")
        .expect_error(404);
    env.get("/process/p-0-0/status").expect_error(404);
    env.get("/process/p-0-0/stdout/stream").expect_error(404);
    env.post("/process/p-0-0/stdin", &json!({"data": "x"}))
        .expect_error(404);
    wait_until("the KILLed process to be recorded", TIMEOUT, || {
        status(&env, &id2)["signal"] == 9
    });
}

#[test]
fn procs_status_reports_rss_and_cpu() {
    let env = Env::start(Setup::default());
    let (id, pid) = spawn(&env, json!({"argv": ["sh", "-c", "while :; do :; done"]}));
    let st = status(&env, &id);
    assert_eq!(
        (st["id"].as_str(), st["pid"].as_i64()),
        (Some(id.as_str()), Some(pid))
    );
    assert_eq!(st["argv"], json!(["sh", "-c", "while :; do :; done"]));
    assert_eq!(
        (st["state"].as_str(), st["stdin_open"].as_bool()),
        (Some("running"), Some(true))
    );
    assert!(st["started_at"].as_str().unwrap().ends_with('Z'), "{st}");
    assert!(st["rss_bytes"].as_u64().unwrap() > 0, "{st}");
    let st = wait_for("CPU time to be counted", TIMEOUT, || {
        let st = status(&env, &id);
        (st["cpu_ms"].as_u64().unwrap() >= 50).then_some(st)
    });
    assert!(st["duration_ms"].as_u64().unwrap() >= 50, "{st}");
    env.post(&format!("/process/{id}/kill"), &json!({"signal": "KILL"}))
        .expect(200);
    let st = wait_for("the exit", TIMEOUT, || {
        let st = status(&env, &id);
        (st["state"] == "exited").then_some(st)
    });
    assert_eq!(
        (st["signal"].as_i64(), st["exit_code"].as_i64()),
        (Some(9), None)
    );
    assert!(st["cpu_ms"].as_u64().unwrap() >= 50, "{st}");
    assert!(!alive_in_ns(&env, pid));

    // spawn's own timeout, reported in the exit event.
    let (id, _) = spawn(
        &env,
        json!({"argv": ["sleep", "600"], "timeout_ms": 200, "stdin": ""}),
    );
    let events = env
        .sse(&format!("/process/{id}/stdout/stream"))
        .wait_end(TIMEOUT);
    let exit: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    assert_eq!(exit["timed_out"], true, "{exit}");
    // exec-only fields are refused by spawn.
    env.post(
        "/process/spawn",
        &json!({"argv": ["true"], "encoding": "base64"}),
    )
    .expect_error(400);
    env.post("/process/spawn", &json!({"argv": ["/no/such"]}))
        .expect_error(422);
}
