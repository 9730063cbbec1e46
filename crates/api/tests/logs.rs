//! `/logs/stream` against the real corral-api under corral: a program's
//! output (through corral's control socket) as SSE lines while it prints,
//! and a file under the fs root with `follow=true` (an append is an event;
//! after a rotation the new file is followed).

mod common;

use std::io::Write;

use common::*;

/// A program that prints "boot" lines, then echoes every line written to
/// a FIFO: the test decides when it prints. The FIFO is opened read-write
/// (`<>`) so it never reaches EOF: a `while cat fifo` loop loses a line
/// written between one `cat` reading EOF and closing (the kernel drops a
/// pipe's buffer when its last reader closes) — that flaked in CI.
fn echo_program(env_dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let fifo = env_dir.join("feed");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let script = format!(
        "echo boot-1; echo boot-2; echo boot-3; exec cat <>{}",
        fifo.display()
    );
    let toml = format!(
        "[programs.echo]\ncommand = {}\n",
        argv(&["sh", "-c", &script])
    );
    (toml, fifo)
}

fn feed(fifo: &std::path::Path, line: &str) {
    let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

#[test]
fn logs_program_output_streams_as_it_prints() {
    let dir = tempfile::tempdir().unwrap();
    let (programs, fifo) = echo_program(dir.path());
    let env = Env::start(Setup {
        programs,
        ..Setup::default()
    });
    // Wait for the boot lines to be in corral's record.
    wait_until("the boot lines", TIMEOUT, || {
        let r = env.get("/logs/stream?program=echo&lines=10");
        r.status == 200 && r.text().contains("data: boot-3\n")
    });
    // Without follow: the backlog (last N lines), then the end.
    let r = env.get("/logs/stream?program=echo&lines=2").expect(200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(
        r.header("x-accel-buffering"),
        Some("no"),
        "proxies must not buffer"
    );
    assert_eq!(
        r.text(),
        "event: line\ndata: boot-2\n\nevent: line\ndata: boot-3\n\n"
    );

    // With follow: the backlog, then each line as the program prints it.
    let sse = env.sse("/logs/stream?program=echo&follow=true&lines=1");
    assert_eq!(sse.status, 200);
    sse.wait_data("line", "boot-3", TIMEOUT);
    for i in 0..3 {
        let line = format!("live-{i}");
        feed(&fifo, &line);
        sse.wait_data("line", &line, TIMEOUT);
    }
    let lines: Vec<String> = sse.events().into_iter().map(|e| e.data).collect();
    assert_eq!(lines, ["boot-3", "live-0", "live-1", "live-2"]);
    assert!(!sse.ended(), "a follow stream stays open");

    // lines=0: only new lines.
    let sse0 = env.sse("/logs/stream?program=echo&follow=true&lines=0");
    feed(&fifo, "only-new");
    sse0.wait_data("line", "only-new", TIMEOUT);
    assert_eq!(sse0.events().len(), 1, "{:?}", sse0.events());

    // Errors are HTTP statuses, not events.
    env.get("/logs/stream?program=nope").expect_error(404);
    env.get("/logs/stream").expect_error(400);
    env.get("/logs/stream?program=echo&path=/x")
        .expect_error(400);
    env.get("/logs/stream?program=echo&lines=many")
        .expect_error(400);
}

#[test]
fn logs_file_follow_sees_appends_and_rotation() {
    let env = Env::start(Setup::default());
    std::fs::create_dir(env.root.join("var")).unwrap();
    let log = env.root.join("var/app.log");
    std::fs::write(&log, "old-1\nold-2\nold-3\n").unwrap();
    let append = |text: &str| {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };

    // Without follow: the last lines, then the end.
    let r = env
        .get("/logs/stream?path=/var/app.log&lines=2")
        .expect(200);
    assert_eq!(
        r.text(),
        "event: line\ndata: old-2\n\nevent: line\ndata: old-3\n\n"
    );

    let sse = env.sse("/logs/stream?path=var/app.log&follow=true&lines=1");
    assert_eq!(sse.status, 200);
    sse.wait_data("line", "old-3", TIMEOUT);
    append("new-1\n");
    sse.wait_data("line", "new-1", TIMEOUT);
    // A line written in two pieces is one event, once complete.
    append("half");
    append("-and-half\n");
    sse.wait_data("line", "half-and-half", TIMEOUT);

    // Rotation: renamed away, a new file takes the name.
    std::fs::rename(&log, env.root.join("var/app.log.1")).unwrap();
    std::fs::write(&log, "rotated-1\n").unwrap();
    sse.wait_data("line", "rotated-1", TIMEOUT);
    append("rotated-2\n");
    sse.wait_data("line", "rotated-2", TIMEOUT);
    // Writes to the old file are no longer followed.
    let mut old = std::fs::OpenOptions::new()
        .append(true)
        .open(env.root.join("var/app.log.1"))
        .unwrap();
    old.write_all(b"stale\n").unwrap();
    append("rotated-3\n");
    sse.wait_data("line", "rotated-3", TIMEOUT);
    let lines: Vec<String> = sse.events().into_iter().map(|e| e.data).collect();
    assert_eq!(
        lines,
        [
            "old-3",
            "new-1",
            "half-and-half",
            "rotated-1",
            "rotated-2",
            "rotated-3"
        ]
    );

    // Not a file; missing; a directory.
    env.get("/logs/stream?path=/var/missing.log")
        .expect_error(404);
    env.get("/logs/stream?path=/var").expect_error(400);
}
