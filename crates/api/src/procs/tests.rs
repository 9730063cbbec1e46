//! Spawned-process tests: spawn, status, the SSE stream (live, replay,
//! exit last), stdin, kill of the whole group, timeouts, and the record
//! table's limits.

use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::json;

use super::*;

/// True when `pid` is gone (or a zombie: an orphan re-parented to an init
/// that is slow to reap still counts as dead) within 30 s (generous: these
/// tests run in parallel on a loaded CI machine).
pub(super) async fn dies_soon(pid: u32) -> bool {
    for _ in 0..600 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(s) if s[s.rfind(')').unwrap() + 1..].trim_start().starts_with('Z') => return true,
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    false
}

fn start(p: &Processes, body: serde_json::Value) -> Arc<Proc> {
    p.start(serde_json::from_value(body).unwrap()).unwrap()
}

/// The whole SSE body of one client (the stream ends after `exit`).
async fn collect_stream(p: &Processes, id: &str) -> String {
    let resp = stream(id, p).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("the stream ends after the exit event")
        .unwrap()
        .to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

async fn wait_exit(p: &Processes, id: &str) -> serde_json::Value {
    for _ in 0..1200 {
        let s = p.get(id).unwrap().status();
        if s["state"] == "exited" {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{id} did not exit");
}

/// Waits until the process has written `text` to stdout.
async fn wait_output(proc: &Proc, text: &str) {
    for _ in 0..1200 {
        let (_, frames, _) = proc.lock().replay.since(0);
        let all: Vec<u8> = frames.concat();
        if String::from_utf8_lossy(&all).contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {text:?} from {}", proc.id);
}

/// The events of an SSE body as (event, data) pairs, data lines joined
/// with "\n" as an EventSource does.
fn events(sse: &str) -> Vec<(String, String)> {
    sse.split("\n\n")
        .filter(|b| !b.is_empty() && !b.starts_with(':'))
        .map(|block| {
            let mut name = String::new();
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d));
                }
            }
            (name, data.join("\n"))
        })
        .collect()
}

#[tokio::test]
async fn spawn_status_stdin_stream_and_replay() {
    let p = Processes::default();
    let proc = start(
        &p,
        json!({"argv": ["sh", "-c", "echo one; read l; echo \"got $l\"; echo err >&2; exit 7"]}),
    );
    assert!(proc.id.starts_with("p-1-"));
    wait_output(&proc, "one").await;
    let s = p.get(&proc.id).unwrap().status();
    assert_eq!(s["state"], "running");
    assert_eq!(s["pid"], proc.pid);
    assert_eq!(s["argv"][0], "sh");
    assert_eq!(s["stdin_open"], true);
    assert!(s["rss_bytes"].as_u64().unwrap() > 0, "{s}");
    assert!(s["cpu_ms"].is_u64());
    assert!(s["started_at"].as_str().unwrap().ends_with('Z'));

    // A client joins while it runs: gets "one" from the replay, then live.
    let live = {
        let p = &p;
        let id = proc.id.clone();
        async move { collect_stream(p, &id).await }
    };
    let write = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = p
            .write_stdin(
                &proc.id,
                StdinRequest {
                    data: Some("hi\n".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(r, json!({"written": 3, "stdin_open": true}));
    };
    let (text, ()) = tokio::join!(live, write);
    let ev = events(&text);
    let stdout: String = ev
        .iter()
        .filter(|e| e.0 == "stdout")
        .map(|e| e.1.as_str())
        .collect();
    assert_eq!(stdout, "one\ngot hi\n");
    assert!(ev.contains(&("stderr".into(), "err\n".into())), "{text}");
    let (last, data) = ev.last().unwrap();
    assert_eq!(last, "exit", "exit is last: {text}");
    let exit: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        (exit["exit_code"].as_i64(), exit["signal"].is_null()),
        (Some(7), true)
    );

    // A client joining after the exit gets the same replay and the exit.
    assert_eq!(events(&collect_stream(&p, &proc.id).await), ev);

    let s = wait_exit(&p, &proc.id).await;
    assert_eq!(
        (s["exit_code"].as_i64(), s["timed_out"].as_bool()),
        (Some(7), Some(false))
    );
    assert!(
        s["ended_at"].is_string() && s["cpu_ms"].is_u64() && s["rss_bytes"].is_null(),
        "{s}"
    );
    assert_eq!(s["stdin_open"], false);

    let e = p
        .write_stdin(
            &proc.id,
            StdinRequest {
                data: Some("x".into()),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(e.unwrap_err().status, StatusCode::CONFLICT);
    assert_eq!(
        p.kill(&proc.id, KillRequest::default()).unwrap_err().status,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn kill_reaches_the_whole_group() {
    let p = Processes::default();
    let proc = start(
        &p,
        json!({"argv": ["sh", "-c", "sleep 30 & echo $!; wait"]}),
    );
    wait_output(&proc, "\n").await;
    let out = String::from_utf8(proc.lock().replay.since(0).1.concat()).unwrap();
    let grandchild: u32 = events(&out)[0].1.trim().parse().unwrap();

    let bad = KillRequest {
        signal: Some(SignalSpec::Name("NOPE".into())),
    };
    assert_eq!(
        p.kill(&proc.id, bad).unwrap_err().status,
        StatusCode::BAD_REQUEST
    );
    let r = p.kill(&proc.id, KillRequest::default()).unwrap();
    assert_eq!(r, json!({"id": proc.id, "signal": 15}));
    let s = wait_exit(&p, &proc.id).await;
    assert_eq!(
        (s["exit_code"].is_null(), s["signal"].as_i64()),
        (true, Some(15))
    );
    assert!(
        dies_soon(grandchild).await,
        "the group's sleep got the signal too"
    );
    assert!(events(&collect_stream(&p, &proc.id).await)
        .last()
        .unwrap()
        .1
        .contains("\"signal\":15"));
}

#[tokio::test]
async fn stdin_given_at_spawn_is_written_and_closed() {
    let p = Processes::default();
    let proc = start(&p, json!({"argv": ["cat"], "stdin": "abc"}));
    let s = p.get(&proc.id).unwrap().status();
    assert_eq!(s["stdin_open"], false);
    let e = p
        .write_stdin(
            &proc.id,
            StdinRequest {
                data: Some("x".into()),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(e.unwrap_err().status, StatusCode::CONFLICT);
    let ev = events(&collect_stream(&p, &proc.id).await);
    assert_eq!(ev[0], ("stdout".into(), "abc".into()));
    assert_eq!(wait_exit(&p, &proc.id).await["exit_code"], 0);
}

#[tokio::test]
async fn stdin_close_is_eof() {
    let p = Processes::default();
    let proc = start(&p, json!({"argv": ["wc", "-c"]}));
    let req = StdinRequest {
        data_b64: Some("AAEC".into()),
        close: true,
        ..Default::default()
    };
    assert_eq!(
        p.write_stdin(&proc.id, req).await.unwrap(),
        json!({"written": 3, "stdin_open": false})
    );
    let ev = events(&collect_stream(&p, &proc.id).await);
    assert_eq!(ev[0].1.trim(), "3");
    let again = p
        .write_stdin(
            &proc.id,
            StdinRequest {
                close: true,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(again.unwrap_err().status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn spawn_timeout_kills() {
    let p = Processes::default();
    let proc = start(&p, json!({"argv": ["sleep", "10"], "timeout_ms": 200}));
    let s = wait_exit(&p, &proc.id).await;
    assert_eq!(
        (s["signal"].as_i64(), s["timed_out"].as_bool()),
        (Some(9), Some(true))
    );
    assert!(s["duration_ms"].as_u64().unwrap() < 3000);
}

#[tokio::test]
async fn live_output_and_lag_notice() {
    let p = Processes::default();
    let proc = start(&p, json!({"argv": ["sh", "-c", "sleep 0.3; echo late"]}));
    let ev = events(&collect_stream(&p, &proc.id).await);
    assert_eq!(ev[0], ("stdout".into(), "late\n".into()));
    assert_eq!(ev.len(), 2);

    // More than the replay holds: a late joiner is told what it missed.
    let proc = start(
        &p,
        json!({"argv": ["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"]}),
    );
    wait_exit(&p, &proc.id).await;
    let ev = events(&collect_stream(&p, &proc.id).await);
    assert_eq!(ev[0].0, "lagged");
    let dropped: serde_json::Value = serde_json::from_str(&ev[0].1).unwrap();
    let got: usize = ev
        .iter()
        .filter(|e| e.0 == "stdout")
        .map(|e| e.1.len())
        .sum();
    assert_eq!(
        dropped["dropped_bytes"].as_u64().unwrap() as usize + got,
        3_000_000
    );
    assert_eq!(ev.last().unwrap().0, "exit");
}

#[tokio::test]
async fn errors() {
    let p = Processes::default();
    assert_eq!(p.get("p-9").err().unwrap().status, StatusCode::NOT_FOUND);
    assert_eq!(
        stream("p-9", &p).await.unwrap_err().status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        p.kill("p-9", KillRequest::default()).unwrap_err().status,
        StatusCode::NOT_FOUND
    );
    let e = p.start(serde_json::from_value(json!({"argv": ["no-such-program-xyz"]})).unwrap());
    let e = e.err().unwrap();
    assert_eq!(
        (e.status, e.detail.as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "no-such-program-xyz: not found in PATH"
        )
    );
    let e =
        p.start(serde_json::from_value(json!({"argv": ["true"], "encoding": "base64"})).unwrap());
    assert_eq!(e.err().unwrap().status, StatusCode::BAD_REQUEST);
    let k: KillRequest = serde_json::from_str(r#"{"signal": 9}"#).unwrap();
    assert!(matches!(k.signal, Some(SignalSpec::Number(9))));
}

#[test]
fn table_limits() {
    let limits = Limits {
        ttl: Duration::from_secs(60),
        max: 3,
        budget: 1000,
    };
    let now = Instant::now();
    let mut t = Table::default();
    let add = |t: &mut Table, id: &str, ended: Option<Duration>, bytes: usize| {
        let p = Proc::new(id.into(), 0, vec![], None);
        p.lock().replay.push(Channel::Stdout, &vec![b'x'; bytes]);
        if let Some(ago) = ended {
            p.finish(Exit {
                exit_code: Some(0),
                signal: None,
                timed_out: false,
                ended: now - ago,
                ended_at: SystemTime::now(),
                duration: Duration::ZERO,
                cpu_ms: None,
            });
        }
        t.procs.insert(id.into(), Arc::new(p));
    };
    add(&mut t, "run", None, 10);
    add(&mut t, "old", Some(Duration::from_secs(120)), 10);
    add(&mut t, "a", Some(Duration::from_secs(30)), 10);
    add(&mut t, "b", Some(Duration::from_secs(20)), 10);
    t.prune(now, &limits, 0).unwrap();
    let mut ids: Vec<_> = t.procs.keys().cloned().collect();
    ids.sort();
    assert_eq!(ids, ["a", "b", "run"], "past the TTL: forgotten");
    t.prune(now, &limits, 1).unwrap();
    assert!(!t.procs.contains_key("a"), "the oldest finished makes room");
    add(&mut t, "big", Some(Duration::from_secs(1)), 2000);
    t.prune(now, &limits, 0).unwrap();
    assert!(
        t.procs.contains_key("big") && !t.procs.contains_key("b"),
        "over the budget: older ones go"
    );
    add(&mut t, "r2", None, 0);
    add(&mut t, "r3", None, 0);
    assert_eq!(
        t.prune(now, &limits, 1).unwrap_err().status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
