//! `/computer/*` and `/display` against a real Xvfb and a real Chromium
//! under corral, driven the way a computer-use agent does: find things in a
//! screenshot by colour, click and type at screen pixels. What the page saw
//! is read back from its title over DevTools' `/json/list` (the page writes
//! its click, input value and size there).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The test page: a red button and a green input on a blue page. Each
/// handler writes what it saw to the title.
const PAGE: &str = r#"<!doctype html><html><head><title>ready</title><style>
body { margin: 0; background: rgb(0, 0, 255); }
#b { position: absolute; left: 100px; top: 100px; width: 160px; height: 80px;
     background: rgb(255, 0, 0); border: 0; }
#i { position: absolute; left: 400px; top: 100px; width: 300px; height: 40px;
     background: rgb(0, 255, 0); border: 0; font-size: 20px; color: rgb(0, 255, 0);
     outline: none; caret-color: transparent; }
</style></head><body><button id="b"></button><input id="i">
<script>
let clicks = 0;
b.addEventListener("click", () => { clicks++; document.title = "clicked " + clicks; });
i.addEventListener("input", () => { document.title = "value:" + i.value; });
addEventListener("resize", () => { document.title = "size:" + innerWidth + "x" + innerHeight; });
</script></body></html>"#;

/// corral with Xvfb (start size `max`), Chromium showing the test page and
/// corral-api on that display (fitting Chromium's windows, keeping the
/// size in `state`).
struct Browser {
    env: Env,
    cdp: u16,
    _profile: tempfile::TempDir,
}

fn start(max: &str, extra_api: &[&str]) -> Browser {
    start_with(max, extra_api, None)
}

/// As [`start`]; with `kept`, Xvfb's readiness check is the image's:
/// `corral-api --apply-display` with that state file.
fn start_with(max: &str, extra_api: &[&str], kept: Option<&std::path::Path>) -> Browser {
    let cdp = free_port();
    let display = free_display();
    let profile = tempfile::tempdir().unwrap();
    let page = profile.path().join("page.html");
    std::fs::write(&page, PAGE).unwrap();
    let chromium = [
        "chromium",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--password-store=basic",
        "--force-device-scale-factor=1",
        "--window-position=0,0",
        "--window-size=1280,720",
        &format!("--remote-debugging-port={cdp}"),
        &format!("--user-data-dir={}", profile.path().join("p").display()),
        &format!("file://{}", page.display()),
    ];
    let ready = match kept {
        None => format!("{{ x11 = \":{display}\", timeout = \"30s\" }}"),
        Some(state) => format!(
            "{{ exec = {}, timeout = \"30s\" }}",
            argv(&[
                api_bin(),
                "--apply-display",
                "--display",
                &format!(":{display}"),
                "--display-state",
                &state.to_string_lossy(),
                "--default-size",
                "1280x720",
            ])
        ),
    };
    let programs = format!(
        "[programs.xvfb]\ncommand = {x}\nready = {ready}\n\n\
         [programs.chromium]\ncommand = {c}\nenv = {{ DISPLAY = \":{display}\" }}\nbinds_to = [\"xvfb\"]\n\
         ready = {{ tcp = \"127.0.0.1:{cdp}\", timeout = \"60s\" }}\nstop_signal = \"TERM\"\nstop_timeout = \"15s\"\n",
        x = argv(&["Xvfb", &format!(":{display}"), "-screen", "0", &format!("{max}x24"), "-nolisten", "tcp", "-noreset"]),
        c = argv(&chromium),
    );
    let mut api_args: Vec<String> = vec![
        "--display".into(),
        format!(":{display}"),
        "--fit-windows".into(),
    ];
    api_args.extend(extra_api.iter().map(|s| s.to_string()));
    let env = Env::start(Setup {
        programs,
        api_args,
        ..Setup::default()
    });
    let b = Browser {
        env,
        cdp,
        _profile: profile,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    // "ready", or already the size of a window fitted to the screen.
    let loaded = |t: &Option<String>| {
        t.as_deref()
            .is_some_and(|t| t == "ready" || t.starts_with("size:"))
    };
    let mut last = b.title();
    while !loaded(&last) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        last = b.title();
    }
    assert!(
        loaded(&last),
        "the page's title is {last:?}, not \"ready\"\n{}",
        b.env.corral.dump()
    );
    // Loaded is not painted: the agent's way, wait until it shows.
    wait_until("the page on screen", TIMEOUT, || {
        b.screenshot("").find(RED).is_some()
    });
    b
}

impl Browser {
    /// The page's title, from DevTools' target list.
    fn title(&self) -> Option<String> {
        let r = try_request(self.cdp, "GET", "/json/list", &[], b"").ok()?;
        let list: Value = serde_json::from_slice(&r.body).ok()?;
        list.as_array()?
            .iter()
            .find(|t| {
                t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with("file:"))
            })
            .and_then(|t| t["title"].as_str().map(String::from))
    }

    fn wait_title(&self, want: &str) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        let mut last = self.title();
        while last.as_deref() != Some(want) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            last = self.title();
        }
        assert_eq!(last.as_deref(), Some(want), "the page's title");
    }

    fn screenshot(&self, query: &str) -> Image {
        let r = self
            .env
            .get(&format!("/computer/screenshot{query}"))
            .expect(200);
        assert_eq!(r.header("content-type"), Some("image/png"));
        Image::decode(&r.body)
    }
}

/// A decoded RGB screenshot.
struct Image {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Image {
    fn decode(png_bytes: &[u8]) -> Image {
        let mut r = png::Decoder::new(std::io::Cursor::new(png_bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        Image {
            w: info.width as usize,
            h: info.height as usize,
            rgb: buf,
        }
    }

    fn at(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.w + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// The bounding box (x0, y0, x1, y1) of the pixels of this colour.
    fn find(&self, c: [u8; 3]) -> Option<(usize, usize, usize, usize)> {
        let mut b: Option<(usize, usize, usize, usize)> = None;
        for y in 0..self.h {
            for x in 0..self.w {
                if self.at(x, y) == c {
                    b = Some(match b {
                        None => (x, y, x, y),
                        Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
                    });
                }
            }
        }
        b
    }

    fn centre_of(&self, c: [u8; 3]) -> (i64, i64) {
        let (x0, y0, x1, y1) = self.find(c).unwrap_or_else(|| panic!("no {c:?} on screen"));
        (((x0 + x1) / 2) as i64, ((y0 + y1) / 2) as i64)
    }
}

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];

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
