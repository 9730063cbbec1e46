//! Transfers over real HTTP (helpers in `tests_http`): multipart
//! uploads, the streamed directory zip and its round trip through
//! `upload_zip`. That the zip's memory does not grow with the directory is
//! measured on the real binary by bench/api (200 MiB, VmHWM), not here: a
//! test process's peak RSS is shared with every test running beside it.

use std::io::{Cursor, Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};

use hyper::{Method, StatusCode};
use serde_json::json;

use super::tests_http::{send, server, setup};

fn multipart(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, data) in parts {
        write!(b, "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").unwrap();
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"--XyZ--\r\n");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_http_upload_multipart() {
    let (t, root) = setup();
    let a = server(root.clone()).await;
    let ct = [("content-type", "multipart/form-data; boundary=XyZ")];
    let body = multipart(&[("a.txt", b"A"), ("sub/deep/b.txt", b"BB")]);
    let r = send(a, Method::POST, "/fs/upload?dir=/up", &ct, body).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    assert_eq!(
        r.json(),
        json!({"files": [{"path": "/up/a.txt", "size": 1}, {"path": "/up/sub/deep/b.txt", "size": 2}]})
    );
    assert_eq!(
        std::fs::read(root.join("up/sub/deep/b.txt")).unwrap(),
        b"BB"
    );
    // A bad part: 400 naming it; the earlier part is written, the bad one is not.
    for bad in ["../evil.txt", "/abs.txt", "x/../../evil.txt"] {
        let body = multipart(&[("ok.txt", b"1"), (bad, b"2")]);
        let r = send(a, Method::POST, "/fs/upload?dir=/up2", &ct, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            r.json()["detail"].as_str().unwrap().contains("part 2"),
            "{:?}",
            r.json()
        );
        assert!(root.join("up2/ok.txt").exists());
    }
    // Through a symlink inside the upload directory that leads outside it.
    symlink("../../secret", root.join("up/link")).unwrap();
    let r = send(
        a,
        Method::POST,
        "/fs/upload?dir=/up",
        &ct,
        multipart(&[("link/x", b"1")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!t.path().join("x").exists());
    let r = send(
        a,
        Method::POST,
        "/fs/upload?dir=/up",
        &[("content-type", "text/plain")],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let names: Vec<_> = std::fs::read_dir(root.join("up2"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temp files: {names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_http_zip_round_trip() {
    let (t, root) = setup();
    let a = server(root.clone()).await;
    std::fs::create_dir_all(root.join("src/a/b")).unwrap();
    std::fs::write(root.join("src/a/b/c.txt"), b"hello").unwrap();
    std::fs::write(root.join("src/run.sh"), b"#!/bin/sh").unwrap();
    std::fs::set_permissions(
        root.join("src/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let big: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(root.join("src/big.bin"), &big).unwrap();
    symlink("a/b/c.txt", root.join("src/in")).unwrap();
    symlink(t.path().join("secret"), root.join("src/out")).unwrap();

    let r = send(
        a,
        Method::GET,
        "/fs/download_dir_zip?path=/src",
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/zip");
    assert_eq!(
        r.headers["content-disposition"],
        "attachment; filename=\"src.zip\""
    );
    let mut z = zip::ZipArchive::new(Cursor::new(r.body.to_vec())).unwrap();
    let mut names: Vec<String> = z.file_names().map(|n| n.unwrap().to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        ["a/", "a/b/", "a/b/c.txt", "big.bin", "in", "out", "run.sh"]
    );
    let mut read = |n: &str| {
        let mut f = z.by_name(n).unwrap();
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        (v, f.is_symlink(), f.unix_mode().unwrap() & 0o777)
    };
    assert_eq!(read("a/b/c.txt"), (b"hello".to_vec(), false, 0o644));
    assert_eq!(read("run.sh").2, 0o755);
    assert!(read("big.bin").0 == big);
    // Symlinks stored as links, never followed (the outside file's content is absent).
    assert_eq!(read("in"), (b"a/b/c.txt".to_vec(), true, 0o777));
    let out = read("out");
    assert!(out.1 && out.0 != b"outside");

    // And back in through upload_zip (the outside-pointing link makes it refused).
    let zip_bytes = r.body.to_vec();
    let ct = [("content-type", "application/zip")];
    let u = send(a, Method::POST, "/fs/upload_zip?dest=/copy", &ct, zip_bytes).await;
    assert_eq!(u.status, StatusCode::BAD_REQUEST, "{:?}", u.json());
    assert!(u.json()["detail"].as_str().unwrap().contains("\"out\""));
    assert!(
        !root.join("copy").exists(),
        "the destination it created is removed again"
    );
    std::fs::remove_file(root.join("src/out")).unwrap();
    let r = send(
        a,
        Method::GET,
        "/fs/download_dir_zip?path=/src",
        &[],
        vec![],
    )
    .await;
    let u = send(
        a,
        Method::POST,
        "/fs/upload_zip?dest=/copy",
        &ct,
        r.body.to_vec(),
    )
    .await;
    assert_eq!(u.status, StatusCode::OK, "{:?}", u.json());
    assert_eq!(u.json(), json!({"entries": 6, "bytes": 5 + 9 + 1_000_000}));
    assert_eq!(std::fs::read(root.join("copy/in")).unwrap(), b"hello");
    assert!(std::fs::read(root.join("copy/big.bin")).unwrap() == big);

    let r = send(
        a,
        Method::GET,
        "/fs/download_dir_zip?path=/src/run.sh",
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send(
        a,
        Method::GET,
        "/fs/download_dir_zip?path=/escape",
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let u = send(
        a,
        Method::POST,
        "/fs/upload_zip?dest=/copy",
        &[("content-type", "text/plain")],
        vec![],
    )
    .await;
    assert_eq!(u.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
