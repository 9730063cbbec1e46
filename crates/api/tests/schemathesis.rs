//! The OpenAPI document matches the implementation: schemathesis (from
//! PyPI, pinned in tests/schemathesis/requirements.txt) fuzzes the real
//! corral-api — under corral as PID 1, `--fs-root` on a scratch directory,
//! a token — from the spec it serves at /spec.yaml, and every check passes.
//!
//! The `st` used is `$CORRAL_SCHEMATHESIS` if set, else the venv that
//! `scripts/test api` creates at `target/schemathesis-venv`. A missing
//! schemathesis is a failure, never a skip. What is not fuzzed, and why, is
//! in tests/schemathesis/schemathesis.toml.

mod common;

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The checks that matter: no 5xx, only documented statuses, the
/// documented content types, bodies matching their schemas, and the
/// documented headers.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,response_headers_conformance";

/// Bound on the whole run (the suite keeps it under ~3 minutes).
const RUN_LIMIT: Duration = Duration::from_secs(600);

fn st_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CORRAL_SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    workspace.join("target/schemathesis-venv/bin/st")
}

#[test]
fn schemathesis_finds_no_mismatch_with_the_spec() {
    let st = st_binary();
    assert!(
        st.exists(),
        "schemathesis is not installed at {}: run `scripts/test api` (it creates the venv: \
         python3 -m venv target/schemathesis-venv && target/schemathesis-venv/bin/pip install \
         -r crates/api/tests/schemathesis/requirements.txt), or set CORRAL_SCHEMATHESIS to an `st`",
        st.display()
    );
    // The kept Chromium flags and extensions in a scratch place of their
    // own: with no program "chromium" in this corral a change is written,
    // its restart answers 404 and (flags) the change is rolled back, so
    // validation and the file handling are fuzzed for real.
    let chromium_state = tempfile::tempdir().unwrap();
    // Xvfb and the `recording` program as in supervisor.toml, so that
    // /recording/start really records (ffmpeg) rather than answering 503,
    // and /computer/* and /display act on a real X display (no browser on
    // it: random clicks and keys land nowhere).
    let display = free_display();
    let scratch = tempfile::tempdir().unwrap(); // lives as long as the run
    let params = scratch.path().join("recording.json");
    let programs = format!(
        "[programs.xvfb]\ncommand = {x}\nready = {{ x11 = \":{display}\", timeout = \"30s\" }}\n\n\
         [programs.recording]\ncommand = {r}\ndepends_on = [\"xvfb\"]\nautostart = false\n\
         restart = \"never\"\nstop_signal = \"INT\"\nstop_timeout = \"10s\"\n",
        x = argv(&[
            "Xvfb",
            &format!(":{display}"),
            "-screen",
            "0",
            "1280x720x24",
            "-nolisten",
            "tcp"
        ]),
        r = argv(&[api_bin(), "record", "--params", &params.to_string_lossy()]),
    );
    let env = Env::start(Setup {
        programs,
        api_args: vec![
            "--display".into(),
            format!(":{display}"),
            "--recording-params".into(),
            params.to_string_lossy().into(),
            "--recording-min-free-mib".into(),
            "64".into(),
            "--chromium-flags-file".into(),
            chromium_state
                .path()
                .join("state/chromium-flags.json")
                .to_string_lossy()
                .into(),
            "--chromium-extensions-dir".into(),
            chromium_state
                .path()
                .join("extensions")
                .to_string_lossy()
                .into(),
        ],
        ..Setup::default()
    });
    // Something for the fs operations to find.
    std::fs::create_dir(env.root.join("dir")).unwrap();
    std::fs::write(env.root.join("dir/file.txt"), "some text\n").unwrap();
    let config =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/schemathesis.toml");
    let base = format!("http://127.0.0.1:{}", env.port);
    let auth = format!("Authorization: Bearer {}", env.token.as_deref().unwrap());
    let work = env.path("st");
    std::fs::create_dir(&work).unwrap();
    let log = env.path("st.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .arg("run")
        .arg(format!("{base}/spec.yaml"))
        .args(["--url", &base])
        .args(["--header", &auth])
        .args(["--checks", CHECKS])
        .args(["--max-examples", "200"])
        .args(["--seed", "20260101"])
        .args(["--request-timeout", "30"])
        .args(["--workers", "2"])
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", st.display()));
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            // SAFETY: the process group of the child we started.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    // The summary, shown with --nocapture (and always on failure).
    eprintln!("{output}");
    match status {
        None => panic!("schemathesis did not finish within {RUN_LIMIT:?}:\n{output}"),
        Some(s) => assert!(s.success(), "schemathesis failed ({s}):\n{output}"),
    }
    // It really tested something.
    assert!(output.contains("passed"), "{output}");
}
