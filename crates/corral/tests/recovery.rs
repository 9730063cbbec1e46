//! After an unclean stop (SIGKILL of corral, PID 1: every process of its
//! namespace dies with it) the next start must come back by itself. A real
//! Xvfb leaves `/tmp/.XN-lock` and its socket behind; in the new namespace
//! the pid in the lock names some live program, so Xvfb refuses to start
//! ("Server is already active") unless `corral prep-x11` clears them first.
//! The control socket is left behind too and must be replaced.

mod common;

use std::path::Path;

use common::*;

/// Xvfb on `display`, critical with few restarts (so a failure to start ends
/// corral quickly), optionally with `prep-x11` as its pre_start; and a
/// program that starts with it.
fn config(display: u32, prep: bool) -> String {
    let pre_start = if prep {
        format!(
            "pre_start = {}",
            argv(&[corral_bin(), "prep-x11", &format!(":{display}")])
        )
    } else {
        String::new()
    };
    format!(
        r#"
[programs.xvfb]
command = ["Xvfb", ":{display}", "-nolisten", "tcp"]
{pre_start}
ready = {{ x11 = ":{display}", timeout = "10s" }}
critical = true
backoff = {{ initial = "50ms", max = "50ms" }}
max_restarts = 2
restart_window = "60s"

[programs.after]
command = {after}
depends_on = ["xvfb"]
"#,
        after = argv(&[testprog(), "wait"]),
    )
}

/// Starts the stack, waits for Xvfb, SIGKILLs corral (the namespace goes
/// with it) and checks that the display's lock and socket and the control
/// socket were left behind. Then rewrites the lock to name pid 1 — in the
/// next namespace that is corral itself, always alive — which is what an
/// unclean stop leaves in the common case (a low pid, alive again).
fn unclean_stop(s: &Scratch, display: u32) {
    let mut c = s.start(&config(display, true));
    c.wait_message("started", Some("after"), TIMEOUT);
    c.signal(libc::SIGKILL);
    c.wait_exit(TIMEOUT);
    let lock = format!("/tmp/.X{display}-lock");
    let socket = format!("/tmp/.X11-unix/X{display}");
    assert!(Path::new(&lock).exists(), "SIGKILL left no X lock");
    assert!(Path::new(&socket).exists(), "SIGKILL left no X socket");
    assert!(s.socket().exists(), "SIGKILL left no control socket");
    std::fs::write(&lock, format!("{:>10}\n", 1)).unwrap();
}

/// Waits for a line containing `text` on either of corral's streams.
fn any_line(c: &Corral, text: &str) {
    c.wait_lines(text, TIMEOUT, |lines| {
        lines.iter().find(|l| l.text.contains(text)).map(|_| ())
    });
}

/// Removes what an unclean stop of `display` left, whatever the test did.
struct Cleanup(u32);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/tmp/.X{}-lock", self.0));
        let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{}", self.0));
    }
}

#[test]
fn stack_comes_back_after_sigkill_of_pid1() {
    let s = Scratch::new();
    let display = free_display();
    let _cleanup = Cleanup(display);
    for round in 0..3 {
        unclean_stop(&s, display);
        let mut c = s.start(&config(display, true));
        c.wait_message("started", Some("after"), TIMEOUT);
        any_line(&c, "prep-x11: removed stale");
        assert_eq!(
            c.events_of("started", Some("xvfb")).len(),
            1,
            "round {round}: Xvfb needed restarts\n{}",
            c.dump()
        );
        s.ctl(&["shutdown"]).ok();
        assert_eq!(c.wait_exit(TIMEOUT), 0);
    }
}

/// The failure prep-x11 prevents, reproduced with the same stale files: the
/// test above would fail this way if prep-x11 did nothing.
#[test]
fn without_prep_x11_the_stale_lock_stops_xvfb() {
    let s = Scratch::new();
    let display = free_display();
    let _cleanup = Cleanup(display);
    unclean_stop(&s, display);
    let mut c = s.start(&config(display, false));
    assert_ne!(
        c.wait_exit(TIMEOUT),
        0,
        "Xvfb started over a live-looking lock"
    );
    any_line(&c, "already active");
}

/// prep-x11 never takes a display from a live server.
#[test]
fn prep_x11_leaves_a_live_display_alone() {
    let s = Scratch::new();
    let display = free_display();
    let _cleanup = Cleanup(display);
    let mut c = s.start(&config(display, false));
    c.wait_message("started", Some("after"), TIMEOUT);
    let out = std::process::Command::new(corral_bin())
        .args(["prep-x11", &format!(":{display}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("answers"));
    assert!(Path::new(&format!("/tmp/.X{display}-lock")).exists());
    s.ctl(&["shutdown"]).ok();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// A SIGKILLed x11vnc leaves its ~40 MIT-SHM segments behind: in an IPC
/// namespace that outlives corral (a pod's, a host's) they pile up until
/// `shmget` fails and x11vnc exits 1 at once. prep-x11 removes the ones
/// whose creator is gone and leaves a live process's alone. Runs in an IPC
/// namespace of its own (`unshare --ipc`): the host's segments are never
/// looked at.
#[test]
fn prep_x11_removes_shared_memory_a_killed_x11vnc_left() {
    let display = free_display();
    let _cleanup = Cleanup(display);
    // Every wait polls with a deadline (10 s).
    const SCRIPT: &str = r#"
set -eu
n=$1 corral=$2
count() { tail -n +2 /proc/sysvipc/shm | wc -l; }
has() { tail -n +2 /proc/sysvipc/shm | awk -v id="$1" '$2 == id' | grep -q .; }
until_() { i=0; until eval "$1"; do i=$((i + 1)); [ $i -lt 200 ] || { echo "timeout: $1" >&2; exit 1; }; sleep 0.05; done; }
Xvfb ":$n" -nolisten tcp >/dev/null 2>&1 & x=$!
until_ "[ -S /tmp/.X11-unix/X$n ]"
# -rfbport 0: no listener; it still polls the screen through MIT-SHM.
x11vnc -display ":$n" -rfbport 0 -forever -nopw -quiet >/dev/null 2>&1 & v=$!
until_ '[ $(count) -ge 10 ]'
kill -KILL $v $x
wait $v $x || true
# A live process's private, unattached segment: not an orphan.
python3 -c 'import ctypes, signal
shmid = ctypes.CDLL(None).shmget(0, 4096, 0o1600)
print(shmid, flush=True)
signal.pause()' > live.id &
p=$!
until_ '[ -s live.id ]'
echo "before=$(count)"
"$corral" prep-x11 ":$n" 2>prep.err
echo "after=$(count)"
has "$(cat live.id)" && echo live=kept
cat prep.err
kill $p
"#;
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("unshare")
        .args(["--ipc", "--", "sh", "-c", SCRIPT, "sh"])
        .arg(display.to_string())
        .arg(corral_bin())
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let value = |k: &str| -> u32 {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")));
        line.and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {k}= in {stdout}"))
    };
    // x11vnc's segments plus the live one; then only the live one.
    assert!(value("before") >= 11, "{stdout}");
    assert_eq!(value("after"), 1, "orphans left\n{stdout}");
    assert!(stdout.contains("live=kept"), "{stdout}");
    assert!(
        stdout.contains("prep-x11: removed") && stdout.contains("shared-memory segment"),
        "{stdout}"
    );
}
