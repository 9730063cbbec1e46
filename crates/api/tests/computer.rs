//! `/computer/*` and `/display` against a real Xvfb and a real Chromium
//! under corral, driven the way a computer-use agent does: find things in a
//! screenshot by colour, click and type at screen pixels. What the page saw
//! is read back from its title over DevTools' `/json/list` (the page writes
//! its click, input value and size there).

mod common;
#[path = "computer/desktop.rs"]
mod desktop;

use std::time::Duration;

use common::*;
use desktop::{start, start_with, BLUE, GREEN, RED};
use serde_json::{json, Value};

#[test]
fn computer_clicks_types_and_sees_a_real_page() {
    let b = start("1280x720", &[]);
    let env = &b.env;

    // The screenshot: the whole screen, the page's colours where they are.
    let shot = b.screenshot("");
    assert_eq!((shot.w, shot.h), (1280, 720));
    let (x0, y0, x1, y1) = shot.find(RED).expect("the red button on screen");
    // 160x80 CSS pixels at device scale 1: as many screen pixels.
    assert_eq!((x1 - x0 + 1, y1 - y0 + 1), (160, 80));
    // The page starts 100 CSS px left of the button: below Chromium's top
    // chrome, at the window's left edge (0).
    assert_eq!(x0, 100);
    assert_eq!(shot.at(x0 - 50, y0 + 10), BLUE);
    // A region and a scale.
    let part = b.screenshot(&format!("?x={x0}&y={y0}&width=160&height=80"));
    assert_eq!((part.w, part.h), (160, 80));
    assert!(
        part.rgb.chunks(3).all(|p| p == RED),
        "the region is the button"
    );
    let half = b.screenshot("?scale=0.5");
    assert_eq!((half.w, half.h), (640, 360));
    assert_eq!(half.at(x0 / 2 + 40, y0 / 2 + 20), RED);
    let both = b.screenshot(&format!("?x={x0}&y={y0}&width=160&height=80&scale=0.25"));
    assert_eq!((both.w, both.h), (40, 20));

    // A click at the button's centre reaches the page's click handler.
    let (bx, by) = shot.centre_of(RED);
    env.post("/computer/click_mouse", &json!({ "x": bx, "y": by }))
        .expect(200);
    b.wait_title("clicked 1");
    let c = env.get("/computer/cursor").expect(200).json();
    assert_eq!((c["x"].as_i64(), c["y"].as_i64()), (Some(bx), Some(by)));
    // Two more: num_clicks.
    env.post(
        "/computer/click_mouse",
        &json!({ "x": bx, "y": by, "num_clicks": 2 }),
    )
    .expect(200);
    b.wait_title("clicked 3");

    // Focus the input by clicking it, type Unicode text: the value is it.
    let (ix, iy) = shot.centre_of(GREEN);
    env.post("/computer/click_mouse", &json!({ "x": ix, "y": iy }))
        .expect(200);
    let text = "Hé! ünïcødé € ß 日本 ok";
    env.post("/computer/type", &json!({ "text": text }))
        .expect(200);
    b.wait_title(&format!("value:{text}"));
    // The same characters again: their keycodes are mapped already.
    env.post("/computer/type", &json!({ "text": "€日" }))
        .expect(200);
    b.wait_title(&format!("value:{text}€日"));

    // More distinct characters in one request than there are spare
    // keycodes (about 15 on Xvfb): the keycodes are reused, and every
    // character still arrives as itself, in order.
    env.post(
        "/computer/press_key",
        &json!({ "keys": ["ctrl+a", "Delete"] }),
    )
    .expect(200);
    b.wait_title("value:");
    let many: String = (0x4e00u32..0x4e00 + 40)
        .map(|c| char::from_u32(c).unwrap())
        .collect();
    env.post("/computer/type", &json!({ "text": many }))
        .expect(200);
    b.wait_title(&format!("value:{many}"));

    // Ctrl+A then Delete clears it.
    env.post(
        "/computer/press_key",
        &json!({ "keys": ["ctrl+a", "Delete"] }),
    )
    .expect(200);
    b.wait_title("value:");
    // Shifted characters and a held modifier.
    env.post("/computer/type", &json!({ "text": "AbC" }))
        .expect(200);
    b.wait_title("value:AbC");
    env.post(
        "/computer/press_key",
        &json!({ "keys": ["a"], "hold_keys": ["ctrl"] }),
    )
    .expect(200);
    env.post("/computer/press_key", &json!({ "keys": ["BackSpace"] }))
        .expect(200);
    b.wait_title("value:");

    // move_mouse, drag_mouse, scroll: delivered (the pointer ends there).
    env.post("/computer/move_mouse", &json!({ "x": 10, "y": 700 }))
        .expect(200);
    let c = env.get("/computer/cursor").expect(200).json();
    assert_eq!((c["x"].as_i64(), c["y"].as_i64()), (Some(10), Some(700)));
    env.post(
        "/computer/drag_mouse",
        &json!({ "path": [[20, 600], [200, 650], [300, 690]] }),
    )
    .expect(200);
    let c = env.get("/computer/cursor").expect(200).json();
    assert_eq!((c["x"].as_i64(), c["y"].as_i64()), (Some(300), Some(690)));
    env.post(
        "/computer/scroll",
        &json!({ "x": 640, "y": 400, "delta_y": 3, "delta_x": -1 }),
    )
    .expect(200);

    // While a human holds the live view, every input endpoint answers 409
    // naming them and nothing reaches the page; screenshots and the cursor
    // still answer. Released, input works again.
    let lease = env
        .post(
            "/live/takeover",
            &json!({ "holder": "alice@example.com", "duration_s": 60 }),
        )
        .expect(200)
        .json();
    for (path, body) in [
        ("/computer/click_mouse", json!({ "x": bx, "y": by })),
        ("/computer/move_mouse", json!({ "x": 5, "y": 5 })),
        ("/computer/drag_mouse", json!({ "path": [[5, 5], [6, 6]] })),
        ("/computer/scroll", json!({ "x": 5, "y": 5, "delta_y": 1 })),
        ("/computer/type", json!({ "text": "x" })),
        ("/computer/press_key", json!({ "keys": ["a"] })),
    ] {
        let v = env.post(path, &body).expect_error(409);
        assert_eq!(v["error"], "human in control", "{path}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains("alice@example.com"),
            "{path}: {v}"
        );
    }
    // The pointer is still where the scroll above left it: no move got through.
    let c = env.get("/computer/cursor").expect(200).json();
    assert_eq!((c["x"].as_i64(), c["y"].as_i64()), (Some(640), Some(400)));
    b.screenshot("");
    env.post("/live/release", &json!({ "lease_id": lease["lease_id"] }))
        .expect(200);
    env.post("/computer/click_mouse", &json!({ "x": bx, "y": by }))
        .expect(200);
    b.wait_title("clicked 4");
}

#[test]
fn display_resizes_at_run_time_and_the_page_follows() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state/display.json");
    let b = start_with(
        "1920x1080",
        &["--display-state", state.to_str().unwrap()],
        Some(&state),
    );
    // Nothing kept yet: Xvfb's readiness check set the default size.
    let env = &b.env;
    let d = env.get("/display").expect(200).json();
    assert_eq!(
        (
            d["width"].as_u64(),
            d["height"].as_u64(),
            d["max_width"].as_u64()
        ),
        (Some(1280), Some(720), Some(1920))
    );
    let pid = |name: &str| {
        let l = env.get("/programs").expect(200).json();
        l["programs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["pid"]
            .as_i64()
            .unwrap()
    };
    let (xvfb, chromium) = (pid("xvfb"), pid("chromium"));

    let v = env
        .json(
            "PATCH",
            "/display",
            &json!({ "width": 1024, "height": 640 }),
        )
        .expect(200)
        .json();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1024), Some(640))
    );
    let shot = b.screenshot("");
    assert_eq!((shot.w, shot.h), (1024, 640));
    // The window was refitted: the page is as wide as the screen.
    wait_until("the page's innerWidth follows", TIMEOUT, || {
        b.title()
            .is_some_and(|t| t.starts_with("size:1024x") && t != "size:1024x0")
    });
    // Kept on the volume, written whole.
    let kept: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(kept, json!({ "width": 1024, "height": 640 }));
    // Nothing restarted: same Xvfb, same Chromium (tabs, CDP clients, profile).
    assert_eq!((pid("xvfb"), pid("chromium")), (xvfb, chromium));

    // A restart of Xvfb (and of Chromium, bound to it), as after a crash
    // or a new container: the kept size comes back before Chromium starts,
    // and the new Chromium's window fills it.
    env.post("/programs/xvfb/restart", &Value::Null).expect(200);
    let d = env.get("/display").expect(200).json();
    assert_eq!(
        (d["width"].as_u64(), d["height"].as_u64()),
        (Some(1024), Some(640))
    );
    wait_until(
        "the new Chromium's page filling 1024x640",
        Duration::from_secs(90),
        || {
            let s = b.screenshot("");
            (s.w, s.h) == (1024, 640) && s.find(RED).is_some() && s.at(1015, 630) == BLUE
        },
    );

    // Larger again (up to Xvfb's start size).
    env.json(
        "PATCH",
        "/display",
        &json!({ "width": 1600, "height": 900 }),
    )
    .expect(200);
    let shot = b.screenshot("");
    assert_eq!((shot.w, shot.h), (1600, 900));
    wait_until("innerWidth 1600", TIMEOUT, || {
        b.title().is_some_and(|t| t.starts_with("size:1600x"))
    });
    // Chromium repaints: the page fills the larger screen, to its corner.
    wait_until("the page painted at 1600x900", TIMEOUT, || {
        let s = b.screenshot("");
        s.find(RED).is_some() && s.at(1590, 890) == BLUE
    });

    // Too large, too small, malformed: 400, nothing changed.
    for bad in [
        json!({ "width": 1921, "height": 900 }),
        json!({ "width": 100, "height": 900 }),
        json!({ "width": 1600 }),
        json!({ "width": "wide", "height": 900 }),
        json!({ "width": 1600, "height": 900, "depth": 24 }),
    ] {
        let e = env.json("PATCH", "/display", &bad).expect_error(400);
        assert!(!e["detail"].as_str().unwrap().is_empty(), "{e}");
    }
    let d = env.get("/display").expect(200).json();
    assert_eq!(
        (d["width"].as_u64(), d["height"].as_u64()),
        (Some(1600), Some(900))
    );

    // A new start of Xvfb comes up at its start size; --apply-display (the
    // image's Xvfb readiness check) brings the kept size back.
    let out = std::process::Command::new(api_bin())
        .args(["--apply-display", "--display"])
        .arg(format!(":{}", display_of(env)))
        .arg("--display-state")
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.json(
        "PATCH",
        "/display",
        &json!({ "width": 1920, "height": 1080 }),
    )
    .expect(200);
    let out = std::process::Command::new(api_bin())
        .args(["--apply-display", "--display"])
        .arg(format!(":{}", display_of(env)))
        .args(["--default-size", "800x600"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = env.get("/display").expect(200).json();
    assert_eq!(
        (d["width"].as_u64(), d["height"].as_u64()),
        (Some(800), Some(600))
    );
    wait_until("innerWidth 800", TIMEOUT, || {
        b.title().is_some_and(|t| t.starts_with("size:800x"))
    });
}

/// The display number corral-api was given.
fn display_of(env: &Env) -> String {
    let config = std::fs::read_to_string(env.path("supervisor.toml")).unwrap();
    let at = config
        .find("\"--display\", \":")
        .expect("--display in the config")
        + 15;
    config[at..].split('"').next().unwrap().to_string()
}

#[test]
fn computer_refuses_bad_input() {
    let display = free_display();
    let programs = format!(
        "[programs.xvfb]\ncommand = {x}\nready = {{ x11 = \":{display}\", timeout = \"30s\" }}\n",
        x = argv(&[
            "Xvfb",
            &format!(":{display}"),
            "-screen",
            "0",
            "640x480x24",
            "-nolisten",
            "tcp"
        ]),
    );
    let env = Env::start(Setup {
        programs,
        api_args: vec!["--display".into(), format!(":{display}")],
        ..Setup::default()
    });
    wait_until("the X display", TIMEOUT, || {
        env.get("/computer/cursor").status == 200
    });
    let bad: &[(&str, Value, &str)] = &[
        (
            "click_mouse",
            json!({ "x": 640, "y": 10 }),
            "outside the screen",
        ),
        (
            "click_mouse",
            json!({ "x": -1, "y": 10 }),
            "outside the screen",
        ),
        ("click_mouse", json!({ "x": 10 }), "both x and y"),
        (
            "click_mouse",
            json!({ "x": 1, "y": 1, "button": "fourth" }),
            "unknown button",
        ),
        (
            "click_mouse",
            json!({ "x": 1, "y": 1, "click_type": "hold" }),
            "click_type",
        ),
        (
            "click_mouse",
            json!({ "x": 1, "y": 1, "num_clicks": 0 }),
            "num_clicks",
        ),
        (
            "click_mouse",
            json!({ "x": 1, "y": 1, "hold_keys": ["hyper"] }),
            "hold_keys",
        ),
        (
            "click_mouse",
            json!({ "x": 1, "y": 1, "extra": 1 }),
            "unknown field",
        ),
        (
            "move_mouse",
            json!({ "x": 1, "y": 480 }),
            "outside the screen",
        ),
        (
            "move_mouse",
            json!({ "x": "1", "y": 1 }),
            "invalid JSON body",
        ),
        ("drag_mouse", json!({ "path": [[1, 1]] }), "2 to"),
        (
            "drag_mouse",
            json!({ "path": [[1, 1], [700, 1]] }),
            "outside the screen",
        ),
        (
            "scroll",
            json!({ "x": 1, "y": 1, "delta_y": 1000 }),
            "wheel notches",
        ),
        ("type", json!({ "text": "a\u{7}b" }), "control character"),
        ("type", json!({ "text": "x".repeat(10_001) }), "at most"),
        (
            "type",
            json!({ "text": "ok", "delay_ms": 10_000 }),
            "delay_ms",
        ),
        ("press_key", json!({ "keys": [] }), "1 to"),
        (
            "press_key",
            json!({ "keys": ["ctrl+nope"] }),
            "unknown key \"nope\"",
        ),
        ("press_key", json!({ "keys": ["ctrl+"] }), "unknown key"),
        (
            "press_key",
            json!({ "keys": ["a"], "duration_ms": 60_000 }),
            "duration_ms",
        ),
    ];
    for (ep, body, want) in bad {
        let e = env.post(&format!("/computer/{ep}"), body).expect_error(400);
        let detail = e["detail"].as_str().unwrap();
        assert!(detail.contains(want), "{ep} {body}: {detail}");
    }
    // Nothing moved the pointer on the way.
    let c = env.get("/computer/cursor").expect(200).json();
    assert_eq!(c, json!({ "x": 320, "y": 240 }));
    for q in [
        "?x=600&width=100",
        "?width=0",
        "?x=-1",
        "?x=abc",
        "?scale=0",
        "?scale=1.5",
        "?scale=nan",
    ] {
        let e = env
            .get(&format!("/computer/screenshot{q}"))
            .expect_error(400);
        assert!(!e["detail"].as_str().unwrap().is_empty());
    }
    env.get("/computer/click_mouse").expect_error(405);

    // --fit-windows' watcher (blocked on X events) does not hold up a stop.
    let port = free_port();
    let mut api = std::process::Command::new(api_bin())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--fit-windows"])
        .args([
            "--display",
            &format!(":{display}"),
            "--socket",
            "/nonexistent.sock",
        ])
        .env_remove("CORRAL_API_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the second corral-api", TIMEOUT, || {
        try_request(port, "GET", "/healthz", &[], b"").is_ok_and(|r| r.status == 200)
    });
    // SAFETY: plain kill(2) of our child.
    unsafe { libc::kill(api.id() as i32, libc::SIGTERM) };
    let stopped = std::time::Instant::now();
    let status = wait_for(
        "corral-api to exit on SIGTERM",
        Duration::from_secs(5),
        || api.try_wait().unwrap(),
    );
    assert!(status.success(), "{status}");
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopped.elapsed()
    );
    // Without the token: refused like every other endpoint.
    let r = request(env.port, "GET", "/computer/screenshot", &[], b"");
    assert_eq!(r.status, 401, "{}", r.text());
}

#[test]
fn computer_without_an_x_server_is_503() {
    let display = free_display();
    let env = Env::start(Setup {
        api_args: vec!["--display".into(), format!(":{display}")],
        ..Setup::default()
    });
    let e = env.get("/computer/screenshot").expect_error(503);
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains(&format!(":{display}")),
        "{e}"
    );
    env.post("/computer/click_mouse", &json!({ "x": 1, "y": 1 }))
        .expect_error(503);
    env.get("/display").expect_error(503);
}
