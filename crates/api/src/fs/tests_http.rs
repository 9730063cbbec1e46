//! `/fs/*` over real HTTP: a loopback server calling the handlers, and a
//! hyper client (shared with `tests_transfer`). Covers the request and
//! answer shapes, ranges, atomic writes, metadata and the status codes.

use std::net::SocketAddr;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::*;

/// A loopback corral-api with an open policy whose files are under
/// `root`: the real route table and accept loop (`crate::serve`).
pub(super) async fn server(root: PathBuf) -> SocketAddr {
    let state = Arc::new(crate::AppState {
        policy: corral_serve::Policy::open(),
        fs: Fs {
            root,
            watches: Default::default(),
        },
        procs: crate::procs::Processes::default(),
        control: crate::control::Client::new(PathBuf::from("/nonexistent/corral.sock")),
        cdp: "http://127.0.0.1:9".into(),
        chromium_program: "chromium".into(),
        live: crate::live::Live::new(PathBuf::from("/nonexistent/live-lease.json")),
        chromium: Default::default(),
        recording: crate::recording::Recorder::new(crate::recording::Config {
            dir: "/nonexistent/recordings".into(),
            program: "recording".into(),
            params: "/nonexistent/recording.json".into(),
            display: ":0".into(),
            min_free: 0,
            default_duration_s: 60,
            max_duration_s: 60,
        }),
        screen: crate::computer::Screen::new(":0"),
        display_state: Default::default(),
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(crate::serve(l, state, std::future::pending()));
    addr
}

pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub(super) async fn send(
    addr: SocketAddr,
    method: Method,
    uri: &str,
    hdrs: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1");
    for (k, v) in hdrs {
        b = b.header(*k, *v);
    }
    let resp = tx
        .send_request(b.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// A PUT of raw bytes (write_file), no extra headers.
async fn put(addr: SocketAddr, uri: &str, body: Vec<u8>) -> Answer {
    send(addr, Method::PUT, uri, &[], body).await
}

async fn put_json(addr: SocketAddr, uri: &str, v: Value) -> Answer {
    send(
        addr,
        Method::PUT,
        uri,
        &[("content-type", "application/json")],
        v.to_string().into_bytes(),
    )
    .await
}

pub(super) fn setup() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(t.path().join("secret"), b"outside").unwrap();
    symlink("../secret", root.join("escape")).unwrap();
    (t, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_http_write_read_ranges() {
    let (_t, root) = setup();
    let a = server(root.clone()).await;
    let w = put(a, "/fs/write_file?path=/dir/f.txt", b"0123456789".to_vec()).await;
    assert_eq!(w.status, StatusCode::NOT_FOUND, "parent must exist");
    let w = put(
        a,
        "/fs/write_file?path=/dir/f.txt&parents=true&mode=0600",
        b"0123456789".to_vec(),
    )
    .await;
    assert_eq!(w.status, StatusCode::CREATED);
    assert_eq!(w.json(), json!({"path": "/dir/f.txt", "size": 10}));
    assert_eq!(
        std::fs::metadata(root.join("dir/f.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let w = put(a, "/fs/write_file?path=dir/f.txt", b"abcdefghij".to_vec()).await;
    assert_eq!(w.status, StatusCode::OK, "replaced");
    assert_eq!(
        std::fs::metadata(root.join("dir/f.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600,
        "mode kept"
    );

    let r = send(a, Method::GET, "/fs/read_file?path=/dir/f.txt", &[], vec![]).await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::OK, &b"abcdefghij"[..])
    );
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    assert_eq!(r.headers["content-length"], "10");
    let r = send(
        a,
        Method::GET,
        "/fs/read_file?path=/dir/f.txt",
        &[("range", "bytes=2-4")],
        vec![],
    )
    .await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"cde"[..])
    );
    assert_eq!(r.headers["content-range"], "bytes 2-4/10");
    let r = send(
        a,
        Method::GET,
        "/fs/read_file?path=/dir/f.txt",
        &[("range", "bytes=-3")],
        vec![],
    )
    .await;
    assert_eq!(&r.body[..], b"hij");
    let r = send(
        a,
        Method::GET,
        "/fs/read_file?path=/dir/f.txt",
        &[("range", "bytes=10-")],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers["content-range"], "bytes */10");
    let r = send(
        a,
        Method::GET,
        "/fs/read_file?path=/dir/f.txt&offset=8&length=100",
        &[],
        vec![],
    )
    .await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"ij"[..]));

    let r = send(a, Method::GET, "/fs/read_file?path=/dir", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "bad request");
    for p in ["/escape", "/../secret", "/dir/../../secret"] {
        let r = send(
            a,
            Method::GET,
            &format!("/fs/read_file?path={p}"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{p}");
        assert_eq!(r.json()["error"], "forbidden");
        assert!(r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("escapes the root"));
    }
    let w = put(a, "/fs/write_file?path=/escape/x", b"x".to_vec()).await;
    assert_eq!(w.status, StatusCode::FORBIDDEN);
    let w = put(a, "/fs/write_file?path=/dir", b"x".to_vec()).await;
    assert_eq!(w.status, StatusCode::BAD_REQUEST);
    let w = put(a, "/fs/write_file?path=/x&mode=4755", b"x".to_vec()).await;
    assert_eq!(w.status, StatusCode::BAD_REQUEST);
    // A large file streams whole.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let w = put(a, "/fs/write_file?path=/big", big.clone()).await;
    assert_eq!(w.json()["size"], 3_000_000);
    let r = send(a, Method::GET, "/fs/read_file?path=/big", &[], vec![]).await;
    assert!(r.body == big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_http_metadata_and_ops() {
    let (_t, root) = setup();
    let a = server(root.clone()).await;
    let r = put_json(
        a,
        "/fs/create_directory",
        json!({"path": "/d/e", "parents": true, "mode": "0750"}),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::CREATED,
            json!({"path": "/d/e", "created": true})
        )
    );
    let r = put_json(a, "/fs/create_directory", json!({"path": "/d/e"})).await;
    assert_eq!(r.status, StatusCode::OK);
    std::fs::write(root.join("d/f"), b"12345").unwrap();
    let r = put_json(a, "/fs/create_directory", json!({"path": "/d/f"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = put_json(
        a,
        "/fs/create_directory",
        json!({"path": "/d/x", "bogus": 1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    symlink("f", root.join("d/l")).unwrap();

    let r = send(a, Method::GET, "/fs/list_files?path=/d", &[], vec![]).await;
    let v = r.json();
    assert_eq!(v["path"], "/d");
    let names: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["e", "f", "l"]);
    let f = &v["entries"][1];
    assert_eq!(
        (f["type"].as_str(), f["size"].as_u64(), f["path"].as_str()),
        (Some("file"), Some(5), Some("/d/f"))
    );
    assert!(f["modified"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["entries"][0]["mode"], "0750");
    let r = send(a, Method::GET, "/fs/file_info?path=/d/l", &[], vec![]).await;
    assert_eq!(
        (r.json()["type"].as_str(), r.json()["target"].as_str()),
        (Some("symlink"), Some("f"))
    );
    let r = send(a, Method::GET, "/fs/file_info?path=/escape", &[], vec![]).await;
    assert_eq!(
        r.json()["type"],
        "symlink",
        "lstat of the link itself is inside the root"
    );
    let r = send(a, Method::GET, "/fs/list_files?path=/escape", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(a, Method::GET, "/fs/file_info?path=/nope", &[], vec![]).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not found"))
    );

    let r = put_json(a, "/fs/chmod", json!({"path": "/d/f", "mode": "0600"})).await;
    assert_eq!(r.json(), json!({"path": "/d/f", "mode": "0600"}));
    let r = put_json(a, "/fs/chmod", json!({"path": "/d/f", "mode": "4755"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = put_json(a, "/fs/move", json!({"from": "/d/f", "to": "/d/e"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = put_json(a, "/fs/move", json!({"from": "/d/f", "to": "/g"})).await;
    assert_eq!(r.json(), json!({"from": "/d/f", "to": "/g"}));
    let r = put_json(a, "/fs/delete_file", json!({"path": "/d"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = put_json(
        a,
        "/fs/delete_file",
        json!({"path": "/d", "recursive": true}),
    )
    .await;
    assert_eq!(r.json(), json!({"path": "/d", "deleted": true}));
    let r = put_json(
        a,
        "/fs/delete_file",
        json!({"path": "/", "recursive": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(root.join("g").exists());
}
