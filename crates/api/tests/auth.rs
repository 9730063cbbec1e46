//! Authentication and the secure defaults, against the real corral-api under
//! corral: the token file (re-read when it changes), 401 without or with a
//! wrong token on every protected endpoint, the public /healthz and
//! /spec.yaml, the refusal to listen on a non-loopback address without a
//! token, bounded request bodies (413), and the JSON error shape.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// One request per endpoint of the spec (method, path), with a body where
/// the endpoint takes one; none of them may do anything without the token.
const PROTECTED: &[(&str, &str)] = &[
    ("POST", "/process/exec"),
    ("POST", "/process/spawn"),
    ("GET", "/process/p-1-1/status"),
    ("GET", "/process/p-1-1/stdout/stream"),
    ("POST", "/process/p-1-1/stdin"),
    ("POST", "/process/p-1-1/kill"),
    ("GET", "/fs/read_file?path=/x"),
    ("PUT", "/fs/write_file?path=/pwned"),
    ("POST", "/fs/upload?dir=/"),
    ("POST", "/fs/upload_zip?dest=/"),
    ("GET", "/fs/download_dir_zip?path=/"),
    ("GET", "/fs/list_files?path=/"),
    ("GET", "/fs/file_info?path=/"),
    ("PUT", "/fs/create_directory"),
    ("PUT", "/fs/delete_file"),
    ("PUT", "/fs/move"),
    ("PUT", "/fs/chmod"),
    ("GET", "/logs/stream?program=api"),
    ("GET", "/programs"),
    ("POST", "/programs/api/start"),
    ("POST", "/programs/api/stop"),
    ("POST", "/programs/api/restart"),
    ("POST", "/chromium/restart"),
    ("GET", "/computer/screenshot"),
    ("POST", "/computer/click_mouse"),
    ("POST", "/computer/move_mouse"),
    ("POST", "/computer/drag_mouse"),
    ("POST", "/computer/scroll"),
    ("POST", "/computer/type"),
    ("POST", "/computer/press_key"),
    ("GET", "/computer/cursor"),
    ("GET", "/display"),
    ("PATCH", "/display"),
    // Unknown paths are not revealed either.
    ("GET", "/nope"),
];

#[test]
fn auth_missing_or_wrong_token_is_401_everywhere() {
    let env = Env::start(Setup::default());
    let token = env.token.clone().unwrap();
    let before = world(&env);
    let body = br#"{"argv":["touch","/tmp/corral-api-auth-pwned"],"path":"pwned"}"#;
    let wrong_same_len = "x".repeat(token.len());
    let bad_headers: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("Authorization", "Bearer wrong".into())],
        vec![("Authorization", format!("Bearer {wrong_same_len}"))],
        vec![("Authorization", format!("Bearer {token}x"))],
        vec![("Authorization", format!("Basic {token}"))],
        vec![("Authorization", token.clone())],
    ];
    for (method, path) in PROTECTED {
        for h in &bad_headers {
            let mut hs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            hs.push(("Content-Type", "application/json"));
            let r = request(env.port, method, path, &hs, body);
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer"),
                "{method} {path}"
            );
            let v = r.expect_error(401);
            assert_eq!(v["error"], "unauthorized", "{method} {path}");
        }
    }
    assert!(!std::path::Path::new("/tmp/corral-api-auth-pwned").exists());
    assert_eq!(world(&env), before, "a refused request changed files");
    // The right token opens the same doors.
    env.get("/programs").expect(200);
    env.get("/fs/list_files?path=/").expect(200);
}

#[test]
fn auth_public_endpoints_need_no_token() {
    let env = Env::start(Setup::default());
    let r = request(env.port, "GET", "/healthz", &[], b"").expect(200);
    assert_eq!(r.json()["ok"], true);
    let r = request(env.port, "GET", "/spec.yaml", &[], b"").expect(200);
    assert_eq!(r.header("content-type"), Some("application/yaml"));
    let spec = r.text();
    assert!(spec.starts_with("openapi: 3"), "{spec}");
    assert_eq!(
        spec,
        include_str!("../api/openapi.yaml"),
        "served spec is the repo's"
    );
    // Public means GET only: another method on them is still behind the token.
    request(env.port, "POST", "/healthz", &[], b"").expect_error(401);
    request(env.port, "DELETE", "/spec.yaml", &[], b"").expect_error(401);
    // With the token, a wrong method is 405 and an unknown path 404.
    env.call("POST", "/healthz", &[], b"").expect_error(405);
    env.get("/nope").expect_error(404);
}

#[test]
fn auth_token_file_is_reread_when_it_changes() {
    let env = Env::start(Setup::default());
    let old = env.token.clone().unwrap();
    let file = env.path("token");
    env.get("/programs").expect(200);
    // Replace the file atomically, as a secret mount update does.
    let tmp = env.path("token.new");
    std::fs::write(&tmp, "rotated-token\n").unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let bearer = |t: &str| format!("Bearer {t}");
    wait_until("the new token to be accepted", TIMEOUT, || {
        let h = bearer("rotated-token");
        request(env.port, "GET", "/programs", &[("Authorization", &h)], b"").status == 200
    });
    let h = bearer(&old);
    request(env.port, "GET", "/programs", &[("Authorization", &h)], b"").expect_error(401);
}

#[test]
fn auth_env_token_works_without_a_file() {
    // CORRAL_API_TOKEN instead of --token-file.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(api_bin())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--socket")
        .arg(dir.path().join("none.sock"))
        .env("CORRAL_API_TOKEN", "from-env")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(child.id());
    wait_until("corral-api to listen", TIMEOUT, || {
        try_request(port, "GET", "/healthz", &[], b"").is_ok_and(|r| r.status == 200)
    });
    request(port, "GET", "/fs/file_info?path=/", &[], b"").expect_error(401);
    let r = request(
        port,
        "GET",
        "/fs/file_info?path=/",
        &[("Authorization", "Bearer from-env")],
        b"",
    );
    assert_eq!(r.expect(200).json()["type"], "dir");
    let _ = child.kill();
    let _ = child.wait();
}

struct KillOnDrop(u32);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) of a child we started.
        unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
    }
}

/// Runs corral-api with these arguments and environment; returns (exit code,
/// stderr). Killed (and failing the test) if it is still running after 10 s:
/// a refusal must be immediate.
fn run_api(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut child = Command::new(api_bin())
        .args(args)
        .env_remove("CORRAL_API_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        assert!(
            Instant::now() < deadline,
            "corral-api {args:?} did not exit: it started serving"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn auth_non_loopback_without_token_refuses_to_start() {
    for listen in ["0.0.0.0", "[::]"] {
        let addr = format!("{listen}:{}", free_port());
        let (code, err) = run_api(&["--listen", &addr], &[]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("refusing to listen"), "{err}");
        assert!(
            err.contains("--token-file") && err.contains("--insecure-no-auth"),
            "{err}"
        );
    }
    // An empty token is no token.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let addr = format!("0.0.0.0:{}", free_port());
    let (code, err) = run_api(
        &["--listen", &addr, "--token-file", empty.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2, "an empty token file: {err}");
    // A missing token file is created (a fresh token, docs/security.md);
    // one that cannot be created is a bad argument, never "no auth".
    let missing = dir.path().join("missing");
    let (code, err) = run_api(
        &[
            "--listen",
            &addr,
            "--token-file",
            "/proc/corral-no-such-dir/token",
        ],
        &[],
    );
    assert_eq!(code, 2, "a token file that cannot be made: {err}");
    assert!(err.contains("/proc/corral-no-such-dir"), "{err}");
    // A bad --fs-root too.
    let (code, err) = run_api(&["--fs-root", missing.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--fs-root"), "{err}");
}

#[test]
fn auth_non_loopback_with_token_or_explicit_opt_out_starts() {
    // Under corral: a token on 0.0.0.0, then --insecure-no-auth on 0.0.0.0.
    let env = Env::start(Setup {
        listen_any: true,
        ..Setup::default()
    });
    request(env.port, "GET", "/programs", &[], b"").expect_error(401);
    env.get("/programs").expect(200);
    drop(env);

    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(api_bin())
        .args(["--listen", &format!("0.0.0.0:{port}"), "--insecure-no-auth"])
        .arg("--fs-root")
        .arg(dir.path())
        .env_remove("CORRAL_API_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(child.id());
    wait_until("the API with --insecure-no-auth", TIMEOUT, || {
        try_request(port, "GET", "/fs/list_files?path=/", &[], b"").is_ok_and(|r| r.status == 200)
    });
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn auth_request_bodies_are_bounded() {
    let env = Env::start(Setup::default());
    let before = world(&env);
    // JSON bodies: 4 MiB at most. Sent in full (the server may stop reading).
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    for (m, p) in [
        ("POST", "/process/exec"),
        ("PUT", "/fs/create_directory"),
        ("PUT", "/fs/delete_file"),
        ("PUT", "/fs/move"),
        ("POST", "/process/spawn"),
    ] {
        let v = env
            .call(m, p, &[("Content-Type", "application/json")], &big)
            .expect_error(413);
        assert!(v["detail"].as_str().unwrap().contains("at most"), "{v}");
    }
    // Files and archives: a declared length above the limit is refused
    // before a byte is read (the body is never sent).
    for path in ["/fs/write_file?path=/huge", "/fs/upload_zip?dest=/huge"] {
        let r = env.call(
            if path.contains("write") {
                "PUT"
            } else {
                "POST"
            },
            path,
            &[
                ("Content-Length", "2147483648"),
                ("Content-Type", "application/zip"),
            ],
            b"",
        );
        r.expect_error(413);
    }
    assert_eq!(world(&env), before, "a refused body left something behind");
    // Errors are JSON {error, detail} whatever went wrong.
    env.call(
        "POST",
        "/process/exec",
        &[("Content-Type", "application/json")],
        b"{",
    )
    .expect_error(400);
    env.get("/fs/read_file").expect_error(400);
}
