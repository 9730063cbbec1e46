//! What a program's process looks like: rlimits, user identity, and a clean
//! signal state.

mod common;

use common::*;

/// (soft, hard) of a /proc/PID/limits row such as "Max open files".
fn limit(limits: &str, row: &str) -> (String, String) {
    let line = limits
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no {row:?} in\n{limits}"));
    let mut f = line[row.len()..].split_whitespace();
    (f.next().unwrap().into(), f.next().unwrap().into())
}

#[test]
fn rlimits_defaults_and_per_program_overrides() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[supervisor]
rlimits = {{ nofile = 1024, msgqueue = 409600 }}

[programs.own]
command = {own}
rlimits = {{ nofile = {{ soft = 512, hard = 2048 }} }}

[programs.inherits]
command = {inherits}
"#,
        own = tp(&["limits", &s.p("own.tmp"), "touch", &s.p("own.done"), "wait"]),
        inherits = tp(&[
            "limits",
            &s.p("inherits.tmp"),
            "touch",
            &s.p("inherits.done"),
            "wait"
        ]),
    );
    let mut c = s.start(&cfg);
    for name in ["own", "inherits"] {
        wait_until(&format!("{name} to write its limits"), TIMEOUT, || {
            s.path(&format!("{name}.done")).exists()
        });
    }
    let own = read(&s.path("own.tmp"));
    let inherits = read(&s.path("inherits.tmp"));
    assert_eq!(limit(&own, "Max open files"), ("512".into(), "2048".into()));
    assert_eq!(
        limit(&inherits, "Max open files"),
        ("1024".into(), "1024".into())
    );
    // A program's own table overrides per resource: the others still apply.
    for l in [&own, &inherits] {
        assert_eq!(
            limit(l, "Max msgqueue size"),
            ("409600".into(), "409600".into())
        );
    }
    // The running process has them too (not only at its start).
    let live = read(std::path::Path::new(&format!(
        "/proc/{}/limits",
        c.pid_of("own")
    )));
    assert_eq!(
        limit(&live, "Max open files"),
        ("512".into(), "2048".into())
    );
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// The test user, created if missing; (uid, gid, home).
fn test_user() -> (u32, u32, String) {
    let lookup = || {
        let out = std::process::Command::new("getent")
            .args(["passwd", "corraltest"])
            .output()
            .expect("getent");
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 6).then(|| {
            (
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[5].to_string(),
            )
        })
    };
    if let Some(u) = lookup() {
        return u;
    }
    let status = std::process::Command::new("useradd")
        .args([
            "-r",
            "-d",
            "/home/corraltest",
            "-s",
            "/bin/sh",
            "corraltest",
        ])
        .status()
        .expect("useradd");
    // Another test binary may have created it meanwhile.
    lookup().unwrap_or_else(|| panic!("useradd corraltest failed: {status}"))
}

#[test]
fn user_drops_privileges_and_sets_home() {
    let (uid, gid, home) = test_user();
    let s = Scratch::new();
    let cfg = format!(
        "[programs.who]\ncommand = {}\nuser = \"corraltest\"\n",
        sh(r#"echo "id=$(id -u):$(id -g) home=$HOME user=$USER"; exec sleep 1000"#)
    );
    let mut c = s.start(&cfg);
    let line = c.wait_line(Stream::Stdout, r"^\[who\] id=", TIMEOUT);
    assert_eq!(
        line,
        format!("[who] id={uid}:{gid} home={home} user=corraltest")
    );
    // The exec'd sleep, seen from outside.
    let pid = c.pid_of("who");
    wait_until("sleep to be exec'd", TIMEOUT, || {
        status_field(pid, "Name").as_deref() == Some("sleep")
    });
    let ids = |field: &str| -> Vec<u32> {
        status_field(pid, field)
            .unwrap()
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect()
    };
    assert_eq!(ids("Uid"), [uid; 4]);
    assert_eq!(ids("Gid"), [gid; 4]);
    assert!(
        !ids("Groups").contains(&0),
        "root's supplementary groups leaked"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
    assert!(environ.contains(&format!("HOME={home}").as_bytes()));
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// Runs `sleep` under a corral started with `state`; returns (corral's,
/// the program's) (SigIgn, SigBlk).
fn signal_masks(state: SignalState) -> ((u64, u64), (u64, u64)) {
    let s = Scratch::new();
    let cfg = "[programs.sleeper]\ncommand = [\"sleep\", \"1000\"]\n";
    let opts = Options {
        signals: Some(state),
        ..Options::default()
    };
    let mut c = s.start_with(cfg, opts);
    let pid = c.pid_of("sleeper");
    wait_until("sleep to be exec'd", TIMEOUT, || {
        status_field(pid, "Name").as_deref() == Some("sleep")
    });
    let mask = |p: i32, f: &str| u64::from_str_radix(&status_field(p, f).unwrap(), 16).unwrap();
    let masks = |p: i32| (mask(p, "SigIgn"), mask(p, "SigBlk"));
    let out = (masks(c.pid), masks(pid));
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
    out
}

fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// corral starts with SIGUSR1 ignored and SIGUSR2 blocked (say, by a
/// careless container runtime); its programs must not inherit either.
#[test]
fn programs_get_a_clean_signal_state() {
    let ((corral_ign, corral_blk), (ign, blk)) = signal_masks(SignalState {
        ignored: &[libc::SIGUSR1],
        blocked: &[libc::SIGUSR2],
    });
    // The set-up works: corral itself did inherit the dirty state.
    assert_ne!(
        corral_ign & bit(libc::SIGUSR1),
        0,
        "harness: SIGUSR1 not ignored"
    );
    assert_ne!(
        corral_blk & bit(libc::SIGUSR2),
        0,
        "harness: SIGUSR2 not blocked"
    );
    assert_eq!(ign, 0, "program has ignored signals: SigIgn {ign:016x}");
    assert_eq!(blk, 0, "program has blocked signals: SigBlk {blk:016x}");
}

/// The same for glibc's reserved signals 32 and 33, which `cargo test`
/// itself hands down ignored: glibc's `sigaction` refuses to reset them, so
/// resetting them takes the raw syscall.
#[test]
fn programs_do_not_inherit_ignored_glibc_reserved_signals() {
    let ((corral_ign, _), (ign, _)) = signal_masks(SignalState {
        ignored: &[32, 33],
        blocked: &[],
    });
    // (glibc may take 33 over in corral itself; 32 stays as inherited.)
    assert_ne!(corral_ign & bit(32), 0, "harness: signal 32 not ignored");
    assert_eq!(ign, 0, "program has ignored signals: SigIgn {ign:016x}");
}

/// A limit above what corral may raise to (no CAP_SYS_RESOURCE, as in most
/// containers) is clamped to the inherited hard limit instead of failing
/// every spawn: the program still starts.
#[test]
fn rlimits_above_the_hard_limit_are_clamped_not_fatal() {
    let s = Scratch::new();
    let mut inherited = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut inherited) };
    let cfg = format!(
        r#"
[supervisor]
rlimits = {{ nofile = 1073741816 }}

[programs.big]
command = {big}
"#,
        big = tp(&["limits", &s.p("big.tmp"), "touch", &s.p("big.done"), "wait"]),
    );
    let mut c = s.start(&cfg);
    wait_until("big to start and write its limits", TIMEOUT, || {
        s.path("big.done").exists()
    });
    let (soft, hard) = limit(&read(&s.path("big.tmp")), "Max open files");
    assert_eq!(soft, hard);
    let hard: u64 = hard.parse().unwrap();
    // Raised if corral may, else clamped to what it inherited; never lower.
    assert!(
        hard == 1073741816 || hard == inherited.rlim_max,
        "nofile {hard}, inherited hard {}",
        inherited.rlim_max
    );
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}
