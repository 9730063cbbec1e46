//! `GET /display` and `PATCH /display {width, height}`: the X screen's size,
//! changed at run time with RandR on the running Xvfb (no restart: Chromium,
//! its tabs, CDP clients and the profile are untouched), Chromium's windows
//! refitted to it, and the size kept on the volume (`--display-state`,
//! written atomically) so that every later start of the stack comes up at
//! it: [`apply_saved`] runs as Xvfb's readiness check, [`keep_windows_fitted`]
//! refits every browser window that appears.
//!
//! Xvfb's RandR can make the screen smaller than, or as large as, the
//! framebuffer it was started with (`-screen 0 WxHx24`), never larger: the
//! image starts Xvfb at the largest size allowed (SCREEN_MAX_*) and sets the
//! wanted size before anything else starts.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::computer::x::{Conn, XError};
use crate::computer::Screen;
use crate::http::{body_json, ok, ApiError, Req, Resp};
use crate::AppState;

/// The smallest screen accepted (pages below this are unusable anyway).
pub const MIN_SIZE: u16 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub width: u16,
    pub height: u16,
}

/// Where the size is kept, when it is kept.
#[derive(Debug, Clone, Default)]
pub struct Saved {
    pub path: Option<PathBuf>,
}

impl Saved {
    pub fn load(&self) -> Option<Size> {
        let text = std::fs::read(self.path.as_ref()?).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Written to a temporary file, synced, renamed over: a SIGKILL leaves
    /// the old size or the new one, never half a file.
    pub fn store(&self, size: Size) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut body = serde_json::to_vec(&size)?;
        body.push(b'\n');
        crate::kept::write(path, &body, 0o600)
    }
}

/// Whether a recording is running, and its id: a resize then answers 409
/// (ffmpeg's x11grab keeps the size it started with; kernel-images answers
/// the same way).
pub async fn recording_in_progress(state: &AppState) -> Option<String> {
    crate::recording::active(state).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    width: i64,
    height: i64,
}

fn describe(c: &Conn) -> Result<serde_json::Value, XError> {
    let (w, h) = c.size()?;
    let (mw, mh) = c.max_size()?;
    Ok(serde_json::json!({
        "width": w, "height": h, "max_width": mw, "max_height": mh,
    }))
}

/// `GET /display`: `{width, height, max_width, max_height}`.
pub async fn get(state: &AppState) -> Result<Resp, ApiError> {
    let v = state.screen.with(|c| Ok(Ok(describe(c)?))).await?;
    ok(&v)
}

/// `PATCH /display {width, height}`.
pub async fn patch(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    let b: Patch = body_json(req).await?;
    if let Some(id) = recording_in_progress(state).await {
        return Err(ApiError::new(
            hyper::StatusCode::CONFLICT,
            "recording in progress",
            format!("recording {id} is capturing the display; stop it before resizing"),
        ));
    }
    let saved = state.display_state.clone();
    let v = state
        .screen
        .with(move |c| {
            let (mw, mh) = c.max_size()?;
            let fits = |v: i64, max: u16| (MIN_SIZE as i64..=max as i64).contains(&v);
            if !fits(b.width, mw) || !fits(b.height, mh) {
                return Ok(Err(ApiError::bad_request(format!(
                    "{}x{} is not a size this display can take: width {MIN_SIZE}..={mw}, height {MIN_SIZE}..={mh} (the maximum is Xvfb's start size, SCREEN_MAX_WIDTH x SCREEN_MAX_HEIGHT)",
                    b.width, b.height
                ))));
            }
            let size = Size {
                width: b.width as u16,
                height: b.height as u16,
            };
            c.resize(size.width, size.height)?;
            fit_windows(c, size)?;
            if let Err(e) = saved.store(size) {
                // The screen has the size; only the next start would not.
                return Ok(Err(ApiError::internal(format!(
                    "the display is {}x{} but keeping the size failed: {e}",
                    size.width, size.height
                ))));
            }
            Ok(Ok(describe(c)?))
        })
        .await?;
    ok(&v)
}

/// Every browser window to 0,0 and the screen's size.
fn fit_windows(c: &Conn, size: Size) -> Result<(), XError> {
    for w in c.top_levels()? {
        c.fill(w, size.width, size.height)?;
    }
    c.sync()
}

/// `corral-api --apply-display`: sets the kept size (or `default`) on the
/// display and exits; Xvfb's readiness check, so that nothing drawing on the
/// screen starts before it has its size. Fails while X does not answer.
/// Xvfb must run with `-noreset`: else its last client leaving (this one,
/// at that point) resets the server to its start size.
pub fn apply_saved(display: &str, saved: &Saved, default: Option<Size>) -> Result<(), String> {
    let c = Conn::open(display).map_err(|e| e.to_string())?;
    let Some(want) = saved.load().or(default) else {
        return Ok(());
    };
    let (mw, mh) = c.max_size().map_err(|e| e.to_string())?;
    // A kept size larger than this server can take (SCREEN_MAX_* lowered
    // since): as large as it can.
    let want = Size {
        width: want.width.clamp(MIN_SIZE.min(mw), mw),
        height: want.height.clamp(MIN_SIZE.min(mh), mh),
    };
    if c.size().map_err(|e| e.to_string())? != (want.width, want.height) {
        c.resize(want.width, want.height)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Keeps every browser window filling the screen: a window manager's one
/// job, there being none. Waits on the X server's events (a new window
/// mapped, the screen resized) over its own connection, and connects again
/// when the server goes away (Xvfb restarted). A thread of its own, not
/// tokio's blocking pool: the runtime's shutdown would wait for it forever.
pub fn keep_windows_fitted(screen: &Screen) {
    let name = screen.display.clone();
    let spawned = std::thread::Builder::new()
        .name("fit-windows".into())
        .spawn(move || loop {
            if let Err(e) = watch(&name) {
                tracing::debug!(display = %name, error = %e, "window fitting: X connection lost");
            }
            // Xvfb is being (re)started: try again shortly.
            std::thread::sleep(std::time::Duration::from_millis(250));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the window-fitting thread");
    }
}

fn watch(display: &str) -> Result<(), XError> {
    let c = Conn::open(display)?;
    c.watch_root()?;
    let fit_all = |c: &Conn| -> Result<(), XError> {
        let (w, h) = c.size()?;
        fit_windows(
            c,
            Size {
                width: w,
                height: h,
            },
        )
    };
    fit_all(&c)?;
    loop {
        c.wait_for_change()?;
        fit_all(&c)?;
    }
}
