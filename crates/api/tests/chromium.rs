//! `/chromium/flags` and the extension endpoints against a real Chromium
//! under Xvfb, started by corral (PID 1 of a fresh PID namespace) through
//! `corral-api chromium-launch`, exactly as supervisor.toml does.
//!
//! What Chromium really runs with is read from the host's /proc (the
//! browser process is the one whose command line names this test's
//! profile and has no `--type=`), independently of what the API says. An
//! extension is proven loaded by its content script: it retitles a page
//! the test serves, and DevTools' `/json/list` shows the new title.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Xvfb + Chromium (through the launcher) + corral-api configured for
/// kept flags and extensions under the fs root, as in the image.
struct Browser {
    env: Env,
    cdp: u16,
    profile: PathBuf,
    flags_file: PathBuf,
    ext_dir: PathBuf,
    _profile_dir: tempfile::TempDir,
    _state: tempfile::TempDir,
}

fn start() -> Browser {
    let cdp = free_port();
    let display = free_display();
    let profile_dir = tempfile::Builder::new()
        .prefix("corral-chromium-it-")
        .tempdir()
        .unwrap();
    let profile = profile_dir.path().to_path_buf();
    // The fs root is made by Env; these paths are fixed before it exists
    // (corral-api and the launcher create what is missing).
    let state = tempfile::Builder::new()
        .prefix("corral-chromium-state-")
        .tempdir()
        .unwrap();
    let scratch = state.path();
    let flags_file = scratch.join("state/chromium-flags.json");
    let ext_dir = scratch.join("extensions");
    let launch = [
        api_bin(),
        "chromium-launch",
        "--flags-file",
        flags_file.to_str().unwrap(),
        "--extensions-dir",
        ext_dir.to_str().unwrap(),
        "--",
        "chromium",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--password-store=basic",
        &format!("--remote-debugging-port={cdp}"),
        &format!("--user-data-dir={}", profile.display()),
        "about:blank",
    ];
    let programs = format!(
        "[programs.xvfb]\ncommand = {x}\nready = {{ x11 = \":{display}\", timeout = \"30s\" }}\n\n\
         [programs.chromium]\ncommand = {c}\nenv = {{ DISPLAY = \":{display}\" }}\nbinds_to = [\"xvfb\"]\n\
         ready = {{ tcp = \"127.0.0.1:{cdp}\", timeout = \"60s\" }}\nstop_signal = \"TERM\"\nstop_timeout = \"15s\"\n\
         backoff = {{ initial = \"100ms\", max = \"1s\" }}\n",
        x = argv(&["Xvfb", &format!(":{display}"), "-screen", "0", "1280x720x24", "-nolisten", "tcp"]),
        c = argv(&launch),
    );
    let env = Env::start(Setup {
        programs,
        api_args: vec![
            "--cdp".into(),
            format!("http://127.0.0.1:{cdp}"),
            "--chromium-flags-file".into(),
            flags_file.to_string_lossy().into(),
            "--chromium-extensions-dir".into(),
            ext_dir.to_string_lossy().into(),
        ],
        ..Setup::default()
    });
    wait_for("Chromium's DevTools", Duration::from_secs(90), || {
        cdp_get(cdp, "/json/version")
    });
    Browser {
        env,
        cdp,
        profile,
        flags_file,
        ext_dir,
        _profile_dir: profile_dir,
        _state: state,
    }
}

fn cdp_get(port: u16, path: &str) -> Option<Value> {
    let r = try_request(port, "GET", path, &[], b"").ok()?;
    (r.status == 200).then(|| r.json())
}

impl Browser {
    /// The browser process on the host: (pid, argv).
    fn process(&self) -> Option<(i32, Vec<String>)> {
        let needle = format!("--user-data-dir={}", self.profile.display());
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if args.contains(&needle) && !args.iter().any(|a| a.starts_with("--type=")) {
                // The launcher execs the Debian wrapper, which execs the
                // real binary: only the final binary counts.
                if args[0].contains("chromium") && !args[0].ends_with("corral-api") {
                    return Some((pid, args));
                }
            }
        }
        None
    }

    fn browser(&self) -> (i32, Vec<String>) {
        wait_for("the browser process", TIMEOUT, || self.process())
    }

    fn patch(&self, body: &Value) -> Resp {
        self.env.json("PATCH", "/chromium/flags", body)
    }
}

fn has(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
}

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

/// A one-page HTTP server on loopback: every request gets the page.
fn serve_page() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let page = "<!doctype html><title>plain</title><p>corral test page</p>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    port
}

/// The unpacked extension: a content script that retitles every page.
fn extension_zip(prefix: &str, title: &str) -> Vec<u8> {
    let manifest = json!({
        "manifest_version": 3, "name": "corral test", "version": "1.2.3",
        "content_scripts": [{ "matches": ["<all_urls>"], "js": ["cs.js"], "run_at": "document_idle" }]
    })
    .to_string();
    let script = format!("document.title = {title:?};");
    let (m, s) = (format!("{prefix}manifest.json"), format!("{prefix}cs.js"));
    zip_of(&[
        E::File(&m, manifest.as_bytes()),
        E::File(&s, script.as_bytes()),
    ])
}

/// A form field: name, filename (file fields), data.
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// multipart/form-data with text fields and file fields, in order.
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "corral-ext-boundary-7f3a";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""
        )
        .unwrap();
        if let Some(f) = filename {
            write!(body, "; filename=\"{f}\"\r\nContent-Type: application/zip").unwrap();
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn upload(b: &Browser, parts: &[(&str, Option<&str>, &[u8])]) -> Resp {
    let (ct, body) = form(parts);
    b.env.call(
        "POST",
        "/chromium/upload-extensions-and-restart",
        &[("Content-Type", &ct)],
        &body,
    )
}

/// Opens `url` in a new tab; returns its target id.
fn open_tab(cdp: u16, url: &str) -> String {
    let r = request(cdp, "PUT", &format!("/json/new?{url}"), &[], b"").expect(200);
    r.json()["id"].as_str().unwrap().to_string()
}

fn title_of(cdp: u16, id: &str) -> Option<String> {
    let list = cdp_get(cdp, "/json/list")?;
    list.as_array()?
        .iter()
        .find(|t| t["id"] == id)
        .and_then(|t| t["title"].as_str().map(str::to_string))
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn chromium_extensions_upload_load_list_delete() {
    let b = start();
    let page = serve_page();
    let url = format!("http://127.0.0.1:{page}/");
    // Without the extension the page keeps its title.
    let id = open_tab(b.cdp, &url);
    wait_for("the page loaded", TIMEOUT, || {
        (title_of(b.cdp, &id).as_deref() == Some("plain")).then_some(())
    });
    let (pid0, _) = b.browser();

    // Bad uploads: refused, nothing written, Chromium untouched.
    let good = extension_zip("", "corral-ext-ran");
    let escape = zip_of(&[
        E::File("manifest.json", b"{}"),
        E::File("../escape.js", b"x"),
    ]);
    let no_manifest = zip_of(&[E::File("cs.js", b"x")]);
    let bad_manifest = zip_of(&[E::File("manifest.json", b"not json")]);
    let link = zip_of(&[E::File("manifest.json", b"{}"), E::Link("l", "/etc")]);
    let cases: Vec<(Vec<Part>, u16, &str)> = vec![
        (
            vec![
                ("extensions.name", None, b"ok"),
                ("extensions.zip_file", Some("e.zip"), &escape),
            ],
            400,
            "..",
        ),
        (
            vec![
                ("extensions.name", None, b"ok"),
                ("extensions.zip_file", Some("e.zip"), &no_manifest),
            ],
            400,
            "manifest.json",
        ),
        (
            vec![
                ("extensions.name", None, b"ok"),
                ("extensions.zip_file", Some("e.zip"), &bad_manifest),
            ],
            400,
            "manifest.json",
        ),
        (
            vec![
                ("extensions.name", None, b"ok"),
                ("extensions.zip_file", Some("e.zip"), &link),
            ],
            400,
            "absolute",
        ),
        (
            vec![
                ("extensions.name", None, b"ok"),
                ("extensions.zip_file", Some("e.zip"), b"not a zip"),
            ],
            400,
            "zip",
        ),
        (
            vec![
                ("extensions.name", None, b"../up"),
                ("extensions.zip_file", Some("e.zip"), &good),
            ],
            400,
            "invalid extension name",
        ),
        (
            vec![("extensions.zip_file", Some("e.zip"), &good)],
            400,
            "both",
        ),
        (vec![("other", None, b"x")], 400, "unexpected form field"),
        (vec![], 400, "no extensions"),
        // A good one and a bad one: neither is installed.
        (
            vec![
                ("extensions.name", None, b"fine"),
                ("extensions.zip_file", Some("a.zip"), &good),
                ("extensions.name", None, b"bad"),
                ("extensions.zip_file", Some("b.zip"), &escape),
            ],
            400,
            "\"bad\"",
        ),
    ];
    for (parts, status, says) in &cases {
        let e = upload(&b, parts).expect_error(*status);
        assert!(e["detail"].as_str().unwrap().contains(says), "{says}: {e}");
        assert!(
            listing(&b.ext_dir).is_empty(),
            "{says}: {:?}",
            listing(&b.ext_dir)
        );
    }
    let e = b
        .env
        .call(
            "POST",
            "/chromium/upload-extensions-and-restart",
            &[("Content-Type", "application/zip")],
            &good,
        )
        .expect_error(415);
    assert!(e["detail"].as_str().unwrap().contains("multipart"), "{e}");
    assert_eq!(b.browser().0, pid0, "refused uploads restart nothing");

    // A good one (zipped as a folder, name after the zip): installed,
    // Chromium restarted with it, its content script runs.
    let folder = extension_zip("retitle/", "corral-ext-ran");
    let v = upload(
        &b,
        &[
            ("extensions.zip_file", Some("r.zip"), &folder),
            ("extensions.name", None, b"retitle"),
        ],
    )
    .expect(201)
    .json();
    assert_eq!(v["installed"][0]["name"], "retitle", "{v}");
    assert!(v["restart"]["browser"].is_string(), "{v}");
    assert_eq!(listing(&b.ext_dir), vec!["retitle"]);
    assert!(b.ext_dir.join("retitle/manifest.json").is_file());
    let (pid1, args) = b.browser();
    assert_ne!(pid1, pid0);
    let load = format!("--load-extension={}", b.ext_dir.join("retitle").display());
    assert!(has(&args, &load), "{args:?}");
    let id = open_tab(b.cdp, &url);
    wait_for("the content script retitled the page", TIMEOUT, || {
        (title_of(b.cdp, &id).as_deref() == Some("corral-ext-ran")).then_some(())
    });

    // Listed.
    let v = b.env.get("/chromium/extensions").expect(200).json();
    let exts = v["extensions"].as_array().unwrap();
    assert_eq!(exts.len(), 1, "{v}");
    assert_eq!(
        (exts[0]["name"].as_str(), exts[0]["version"].as_str()),
        (Some("retitle"), Some("1.2.3"))
    );

    // Replaced by a new version of the same name.
    let v2 = extension_zip("", "corral-ext-v2");
    upload(
        &b,
        &[
            ("extensions.name", None, b"retitle"),
            ("extensions.zip_file", Some("r.zip"), &v2),
        ],
    )
    .expect(201);
    assert_eq!(listing(&b.ext_dir), vec!["retitle"]);
    let id = open_tab(b.cdp, &url);
    wait_for("the new version runs", TIMEOUT, || {
        (title_of(b.cdp, &id).as_deref() == Some("corral-ext-v2")).then_some(())
    });

    // Deleted: gone from disk and from Chromium's command line.
    let v = b
        .env
        .call("DELETE", "/chromium/extensions/retitle", &[], b"")
        .expect(200)
        .json();
    assert_eq!(v["deleted"], "retitle");
    assert!(listing(&b.ext_dir).is_empty());
    let (_, args) = b.browser();
    // (Debian's wrapper adds an empty --load-extension= of its own.)
    let ours = b.ext_dir.to_string_lossy().into_owned();
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--load-extension=") && a.contains(&ours)),
        "{args:?}"
    );
    let id = open_tab(b.cdp, &url);
    wait_for("the page loaded", TIMEOUT, || {
        (title_of(b.cdp, &id).as_deref() == Some("plain")).then_some(())
    });
    b.env
        .call("DELETE", "/chromium/extensions/retitle", &[], b"")
        .expect_error(404);
    b.env
        .call("DELETE", "/chromium/extensions/..", &[], b"")
        .expect_error(400);
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
