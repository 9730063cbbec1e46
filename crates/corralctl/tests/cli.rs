//! Runs the real `corralctl` binary against a fake corral: a thread with a
//! `UnixListener` in a temp dir that speaks the protocol through
//! `corral_proto::frame` and answers from a script. This tests corralctl's
//! own behaviour — framing, formatting, exit codes, waiting — without a
//! supervisor; end-to-end tests against corral live with corral.

use std::io::{BufRead, BufReader};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use corral_proto::frame;
use corral_proto::{
    ErrorCode, ProgramStatus, Request, RequestFrame, Response, ResponseFrame, State, Targets,
    VERSION,
};

/// A fake corral serving one connection.
struct Fake {
    // Held so the socket's directory outlives the test.
    _dir: tempfile::TempDir,
    socket: PathBuf,
    /// Yields the request the client sent.
    server: JoinHandle<Request>,
}

impl Fake {
    /// Accepts one connection, reads one request and hands it to `script`
    /// with the stream to answer on. Dropping the stream closes it.
    fn start(script: impl FnOnce(&Request, &mut UnixStream) + Send + 'static) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let msg: RequestFrame = frame::read(&mut stream).unwrap().expect("a request");
            assert_eq!(msg.v, VERSION);
            script(&msg.request, &mut stream);
            msg.request
        });
        Fake {
            _dir: dir,
            socket,
            server,
        }
    }

    /// Answers every request with `response`, then closes.
    fn answering(response: Response) -> Fake {
        Fake::start(move |_, s| reply(s, response))
    }

    fn request(self) -> Request {
        self.server.join().unwrap()
    }
}

fn reply(stream: &mut UnixStream, response: Response) {
    let msg = ResponseFrame {
        v: VERSION,
        response,
    };
    frame::write(stream, &msg).unwrap();
}

fn corralctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corralctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("CORRAL_SOCKET")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn program(name: &str, state: State) -> ProgramStatus {
    let running = state == State::Running;
    ProgramStatus {
        name: name.into(),
        state,
        pid: running.then_some(4242),
        uptime_ms: running.then_some(192_500),
        start_time_unix: running.then_some(1.7e9),
        restarts: if running { 0 } else { 3 },
        ready: running,
        critical: true,
        autostart: true,
        reason: (!running).then(|| "exited: exit status 1".into()),
    }
}

#[test]
fn missing_socket_is_exit_3_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nope.sock");
    let o = corralctl(&socket, &["status"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o),
        format!(
            "corralctl: cannot reach corral at {}: no such file or directory \
             (is corral running? set --socket or CORRAL_SOCKET)\n",
            socket.display()
        )
    );
}

#[test]
fn refused_connection_is_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stale.sock");
    // A socket file nobody listens on: what a crashed corral leaves behind.
    drop(UnixListener::bind(&socket).unwrap());
    let o = corralctl(&socket, &["pid", "xvfb"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("connection refused"), "{}", stderr(&o));
}

#[test]
fn socket_comes_from_the_environment() {
    let fake = Fake::answering(Response::Pid { pid: 77 });
    let o = Command::new(env!("CARGO_BIN_EXE_corralctl"))
        .args(["pid", "xvfb"])
        .env("CORRAL_SOCKET", &fake.socket)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "77\n");
    assert_eq!(
        fake.request(),
        Request::Pid {
            name: "xvfb".into()
        }
    );
}

#[test]
fn closing_before_the_answer_is_exit_3() {
    let fake = Fake::start(|_, _| {});
    let o = corralctl(&fake.socket, &["status"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("closed the connection before answering"));
}

#[test]
fn a_stuck_supervisor_is_exit_3_not_a_hang() {
    // The fake never answers in the test's lifetime; corralctl must give up
    // after its 200ms, far before (the bound is loose for a loaded machine).
    let fake = Fake::start(|_, _| thread::sleep(Duration::from_secs(60)));
    let started = Instant::now();
    let o = corralctl(&fake.socket, &["health", "--timeout", "200ms"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("did not answer within 200ms"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unknown_program_is_exit_2() {
    let fake = Fake::answering(Response::error(
        ErrorCode::UnknownProgram,
        "no program named \"ghost\"",
    ));
    let o = corralctl(&fake.socket, &["start", "ghost"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "corralctl: no program named \"ghost\"\n");
}

#[test]
fn failed_action_is_exit_1_with_the_reason() {
    let fake = Fake::answering(Response::error(
        ErrorCode::Failed,
        "chromium: exited before ready: exit status 1",
    ));
    let o = corralctl(&fake.socket, &["restart", "chromium"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("chromium: exited before ready: exit status 1"));
}

#[test]
fn usage_errors_are_exit_2_and_help_is_0() {
    let o = corralctl(Path::new("/nonexistent"), &["start"]);
    assert_eq!(o.status.code(), Some(2));
    let o = corralctl(Path::new("/nonexistent"), &["stop", "all", "xvfb"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`all` cannot be combined"));
    let o = corralctl(Path::new("/nonexistent"), &["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("health"));
}

#[test]
fn start_all_prints_one_line_per_program() {
    let fake = Fake::answering(Response::Done {
        programs: vec![
            program("xvfb", State::Running),
            program("chromium", State::Backoff),
        ],
    });
    let o = corralctl(&fake.socket, &["start", "all", "--timeout", "30s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "xvfb: started\nchromium: BACKOFF (exited: exit status 1)\n"
    );
    let Request::Start { targets, wait } = fake.request() else {
        panic!("not a start")
    };
    assert_eq!(targets, Targets::All);
    assert!(wait.wait);
    assert_eq!(wait.timeout_ms, 30_000);
}

#[test]
fn status_prints_a_table() {
    let fake = Fake::answering(Response::Status {
        programs: vec![
            program("xvfb", State::Running),
            program("chromium", State::Fatal),
        ],
        shutting_down: false,
    });
    let o = corralctl(&fake.socket, &["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "NAME      STATE    PID   UPTIME  RESTARTS  REASON\n\
         xvfb      RUNNING  4242  3m12s   0\n\
         chromium  FATAL    -     -       3         exited: exit status 1\n"
    );
    assert_eq!(fake.request(), Request::Status { names: vec![] });
}

#[test]
fn status_json_is_an_array_of_programs() {
    let programs = vec![program("xvfb", State::Running)];
    let fake = Fake::answering(Response::Status {
        programs: programs.clone(),
        shutting_down: false,
    });
    let o = corralctl(&fake.socket, &["--json", "status", "xvfb"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let parsed: Vec<ProgramStatus> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(parsed, programs);
}

#[test]
fn json_errors_are_printed_as_responses() {
    let response = Response::error(ErrorCode::UnknownProgram, "no program named \"x\"");
    let fake = Fake::answering(response.clone());
    let o = corralctl(&fake.socket, &["pid", "x", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let parsed: Response = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(parsed, response);
}

#[test]
fn tail_follow_prints_frames_as_they_stream() {
    let fake = Fake::start(|_, s| {
        for batch in [&["one", "two"][..], &["three"], &[], &["four"]] {
            let lines = batch.iter().map(|l| l.to_string()).collect();
            reply(s, Response::Lines { lines });
            thread::sleep(Duration::from_millis(20));
        }
    });
    let o = corralctl(&fake.socket, &["tail", "-f", "-n", "5", "chromium"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "one\ntwo\nthree\nfour\n");
    assert_eq!(
        fake.request(),
        Request::Tail {
            name: "chromium".into(),
            lines: 5,
            follow: true
        }
    );
}

#[test]
fn tail_follow_exits_quietly_when_stdout_closes() {
    let fake = Fake::start(|_, s| {
        // Keep streaming until the client has gone.
        for i in 0..500 {
            let msg = ResponseFrame {
                v: VERSION,
                response: Response::Lines {
                    lines: vec![format!("line {i}")],
                },
            };
            if frame::write(s, &msg).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_corralctl"))
        .arg("--socket")
        .arg(&fake.socket)
        .args(["tail", "-f", "xvfb"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "line 0\n");
    // The reader is dropped here, like `| head -1` exiting.
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stderr(&o), "");
}

#[test]
fn unhealthy_is_exit_1_naming_the_programs() {
    let fake = Fake::answering(Response::Health {
        healthy: false,
        not_ready: vec!["chromium".into(), "xvfb".into()],
    });
    let o = corralctl(&fake.socket, &["health"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "corralctl: not healthy: critical programs not ready: chromium, xvfb\n"
    );
    assert_eq!(fake.request(), Request::Health);
}

#[test]
fn healthy_is_exit_0() {
    let fake = Fake::answering(Response::Health {
        healthy: true,
        not_ready: vec![],
    });
    let o = corralctl(&fake.socket, &["health"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn invalid_reload_prints_the_diagnostics_and_exits_1() {
    let diagnostics = "supervisor.toml:3:1: supervisor.bogus: unknown key \"bogus\"";
    let fake = Fake::answering(Response::error(ErrorCode::InvalidConfig, diagnostics));
    let o = corralctl(&fake.socket, &["reload"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(diagnostics));
}

#[test]
fn reload_lists_what_changed() {
    let fake = Fake::answering(Response::Reloaded {
        added: vec!["x11vnc".into()],
        removed: vec![],
        changed: vec!["chromium".into()],
    });
    let o = corralctl(&fake.socket, &["reload"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "added: x11vnc\nchanged: chromium\n");
}

#[test]
fn shutdown_waits_until_corral_closes_the_connection() {
    let fake = Fake::start(|_, s| {
        reply(
            s,
            Response::Ok {
                message: "shutting down".into(),
            },
        );
        thread::sleep(Duration::from_millis(400));
        // Returning drops the stream: corral has exited.
    });
    let started = Instant::now();
    let o = corralctl(&fake.socket, &["shutdown"]);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "shutting down\n");
    assert_eq!(fake.request(), Request::Shutdown);
}

#[test]
fn shutdown_that_never_finishes_is_exit_1() {
    let fake = Fake::start(|_, s| {
        reply(
            s,
            Response::Ok {
                message: "shutting down".into(),
            },
        );
        thread::sleep(Duration::from_secs(2));
    });
    let o = corralctl(&fake.socket, &["shutdown", "--timeout", "200ms"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("has not exited after 200ms"),
        "{}",
        stderr(&o)
    );
}
