//! The desktop the `/computer/*` and `/display` tests drive: corral with
//! Xvfb, a real Chromium showing a page of known colours, and corral-api on
//! that display; and screenshots decoded to find those colours.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// The test page: a red button and a green input on a blue page. Each
/// handler writes what it saw to the title.
pub const PAGE: &str = r#"<!doctype html><html><head><title>ready</title><style>
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
pub struct Browser {
    pub env: Env,
    pub cdp: u16,
    _profile: tempfile::TempDir,
}

pub fn start(max: &str, extra_api: &[&str]) -> Browser {
    start_with(max, extra_api, None)
}

/// As [`start`]; with `kept`, Xvfb's readiness check is the image's:
/// `corral-api --apply-display` with that state file.
pub fn start_with(max: &str, extra_api: &[&str], kept: Option<&std::path::Path>) -> Browser {
    let cdp = free_port();
    let display = free_display();
    let profile = tempfile::tempdir().unwrap();
    let page = profile.path().join("page.html");
    std::fs::write(&page, PAGE).unwrap();
    let own = [
        format!("--remote-debugging-port={cdp}"),
        format!("--user-data-dir={}", profile.path().join("p").display()),
        format!("file://{}", page.display()),
    ];
    let mut chromium = CHROMIUM.to_vec();
    // Screen pixels are CSS pixels, and the window starts where X starts.
    chromium.extend([
        "--force-device-scale-factor=1",
        "--window-position=0,0",
        "--window-size=1280,720",
    ]);
    chromium.extend(own.iter().map(String::as_str));
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
    pub fn title(&self) -> Option<String> {
        let r = try_request(self.cdp, "GET", "/json/list", &[], b"").ok()?;
        let list: Value = serde_json::from_slice(&r.body).ok()?;
        list.as_array()?
            .iter()
            .find(|t| {
                t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with("file:"))
            })
            .and_then(|t| t["title"].as_str().map(String::from))
    }

    pub fn wait_title(&self, want: &str) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        let mut last = self.title();
        while last.as_deref() != Some(want) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            last = self.title();
        }
        assert_eq!(last.as_deref(), Some(want), "the page's title");
    }

    pub fn screenshot(&self, query: &str) -> Image {
        let r = self
            .env
            .get(&format!("/computer/screenshot{query}"))
            .expect(200);
        assert_eq!(r.header("content-type"), Some("image/png"));
        Image::decode(&r.body)
    }
}

/// A decoded RGB screenshot.
pub struct Image {
    pub w: usize,
    pub h: usize,
    pub rgb: Vec<u8>,
}

impl Image {
    pub fn decode(png_bytes: &[u8]) -> Image {
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

    pub fn at(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.w + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// The bounding box (x0, y0, x1, y1) of the pixels of this colour.
    pub fn find(&self, c: [u8; 3]) -> Option<(usize, usize, usize, usize)> {
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

    pub fn centre_of(&self, c: [u8; 3]) -> (i64, i64) {
        let (x0, y0, x1, y1) = self.find(c).unwrap_or_else(|| panic!("no {c:?} on screen"));
        (((x0 + x1) / 2) as i64, ((y0 + y1) / 2) as i64)
    }
}

pub const RED: [u8; 3] = [255, 0, 0];
pub const GREEN: [u8; 3] = [0, 255, 0];
pub const BLUE: [u8; 3] = [0, 0, 255];
