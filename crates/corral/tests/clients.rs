//! Many clients, and badly behaved ones, on the control socket: nobody
//! blocks anybody, and the supervisor keeps supervising.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};

use common::*;
use corral_proto::frame;
use corral_proto::{ErrorCode, Request, RequestFrame, Response, ResponseFrame, VERSION};

fn cfg() -> String {
    format!(
        r#"
[programs.victim]
command = {victim}
restart = "always"
backoff = {{ initial = "10ms" }}

[programs.calm]
command = {calm}
"#,
        victim = tp(&["print", "victim-up", "wait"]),
        calm = tp(&["wait"]),
    )
}

#[test]
fn fifty_status_clients_and_a_follower_at_once() {
    let s = Scratch::new();
    let mut c = s.start(&cfg());
    c.wait_event("started", Some("victim"), TIMEOUT);
    c.wait_event("started", Some("calm"), TIMEOUT);
    let victim = c.pid_of("victim");
    let victim_ns = st_pid(&s.status_of("victim"));

    let follower = Follower::spawn(&s.socket(), &["tail", "-f", "victim"]);
    follower.wait_matches("^victim-up$", 1, TIMEOUT);

    let spawn_status = |i: usize| -> Child {
        let args: &[&str] = if i.is_multiple_of(2) {
            &["status"]
        } else {
            &["--json", "status"]
        };
        ctl_command(&s.socket(), args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn corralctl")
    };
    let mut clients: Vec<Child> = (0..25).map(spawn_status).collect();
    // SAFETY: plain kill(2) of a process this test started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    clients.extend((25..50).map(spawn_status));

    for (i, child) in clients.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "client {i}: {stdout}{stderr}");
        if i % 2 == 0 {
            assert!(stdout.starts_with("NAME "), "client {i}: {stdout}");
            let names: Vec<&str> = stdout
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            assert_eq!(names, ["calm", "victim"], "client {i}: {stdout}");
        } else {
            let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            let names: Vec<&str> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["calm", "victim"], "client {i}: {stdout}");
        }
    }

    // The supervisor kept working: victim is back, and the follower saw it.
    wait_until("victim to be restarted", TIMEOUT, || {
        let v = s.status_of("victim");
        v["state"] == "RUNNING" && st_pid(&v) != victim_ns
    });
    follower.wait_matches("^victim-up$", 2, TIMEOUT);
    assert_eq!(s.status_of("victim")["restarts"], 1);
    drop(follower);

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

fn connect(s: &Scratch) -> UnixStream {
    let stream = UnixStream::connect(s.socket()).expect("connect to the control socket");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Reads one answer; panics if there is none.
fn answer(stream: &mut UnixStream) -> Response {
    frame::read::<_, ResponseFrame>(stream)
        .expect("a well-formed answer")
        .expect("an answer before the end of the stream")
        .response
}

/// Expects a bad_request answer containing `text`, then the connection closed.
#[track_caller]
fn refused_and_dropped(stream: &mut UnixStream, text: &str) {
    match answer(stream) {
        Response::Error {
            code: ErrorCode::BadRequest,
            message,
        } => assert!(message.contains(text), "{message:?} lacks {text:?}"),
        other => panic!("expected bad_request, got {other:?}"),
    }
    let mut rest = Vec::new();
    let n = stream
        .read_to_end(&mut rest)
        .expect("the connection to be closed");
    assert_eq!(n, 0, "nothing more after the error");
}

fn send(stream: &mut UnixStream, request: Request) {
    let msg = RequestFrame {
        v: VERSION,
        request,
    };
    frame::write(stream, &msg).unwrap();
}

#[test]
fn bad_clients_get_an_error_and_are_dropped_while_others_are_served() {
    let s = Scratch::new();
    let mut c = s.start(&cfg());
    c.wait_event("started", Some("victim"), TIMEOUT);

    // A client that connects and says nothing, and one stuck mid-frame:
    // neither holds anybody up.
    let _silent = connect(&s);
    let mut partial = connect(&s);
    partial.write_all(&100u32.to_be_bytes()).unwrap();
    partial.write_all(b"{\"v\":1,").unwrap();
    s.ctl(&["status"]).ok();
    s.ctl(&["pid", "victim"]).ok();

    // Not JSON.
    let mut garbage = connect(&s);
    garbage.write_all(&5u32.to_be_bytes()).unwrap();
    garbage.write_all(b"hello").unwrap();
    refused_and_dropped(&mut garbage, "malformed message");

    // A length prefix far over the limit: refused before reading a body.
    let mut oversize = connect(&s);
    oversize.write_all(&u32::MAX.to_be_bytes()).unwrap();
    refused_and_dropped(&mut oversize, "larger than");

    // JSON, but not a request of this protocol.
    let mut unknown_op = connect(&s);
    let body = br#"{"v":1,"request":{"op":"explode"}}"#;
    unknown_op
        .write_all(&(body.len() as u32).to_be_bytes())
        .unwrap();
    unknown_op.write_all(body).unwrap();
    refused_and_dropped(&mut unknown_op, "malformed message");

    // Another protocol version.
    let mut future = connect(&s);
    let body = br#"{"v":99,"request":{"op":"health"}}"#;
    future
        .write_all(&(body.len() as u32).to_be_bytes())
        .unwrap();
    future.write_all(body).unwrap();
    refused_and_dropped(&mut future, "protocol version 99");

    // A well-behaved connection can ask several questions in turn.
    let mut good = connect(&s);
    send(&mut good, Request::Status { names: vec![] });
    assert!(matches!(answer(&mut good), Response::Status { programs, .. } if programs.len() == 2));
    send(
        &mut good,
        Request::Pid {
            name: "victim".into(),
        },
    );
    let ns = st_pid(&s.status_of("victim"));
    assert_eq!(answer(&mut good), Response::Pid { pid: ns });

    // The silent and the partial clients are still connected, and corral
    // still supervises and answers.
    let victim = c.pid_of("victim");
    // SAFETY: plain kill(2) of a process this test started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    c.wait_events("started", Some("victim"), 2, TIMEOUT);
    s.ctl(&["start", "victim"]).ok();
    assert_eq!(s.status_of("victim")["restarts"], 1);

    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}
