//! `/chromium/flags` against a real Chromium under Xvfb, started by corral
//! (PID 1 of a fresh PID namespace) through `corral-api chromium-launch`
//! (tests/common/chromium.rs): a kept flag is on the browser's command line
//! after the API's restart and after corral restarts a crashed Chromium by
//! itself; refusals leave everything as it was.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[test]
fn chromium_flags_are_kept_applied_and_checked() {
    let b = start();
    let v = b.env.get("/chromium/flags").expect(200).json();
    assert_eq!(v["flags"], json!([]));
    let cl: Vec<String> = serde_json::from_value(v["command_line"].clone()).unwrap();
    assert!(
        cl.iter().any(|a| a.starts_with("--remote-debugging-port=")),
        "{v}"
    );
    let (pid0, _) = b.browser();

    // Set two flags: Chromium restarts with them, answer once CDP is back.
    let v = b
        .patch(&json!({ "flags": ["--corral-test-flag=one", "--lang=fr"] }))
        .expect(200)
        .json();
    assert_eq!(v["flags"], json!(["--corral-test-flag=one", "--lang=fr"]));
    assert!(v["restart"]["browser"].as_str().is_some(), "{v}");
    assert!(cdp_get(b.cdp, "/json/version").is_some(), "CDP answers");
    let (pid1, args) = b.browser();
    assert_ne!(pid1, pid0, "restarted");
    assert!(
        has(&args, "--corral-test-flag=one") && has(&args, "--lang=fr"),
        "{args:?}"
    );
    let kept: Value = serde_json::from_slice(&std::fs::read(&b.flags_file).unwrap()).unwrap();
    assert_eq!(kept["flags"], v["flags"]);

    // Same name replaces; "remove" drops.
    let v = b
        .patch(&json!({ "flags": ["--corral-test-flag=two"], "remove": ["--lang"] }))
        .expect(200)
        .json();
    assert_eq!(v["flags"], json!(["--corral-test-flag=two"]));
    let (pid2, args) = b.browser();
    assert_ne!(pid2, pid1);
    assert!(has(&args, "--corral-test-flag=two"), "{args:?}");
    assert!(
        !args
            .iter()
            .any(|a| a == "--corral-test-flag=one" || a.starts_with("--lang=")),
        "{args:?}"
    );
    let cl: Vec<String> = serde_json::from_value(v["command_line"].clone()).unwrap();
    assert!(has(&cl, "--corral-test-flag=two"), "{v}");

    // Refused: 400 naming why, the stack unchanged (same browser, same file).
    let file_before = std::fs::read(&b.flags_file).unwrap();
    for (body, says) in [
        (
            json!({ "flags": ["--remote-debugging-port=9999"] }),
            "--remote-debugging-port",
        ),
        (
            json!({ "flags": ["--user-data-dir=/tmp/elsewhere"] }),
            "--user-data-dir",
        ),
        (
            json!({ "flags": ["--remote-allow-origins=*"] }),
            "--remote-allow-origins",
        ),
        (
            json!({ "flags": ["--load-extension=/tmp/x"] }),
            "upload-extensions",
        ),
        (json!({ "flags": ["--kiosk", "no-dashes"] }), "no-dashes"),
        (json!({ "flags": [] }), "nothing to change"),
        (json!({ "flags": "--kiosk" }), "invalid JSON body"),
        (json!({ "flag": ["--kiosk"] }), "unknown field"),
        (json!({ "remove": ["lang"] }), "lang"),
    ] {
        let e = b.patch(&body).expect_error(400);
        assert!(
            e["detail"].as_str().unwrap().contains(says),
            "{body} -> {e}"
        );
    }
    assert_eq!(std::fs::read(&b.flags_file).unwrap(), file_before);
    let (pid3, args3) = b.browser();
    assert_eq!(pid3, pid2, "a refused flag restarts nothing");
    assert!(has(&args3, "--corral-test-flag=two"));
    b.env.get("/chromium/flags").expect(200);
    b.env
        .call("PUT", "/chromium/flags", &[], b"")
        .expect_error(405);

    // corral restarting Chromium by itself (a crash) applies them too.
    // SAFETY: plain kill(2) of the browser this test started.
    unsafe { libc::kill(pid3, libc::SIGKILL) };
    let (pid4, args4) = wait_for(
        "Chromium back after a crash",
        Duration::from_secs(60),
        || b.process().filter(|(p, _)| *p != pid3),
    );
    assert_ne!(pid4, pid3);
    assert!(has(&args4, "--corral-test-flag=two"), "{args4:?}");

    // A kept flag written behind the API's back that it would refuse is
    // dropped by the launcher; the rest still applies.
    std::fs::write(
        &b.flags_file,
        r#"{"flags": ["--remote-debugging-port=1", "--corral-test-flag=three"]}"#,
    )
    .unwrap();
    b.env.post("/chromium/restart", &Value::Null).expect(200);
    let (_, args5) = b.browser();
    assert!(has(&args5, "--corral-test-flag=three"), "{args5:?}");
    assert!(!has(&args5, "--remote-debugging-port=1"), "{args5:?}");
}

#[test]
fn chromium_endpoints_without_their_paths_are_503() {
    let env = Env::start(Setup::default());
    for (m, p) in [
        ("GET", "/chromium/flags"),
        ("PATCH", "/chromium/flags"),
        ("GET", "/chromium/extensions"),
        ("POST", "/chromium/upload-extensions-and-restart"),
        ("DELETE", "/chromium/extensions/x"),
    ] {
        let e = env
            .call(
                m,
                p,
                &[("Content-Type", "application/json")],
                b"{\"flags\":[\"--kiosk\"]}",
            )
            .expect_error(503);
        assert!(
            e["detail"].as_str().unwrap().contains("--chromium-"),
            "{m} {p}: {e}"
        );
    }
}
