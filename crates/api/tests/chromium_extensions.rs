//! The extension endpoints against a real Chromium under Xvfb, started by
//! corral through `corral-api chromium-launch` (tests/common/chromium.rs).
//! An extension is proven loaded by its content script: it retitles a page
//! the test serves, and DevTools' `/json/list` shows the new title. Bad
//! uploads are refused with nothing written and Chromium untouched.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use common::*;
use serde_json::json;

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
