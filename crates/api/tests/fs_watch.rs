//! `/fs/watch`, `/fs/delete_directory` and `/fs/set_file_permissions`
//! against the real corral-api under corral (PID 1) and the real inotify:
//! the changes are made by this test process directly on the disk, the
//! events read from the SSE stream.

mod common;

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use common::*;
use serde_json::{json, Value};

fn start_watch(env: &Env, path: &str, recursive: bool) -> String {
    let v = env
        .post("/fs/watch", &json!({"path": path, "recursive": recursive}))
        .expect(201)
        .json();
    assert_eq!(v["recursive"], recursive);
    v["watch_id"].as_str().unwrap().to_string()
}

fn data(e: &Event) -> Value {
    serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("{err}: {e:?}"))
}

/// (type, path) of every event so far, with `from>to` for moves.
fn seen(s: &Sse) -> Vec<(String, String)> {
    seen_of(&s.events())
}

fn seen_of(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            let d = data(e);
            assert_eq!(d["type"], e.event.as_str(), "event name is the type: {e:?}");
            let what = if e.event == "move" {
                format!(
                    "{}>{}",
                    d["from"].as_str().unwrap_or("null"),
                    d["to"].as_str().unwrap_or("null")
                )
            } else {
                d["path"].as_str().unwrap_or("").to_string()
            };
            (e.event.clone(), what)
        })
        .collect()
}

fn wait_for_event(s: &Sse, kind: &str, what: &str) {
    // `wait` holds the event log's lock while it calls this: look only
    // at the events it hands over.
    s.wait(&format!("{kind} {what}"), TIMEOUT, |evs| {
        seen_of(evs)
            .iter()
            .any(|(k, w)| k == kind && w == what)
            .then_some(())
    });
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn fs_watch_sees_create_modify_move_delete_in_order() {
    let env = Env::start(Setup::default());
    let w = env.root.join("w");
    std::fs::create_dir(&w).unwrap();
    std::fs::create_dir(env.root.join("elsewhere")).unwrap();
    let id = start_watch(&env, "/w", false);

    // Made before anyone streams: queued from the start of the watch.
    std::fs::write(w.join("a.txt"), b"hello").unwrap();
    std::fs::rename(w.join("a.txt"), w.join("b.txt")).unwrap();
    std::fs::remove_file(w.join("b.txt")).unwrap();
    let s = env.sse(&format!("/fs/watch/{id}/events"));
    assert_eq!(s.status, 200);
    assert_eq!(s.header("content-type"), Some("text/event-stream"));
    wait_for_event(&s, "delete", "/w/b.txt");
    assert_eq!(
        seen(&s),
        pairs(&[
            ("create", "/w/a.txt"),
            ("modify", "/w/a.txt"),
            ("move", "/w/a.txt>/w/b.txt"),
            ("delete", "/w/b.txt"),
        ])
    );
    let created = data(&s.events()[0]);
    assert_eq!(created["name"], "a.txt");
    assert_eq!(created["is_dir"], false);

    // Moves across the watch's edge: out (to null) and in (from null).
    std::fs::write(w.join("c"), b"").unwrap();
    std::fs::rename(w.join("c"), env.root.join("elsewhere/c")).unwrap();
    wait_for_event(&s, "move", "/w/c>null");
    std::fs::rename(env.root.join("elsewhere/c"), w.join("d")).unwrap();
    wait_for_event(&s, "move", "null>/w/d");
    std::fs::create_dir(w.join("sub")).unwrap();
    wait_for_event(&s, "create", "/w/sub");
    let last = data(s.events().last().unwrap());
    assert_eq!(last["is_dir"], true);

    // Stopping ends the stream with a last `end` event.
    env.call("DELETE", &format!("/fs/watch/{id}"), &[], b"")
        .expect(200);
    let evs = s.wait_end(TIMEOUT);
    let end = data(evs.last().unwrap());
    assert_eq!(
        (end["type"].as_str(), end["reason"].as_str()),
        (Some("end"), Some("stopped"))
    );
    env.get(&format!("/fs/watch/{id}/events")).expect_error(404);
    env.call("DELETE", &format!("/fs/watch/{id}"), &[], b"")
        .expect_error(404);
}

#[test]
fn fs_watch_recursive_follows_new_directories() {
    let env = Env::start(Setup::default());
    let w = env.root.join("w");
    std::fs::create_dir_all(w.join("old/inner")).unwrap();
    let rec = env.sse(&format!(
        "/fs/watch/{}/events",
        start_watch(&env, "/w", true)
    ));
    let flat = env.sse(&format!(
        "/fs/watch/{}/events",
        start_watch(&env, "/w", false)
    ));

    // A directory that was there at the start, one made now and one made
    // inside that at once (no waiting: what the watch finds in a new
    // directory is reported too).
    std::fs::write(w.join("old/inner/x"), b"1").unwrap();
    wait_for_event(&rec, "create", "/w/old/inner/x");
    std::fs::create_dir_all(w.join("new/deep")).unwrap();
    std::fs::write(w.join("new/deep/y"), b"2").unwrap();
    wait_for_event(&rec, "create", "/w/new/deep/y");
    // A directory moved within the tree reports under its new name.
    std::fs::rename(w.join("new"), w.join("renamed")).unwrap();
    wait_for_event(&rec, "move", "/w/new>/w/renamed");
    std::fs::write(w.join("renamed/deep/z"), b"3").unwrap();
    wait_for_event(&rec, "create", "/w/renamed/deep/z");

    // Moved out of the watch: reported once, then no longer watched.
    std::fs::rename(w.join("renamed"), env.root.join("gone")).unwrap();
    wait_for_event(&rec, "move", "/w/renamed>null");
    std::fs::write(env.root.join("gone/deep/q"), b"4").unwrap();

    // The non-recursive watch saw only the top level.
    std::fs::write(w.join("marker"), b"").unwrap();
    wait_for_event(&flat, "create", "/w/marker");
    wait_for_event(&rec, "create", "/w/marker");
    let rec_seen = seen(&rec);
    assert!(
        rec_seen
            .iter()
            .all(|(_, p)| !p.contains("/q") && !p.starts_with("/gone")),
        "a directory moved out is no longer watched: {rec_seen:?}"
    );
    let flat_seen = seen(&flat);
    assert!(
        flat_seen
            .iter()
            .any(|(k, p)| k == "create" && p == "/w/new"),
        "{flat_seen:?}"
    );
    assert!(
        flat_seen
            .iter()
            .all(|(_, p)| p.matches('/').count() <= 2 || p.contains('>')),
        "a non-recursive watch reported something below the top: {flat_seen:?}"
    );
}

#[test]
fn fs_watch_ends_when_its_directory_is_removed() {
    let env = Env::start(Setup::default());
    let w = env.root.join("w");
    std::fs::create_dir_all(w.join("sub")).unwrap();
    std::fs::write(w.join("sub/f"), b"x").unwrap();
    let id = start_watch(&env, "/w", true);
    let s = env.sse(&format!("/fs/watch/{id}/events"));
    std::fs::remove_dir_all(&w).unwrap();
    let evs = s.wait_end(TIMEOUT);
    let got = seen(&s);
    assert!(
        got.contains(&("delete".into(), "/w/sub/f".into())),
        "{got:?}"
    );
    let end = data(evs.last().unwrap());
    assert_eq!(end["type"], "end");
    assert_eq!(end["reason"], "deleted");
    assert_eq!(end["path"], "/w");
    // Over and forgotten.
    env.get(&format!("/fs/watch/{id}/events")).expect_error(404);

    // A renamed watched directory ends the watch too (its paths no longer hold).
    std::fs::create_dir(env.root.join("m")).unwrap();
    let s = env.sse(&format!(
        "/fs/watch/{}/events",
        start_watch(&env, "/m", false)
    ));
    std::fs::rename(env.root.join("m"), env.root.join("m2")).unwrap();
    let evs = s.wait_end(TIMEOUT);
    assert_eq!(data(evs.last().unwrap())["reason"], "moved");
}

#[test]
fn fs_watch_bad_requests_and_escapes() {
    let env = Env::start(Setup::default());
    std::fs::write(env.root.join("file"), b"").unwrap();
    std::fs::create_dir(env.root.join("d")).unwrap();
    symlink(&env.outside, env.root.join("out")).unwrap();
    symlink("d", env.root.join("ind")).unwrap();
    let post = |b: Value| env.post("/fs/watch", &b);
    assert!(post(json!({"path": "/file"})).expect_error(400)["detail"]
        .as_str()
        .unwrap()
        .contains("not a directory"));
    post(json!({"path": "/nope"})).expect_error(404);
    post(json!({"path": "/../etc"})).expect_error(403);
    assert!(post(json!({"path": "/out"})).expect_error(403)["detail"]
        .as_str()
        .unwrap()
        .contains("escapes the root"));
    post(json!({"path": "/d", "recursive": "yes"})).expect_error(400);
    post(json!({"path": "/d", "bogus": 1})).expect_error(400);
    post(json!({})).expect_error(400);
    env.get("/fs/watch/w-999/events").expect_error(404);
    // A symlink to a directory inside the root is followed (beneath it).
    let id = start_watch(&env, "/ind", false);
    let s = env.sse(&format!("/fs/watch/{id}/events"));
    // One stream per watch at a time.
    env.get(&format!("/fs/watch/{id}/events")).expect_error(409);
    std::fs::write(env.root.join("d/x"), b"").unwrap();
    wait_for_event(&s, "create", "/ind/x");
    // A client that leaves can come back and carry on (queueing before
    // the first GET is tested above).
    drop(s);
    let s = wait_for("the stream to be free again", TIMEOUT, || {
        let s = env.sse(&format!("/fs/watch/{id}/events"));
        (s.status == 200).then_some(s)
    });
    std::fs::write(env.root.join("d/y"), b"").unwrap();
    wait_for_event(&s, "create", "/ind/y");
}

#[test]
fn fs_watch_bounds_per_client_and_in_total() {
    let env = Env::start(Setup {
        api_args: argv_vec(&["--max-fs-watches-per-client", "2", "--max-fs-watches", "10"]),
        ..Setup::default()
    });
    for d in ["a", "b", "c"] {
        std::fs::create_dir(env.root.join(d)).unwrap();
    }
    let a = start_watch(&env, "/a", false);
    start_watch(&env, "/b", false);
    let e = env
        .post("/fs/watch", &json!({"path": "/c"}))
        .expect_error(429);
    assert!(e["detail"].as_str().unwrap().contains("per client"), "{e}");
    // Stopping one frees its slot.
    env.call("DELETE", &format!("/fs/watch/{a}"), &[], b"")
        .expect(200);
    start_watch(&env, "/c", false);
    // So does a watch whose directory went away.
    std::fs::remove_dir(env.root.join("c")).unwrap();
    wait_until("an ended watch's slot to be free", TIMEOUT, || {
        env.post("/fs/watch", &json!({"path": "/a"})).status == 201
    });
    drop(env);

    let env = Env::start(Setup {
        api_args: argv_vec(&["--max-fs-watches-per-client", "5", "--max-fs-watches", "2"]),
        ..Setup::default()
    });
    std::fs::create_dir(env.root.join("a")).unwrap();
    start_watch(&env, "/a", false);
    start_watch(&env, "/a", true);
    let e = env
        .post("/fs/watch", &json!({"path": "/a"}))
        .expect_error(429);
    assert!(e["detail"].as_str().unwrap().contains("altogether"), "{e}");
}

fn argv_vec(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn fs_delete_directory_cases_and_escapes() {
    let env = Env::start(Setup::default());
    let r = &env.root;
    std::fs::create_dir_all(r.join("full/inner")).unwrap();
    std::fs::write(r.join("full/inner/f"), b"x").unwrap();
    // Links inside a deleted tree are removed, never followed.
    symlink(&env.outside, r.join("full/to_outside")).unwrap();
    std::fs::create_dir(r.join("empty")).unwrap();
    std::fs::write(r.join("file"), b"").unwrap();
    symlink(&env.outside, r.join("link_out")).unwrap();
    symlink("full", r.join("link_in")).unwrap();
    let before_outside = snapshot(&env.outside);
    let del = |b: Value| env.put("/fs/delete_directory", &b);

    del(json!({"path": "/empty"})).expect(200);
    assert!(!r.join("empty").exists());
    let e = del(json!({"path": "/full"})).expect_error(409);
    assert!(e["detail"].as_str().unwrap().contains("recursive"), "{e}");
    assert!(r.join("full/inner/f").exists(), "nothing deleted on 409");
    del(json!({"path": "/link_out", "recursive": true})).expect_error(400);
    del(json!({"path": "/link_in", "recursive": true})).expect_error(400);
    assert!(r.join("full/inner/f").exists(), "a symlink is not followed");
    del(json!({"path": "/link_out/secret"})).expect_error(403);
    del(json!({"path": "/../outside", "recursive": true})).expect_error(403);
    del(json!({"path": "/", "recursive": true})).expect_error(403);
    del(json!({"path": "/file"})).expect_error(400);
    del(json!({"path": "/missing"})).expect_error(404);
    del(json!({"path": "/full", "recursive": 1})).expect_error(400);
    del(json!({"path": "/full", "extra": true})).expect_error(400);
    let v = del(json!({"path": "/full", "recursive": true}))
        .expect(200)
        .json();
    assert_eq!(v, json!({"path": "/full", "deleted": true}));
    assert!(!r.join("full").exists());
    assert_eq!(snapshot(&env.outside), before_outside, "outside untouched");
    assert!(r.join("link_out").is_symlink() && r.exists());
}

#[test]
fn fs_set_file_permissions() {
    let env = Env::start(Setup::default());
    let r = &env.root;
    std::fs::write(r.join("f"), b"").unwrap();
    symlink(&env.outside, r.join("out")).unwrap();
    let set = |b: Value| env.put("/fs/set_file_permissions", &b);

    let v = set(json!({"path": "/f", "mode": "0640"}))
        .expect(200)
        .json();
    assert_eq!(v["mode"], "0640");
    let md = std::fs::metadata(r.join("f")).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o640);

    let v = set(json!({"path": "/f", "owner": "nobody", "group": 0, "mode": 384}))
        .expect(200)
        .json();
    let md = std::fs::metadata(r.join("f")).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.permissions().mode() & 0o777),
        (65534, 0, 0o600)
    );
    assert_eq!(
        (v["uid"].as_u64(), v["gid"].as_u64()),
        (Some(65534), Some(0))
    );
    set(json!({"path": "/f", "owner": "1234"})).expect(200);
    assert_eq!(std::fs::metadata(r.join("f")).unwrap().uid(), 1234);

    // Bad input changes nothing.
    let before = snapshot(r);
    set(json!({"path": "/f"})).expect_error(400);
    set(json!({"path": "/f", "mode": "4755"})).expect_error(400);
    set(json!({"path": "/f", "mode": "rwx"})).expect_error(400);
    set(json!({"path": "/f", "mode": "0600", "owner": "no-such-user-here"})).expect_error(400);
    set(json!({"path": "/f", "group": "no-such-group-here"})).expect_error(400);
    set(json!({"path": "/f", "owner": -1})).expect_error(400);
    set(json!({"path": "/f", "owner": true})).expect_error(400);
    set(json!({"path": "/missing", "mode": "0600"})).expect_error(404);
    set(json!({"path": "/out/secret", "mode": "0777"})).expect_error(403);
    set(json!({"path": "/../outside/secret", "mode": "0777"})).expect_error(403);
    set(json!({"path": "/f", "mode": "0600", "x": 1})).expect_error(400);
    assert_eq!(snapshot(r), before);
    assert_ne!(
        std::fs::metadata(env.outside.join("secret"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o777
    );
}

#[test]
fn fs_watch_and_friends_need_the_token() {
    // The issue-15 endpoints sit behind the same policy as the rest (kept
    // here rather than in tests/auth.rs's list, next to their other tests).
    let env = Env::start(Setup::default());
    std::fs::create_dir(env.root.join("d")).unwrap();
    let before = snapshot(&env.root);
    let body = br#"{"path":"/d","recursive":true,"mode":"0777","owner":0}"#;
    for (method, path, body) in [
        ("POST", "/fs/watch", &br#"{"path":"/d"}"#[..]),
        ("GET", "/fs/watch/w-1-0/events", b""),
        ("DELETE", "/fs/watch/w-1-0", b""),
        (
            "PUT",
            "/fs/delete_directory",
            &br#"{"path":"/d","recursive":true}"#[..],
        ),
        ("PUT", "/fs/set_file_permissions", &body[..]),
        (
            "POST",
            "/process/p-1-1/resize",
            &br#"{"rows":1,"cols":1}"#[..],
        ),
    ] {
        for auth in [None, Some("Bearer wrong")] {
            let mut h = vec![("Content-Type", "application/json")];
            if let Some(a) = auth {
                h.push(("Authorization", a));
            }
            let r = request(env.port, method, path, &h, body);
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {}", r.text());
        }
    }
    assert_eq!(snapshot(&env.root), before, "nothing changed");
}

#[test]
fn fs_watch_in_one_request() {
    // GET /fs/watch?path=…: start and stream at once; hanging up stops it.
    let env = Env::start(Setup {
        api_args: vec!["--max-fs-watches-per-client".into(), "1".into()],
        ..Setup::default()
    });
    std::fs::create_dir(env.root.join("d")).unwrap();
    let s = env.sse("/fs/watch?path=/d&recursive=true");
    assert_eq!(s.status, 200);
    let id = s.header("x-watch-id").expect("X-Watch-Id").to_string();
    std::fs::create_dir(env.root.join("d/sub")).unwrap();
    std::fs::write(env.root.join("d/sub/f"), b"x").unwrap();
    wait_for_event(&s, "create", "/d/sub/f");
    // It counts against the bounds like any watch.
    env.post("/fs/watch", &json!({"path": "/d"}))
        .expect_error(429);
    env.get(&format!("/fs/watch/{id}/events")).expect_error(409);
    drop(s);
    // The client hung up: the watch is gone and its slot free.
    wait_until("the watch to stop with its stream", TIMEOUT, || {
        env.call("DELETE", &format!("/fs/watch/{id}"), &[], b"")
            .status
            == 404
    });
    let e = env.get("/fs/watch?path=/nope").expect_error(404);
    assert!(e["detail"].as_str().unwrap().contains("/nope"), "{e}");
    env.get("/fs/watch?path=/d&recursive=maybe")
        .expect_error(400);
    env.get("/fs/watch").expect_error(400);
    start_watch(&env, "/d", false);
}
