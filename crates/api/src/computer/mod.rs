//! `/computer/*`: driving the browser by pixels, as computer-use agents do.
//! Screenshots of the X display (optional region and downscale), mouse and
//! keyboard through XTEST, the pointer position. Coordinates are screen
//! pixels of the X display (docs/agents.md: how they map to CSS pixels).
//!
//! X calls block, so they run on tokio's blocking pool, one at a time over
//! the kept connection of [`Screen`]; an input endpoint answers once the X
//! server has processed its events (a round trip), not once the page has
//! handled them.

mod input;
pub mod keys;
pub mod shot;
pub mod x;

pub use input::{click_mouse, drag_mouse, move_mouse, press_key, scroll, type_text};

use std::sync::{Arc, Mutex};

use hyper::header::{self, HeaderValue};

use crate::http::{full, ok, query, ApiError, Req, Resp};
use crate::AppState;
use x::{Conn, XError};

/// The X display and its kept connection (made on first use, made again
/// after an error: Xvfb may have restarted).
pub struct Screen {
    pub display: String,
    conn: Mutex<Option<Conn>>,
}

impl Screen {
    pub fn new(display: impl Into<String>) -> Arc<Screen> {
        Arc::new(Screen {
            display: display.into(),
            conn: Mutex::new(None),
        })
    }

    /// Runs `f` with the connection on the blocking pool. A connection that
    /// fails is dropped; when it was an old one (the server may have been
    /// restarted since) `f` runs once more on a fresh one.
    pub async fn with<T, F>(self: &Arc<Self>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: Fn(&mut Conn) -> Result<Result<T, ApiError>, XError> + Send + 'static,
    {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = me.conn.lock().unwrap_or_else(|p| p.into_inner());
            for attempt in 0..2 {
                let fresh = guard.is_none();
                if fresh {
                    *guard = Some(Conn::open(&me.display).map_err(|e| me.unavailable(e))?);
                }
                let conn = guard.as_mut().expect("just made");
                match f(conn) {
                    Ok(r) => return r,
                    Err(e) => {
                        *guard = None;
                        if fresh || attempt == 1 {
                            return Err(me.unavailable(e));
                        }
                    }
                }
            }
            unreachable!("the loop returns")
        })
        .await
        .map_err(|e| ApiError::internal(format!("X call: {e}")))?
    }

    fn unavailable(&self, e: XError) -> ApiError {
        ApiError::unavailable(format!("X display {}: {e}", self.display))
    }
}

/// The one check every input endpoint makes before touching the display:
/// while a human holds the live view (`POST /live/takeover`), the agent's
/// keyboard and mouse would fight theirs, so input answers 409 naming the
/// holder and the lease's end (docs/handoff.md). Screenshots and the cursor
/// stay available.
pub fn input_gate(state: &AppState) -> Result<(), ApiError> {
    match crate::live::human_holder(state) {
        Some(holder) => Err(crate::live::human_in_control(&holder)),
        None => Ok(()),
    }
}

// ---- endpoints --------------------------------------------------------------

/// `GET /computer/screenshot[?x=&y=&width=&height=][&scale=]`: a PNG.
pub async fn screenshot(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    let q = query(&req);
    let int = |name: &str| -> Result<Option<i64>, ApiError> {
        q.get(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("{name} must be an integer, not {v:?}"))
                })
            })
            .transpose()
    };
    let (rx, ry, rw, rh) = (int("x")?, int("y")?, int("width")?, int("height")?);
    let scale = match q.get("scale") {
        None => 1.0,
        Some(v) => match v.parse::<f64>() {
            Ok(s) if s > 0.0 && s <= 1.0 => s,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "scale must be a number in (0, 1], not {v:?}"
                )))
            }
        },
    };
    let png = state
        .screen
        .with(move |c| {
            let (sw, sh) = c.size()?;
            let x = rx.unwrap_or(0);
            let y = ry.unwrap_or(0);
            let w = rw.unwrap_or(sw as i64 - x);
            let h = rh.unwrap_or(sh as i64 - y);
            let outside = |at: i64, len: i64, max: u16| {
                at < 0 || len < 1 || at.saturating_add(len) > max as i64
            };
            if outside(x, w, sw) || outside(y, h, sh) {
                return Ok(Err(ApiError::bad_request(format!(
                    "region x={x} y={y} width={w} height={h} is not inside the {sw}x{sh} screen"
                ))));
            }
            let (w, h) = (w as usize, h as usize);
            let rgb = c.image(x as i16, y as i16, w as u16, h as u16)?;
            let nw = ((w as f64 * scale).round() as usize).max(1);
            let nh = ((h as f64 * scale).round() as usize).max(1);
            let rgb = shot::scale(&rgb, w, h, nw, nh);
            Ok(shot::png(&rgb, nw as u32, nh as u32).map_err(ApiError::internal))
        })
        .await?;
    let mut r = Resp::new(full(png));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `GET /computer/cursor`: where the pointer is.
pub async fn cursor(state: &AppState) -> Result<Resp, ApiError> {
    let (x, y) = state.screen.with(|c| Ok(Ok(c.pointer()?))).await?;
    ok(&serde_json::json!({ "x": x, "y": y }))
}
