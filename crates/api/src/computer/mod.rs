//! `/computer/*`: driving the browser by pixels, as computer-use agents do.
//! Screenshots of the X display (optional region and downscale), mouse and
//! keyboard through XTEST, the pointer position. Coordinates are screen
//! pixels of the X display (docs/agents.md: how they map to CSS pixels).
//!
//! X calls block, so they run on tokio's blocking pool, one at a time over
//! the kept connection of [`Screen`]; an input endpoint answers once the X
//! server has processed its events (a round trip), not once the page has
//! handled them.

pub mod keys;
pub mod shot;
pub mod x;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::header::{self, HeaderValue};
use serde::Deserialize;

use crate::http::{body_json, full, ok, query, ApiError, Req, Resp};
use crate::AppState;
use x::{Conn, XError};

/// The X display and its kept connection (made on first use, made again
/// after an error: Xvfb may have restarted).
pub struct Screen {
    pub display: String,
    conn: Mutex<Option<Conn>>,
}

/// Bounds on what one request may ask.
const MAX_CLICKS: u32 = 10;
const MAX_SCROLL: i32 = 100;
const MAX_TEXT: usize = 10_000;
const MAX_DELAY_MS: u64 = 200;
const MAX_HOLD_MS: u64 = 5_000;
const MAX_PATH: usize = 1_000;
const MAX_KEYS: usize = 100;
/// Bound on a paced `type` or a held `press_key`: a request is not a script.
const MAX_PACED_MS: u64 = 10_000;

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

/// The one check every input endpoint makes before touching the display.
pub fn input_gate(_state: &AppState) -> Result<(), ApiError> {
    // issue 15's live takeover answers 409 naming the human holding control here
    Ok(())
}

// ---- validation -----------------------------------------------------------

/// A point on a `w`x`h` screen.
fn point(x: i64, y: i64, (w, h): (u16, u16)) -> Result<Result<(u16, u16), ApiError>, XError> {
    if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
        return Ok(Err(ApiError::bad_request(format!(
            "({x}, {y}) is outside the screen: x must be in 0..{w}, y in 0..{h}"
        ))));
    }
    Ok(Ok((x as u16, y as u16)))
}

fn button(name: Option<&str>) -> Result<u8, ApiError> {
    Ok(match name.unwrap_or("left") {
        "left" => 1,
        "middle" => 2,
        "right" => 3,
        "back" => 8,
        "forward" => 9,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown button {other:?} (left, middle, right, back, forward)"
            )))
        }
    })
}

fn modifiers(hold: &Option<Vec<String>>) -> Result<Vec<u32>, ApiError> {
    let hold = hold.as_deref().unwrap_or_default();
    if hold.len() > 8 {
        return Err(ApiError::bad_request("at most 8 hold_keys"));
    }
    hold.iter()
        .map(|k| {
            keys::key_keysym(k).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown key {k:?} in hold_keys (ctrl, shift, alt, super, or a key name)"
                ))
            })
        })
        .collect()
}

/// Presses `hold` (in order), runs `f`, releases them (in reverse) even
/// when `f` failed, then waits for the server to have processed it all.
fn holding<T>(
    c: &mut Conn,
    hold: &[u32],
    f: impl FnOnce(&mut Conn) -> Result<T, XError>,
) -> Result<T, XError> {
    let mut held = Vec::new();
    let mut r = Ok(());
    for &sym in hold {
        match c.key_for(sym).and_then(|k| c.key(k, true).map(|_| k)) {
            Ok(k) => held.push(k),
            Err(e) => {
                r = Err(e);
                break;
            }
        }
    }
    let out = r.and_then(|_| f(c));
    for k in held.into_iter().rev() {
        c.key(k, false)?;
    }
    c.sync()?;
    out
}

fn done() -> Result<Resp, ApiError> {
    ok(&serde_json::json!({ "ok": true }))
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    x: i64,
    y: i64,
    hold_keys: Option<Vec<String>>,
}

/// `POST /computer/move_mouse {x, y}`.
pub async fn move_mouse(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    input_gate(state)?;
    let b: Move = body_json(req).await?;
    let hold = modifiers(&b.hold_keys)?;
    state
        .screen
        .with(move |c| {
            let (x, y) = match point(b.x, b.y, c.size()?)? {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            holding(c, &hold, |c| c.motion(x, y))?;
            Ok(Ok(()))
        })
        .await?;
    done()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Click {
    x: Option<i64>,
    y: Option<i64>,
    button: Option<String>,
    /// `click` (press and release, `num_clicks` times), `down` or `up`.
    click_type: Option<String>,
    num_clicks: Option<u32>,
    hold_keys: Option<Vec<String>>,
}

/// `POST /computer/click_mouse {x, y, button, click_type, num_clicks, hold_keys}`.
pub async fn click_mouse(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    input_gate(state)?;
    let b: Click = body_json(req).await?;
    let button = button(b.button.as_deref())?;
    let hold = modifiers(&b.hold_keys)?;
    let (down, up) = match b.click_type.as_deref().unwrap_or("click") {
        "click" => (true, true),
        "down" => (true, false),
        "up" => (false, true),
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown click_type {other:?} (click, down, up)"
            )))
        }
    };
    let n = b.num_clicks.unwrap_or(1);
    if !(1..=MAX_CLICKS).contains(&n) {
        return Err(ApiError::bad_request(format!(
            "num_clicks must be 1 to {MAX_CLICKS}, not {n}"
        )));
    }
    let at = match (b.x, b.y) {
        (Some(x), Some(y)) => Some((x, y)),
        (None, None) => None,
        _ => return Err(ApiError::bad_request("give both x and y, or neither")),
    };
    state
        .screen
        .with(move |c| {
            let at = match at {
                Some((x, y)) => match point(x, y, c.size()?)? {
                    Ok(p) => Some(p),
                    Err(e) => return Ok(Err(e)),
                },
                None => None,
            };
            holding(c, &hold, |c| {
                if let Some((x, y)) = at {
                    c.motion(x, y)?;
                }
                for _ in 0..n {
                    if down {
                        c.button(button, true)?;
                    }
                    if up {
                        c.button(button, false)?;
                    }
                }
                Ok(())
            })?;
            Ok(Ok(()))
        })
        .await?;
    done()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Drag {
    path: Vec<[i64; 2]>,
    button: Option<String>,
    hold_keys: Option<Vec<String>>,
}

/// `POST /computer/drag_mouse {path: [[x, y], …], button, hold_keys}`: press
/// at the first point, move through the others, release at the last.
pub async fn drag_mouse(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    input_gate(state)?;
    let b: Drag = body_json(req).await?;
    let button = button(b.button.as_deref())?;
    let hold = modifiers(&b.hold_keys)?;
    if b.path.len() < 2 || b.path.len() > MAX_PATH {
        return Err(ApiError::bad_request(format!(
            "path needs 2 to {MAX_PATH} points, not {}",
            b.path.len()
        )));
    }
    state
        .screen
        .with(move |c| {
            let size = c.size()?;
            let mut pts = Vec::new();
            for [x, y] in &b.path {
                match point(*x, *y, size)? {
                    Ok(p) => pts.push(p),
                    Err(e) => return Ok(Err(e)),
                }
            }
            holding(c, &hold, |c| {
                c.motion(pts[0].0, pts[0].1)?;
                c.button(button, true)?;
                for &(x, y) in &pts[1..] {
                    c.motion(x, y)?;
                }
                c.button(button, false)
            })?;
            Ok(Ok(()))
        })
        .await?;
    done()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scroll {
    x: i64,
    y: i64,
    delta_x: Option<i32>,
    delta_y: Option<i32>,
    hold_keys: Option<Vec<String>>,
}

/// `POST /computer/scroll {x, y, delta_x, delta_y}`: wheel notches at a
/// point (positive: right, down).
pub async fn scroll(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    input_gate(state)?;
    let b: Scroll = body_json(req).await?;
    let hold = modifiers(&b.hold_keys)?;
    let (dx, dy) = (b.delta_x.unwrap_or(0), b.delta_y.unwrap_or(0));
    if dx.abs() > MAX_SCROLL || dy.abs() > MAX_SCROLL {
        return Err(ApiError::bad_request(format!(
            "delta_x and delta_y are wheel notches, at most {MAX_SCROLL} either way"
        )));
    }
    state
        .screen
        .with(move |c| {
            let (x, y) = match point(b.x, b.y, c.size()?)? {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            holding(c, &hold, |c| {
                c.motion(x, y)?;
                // X wheel buttons: 4 up, 5 down, 6 left, 7 right.
                for (d, neg, pos) in [(dy, 4, 5), (dx, 6, 7)] {
                    let b = if d < 0 { neg } else { pos };
                    for _ in 0..d.abs() {
                        c.button(b, true)?;
                        c.button(b, false)?;
                    }
                }
                Ok(())
            })?;
            Ok(Ok(()))
        })
        .await?;
    done()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Type {
    text: String,
    delay_ms: Option<u64>,
}

/// `POST /computer/type {text, delay_ms}`: Unicode text, character by
/// character, into whatever has the focus.
pub async fn type_text(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    input_gate(state)?;
    let b: Type = body_json(req).await?;
    let n = b.text.chars().count();
    if n > MAX_TEXT {
        return Err(ApiError::bad_request(format!(
            "text is {n} characters, at most {MAX_TEXT}"
        )));
    }
    let delay = b.delay_ms.unwrap_or(0);
    if delay > MAX_DELAY_MS {
        return Err(ApiError::bad_request(format!(
            "delay_ms is at most {MAX_DELAY_MS}"
        )));
    }
    if (n as u64).saturating_mul(delay) > MAX_PACED_MS {
        return Err(ApiError::bad_request(format!(
            "{n} characters {delay} ms apart take longer than {MAX_PACED_MS} ms"
        )));
    }
    let mut syms = Vec::with_capacity(n);
    for (i, ch) in b.text.chars().enumerate() {
        syms.push(keys::char_keysym(ch).ok_or_else(|| {
            ApiError::bad_request(format!(
                "character {i} ({:?}) is a control character that has no key",
                ch
            ))
        })?);
    }
    state
        .screen
        .with(move |c| {
            // In batches: the characters of each mapped at once (one pause
            // for the browser to read the map), then typed.
            let mut at = 0;
            while at < syms.len() {
                if at > 0 {
                    // The browser handles the last batch's keys with the
                    // map they were typed with before it changes again.
                    c.settle()?;
                }
                let n = c.prepare(&syms[at..])?;
                if n == 0 {
                    return Err(XError(
                        "the keyboard map has no spare keycode to type this character with".into(),
                    ));
                }
                let end = at + n;
                for &sym in &syms[at..end] {
                    let k = c.key_for(sym)?;
                    c.key(k, true)?;
                    c.key(k, false)?;
                    if delay > 0 {
                        // Pacing the typing itself (some pages debounce
                        // keys): each key is processed before the pause.
                        c.sync()?;
                        std::thread::sleep(Duration::from_millis(delay));
                    }
                }
                c.sync()?;
                at = end;
            }
            Ok(Ok(()))
        })
        .await?;
    done()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PressKey {
    keys: Vec<String>,
    hold_keys: Option<Vec<String>>,
    /// How long each combination is held down.
    duration_ms: Option<u64>,
}

/// `POST /computer/press_key {keys: ["ctrl+a", "Delete"], hold_keys, duration_ms}`:
/// each combination pressed (in order) and released (in reverse), one after
/// the other.
pub async fn press_key(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    input_gate(state)?;
    let b: PressKey = body_json(req).await?;
    let hold = modifiers(&b.hold_keys)?;
    if b.keys.is_empty() || b.keys.len() > MAX_KEYS {
        return Err(ApiError::bad_request(format!(
            "keys needs 1 to {MAX_KEYS} key combinations"
        )));
    }
    let combos = b
        .keys
        .iter()
        .map(|k| keys::combination(k).map_err(ApiError::bad_request))
        .collect::<Result<Vec<_>, _>>()?;
    let hold_for = b.duration_ms.unwrap_or(0);
    if hold_for > MAX_HOLD_MS {
        return Err(ApiError::bad_request(format!(
            "duration_ms is at most {MAX_HOLD_MS}"
        )));
    }
    if (combos.len() as u64).saturating_mul(hold_for) > MAX_PACED_MS {
        return Err(ApiError::bad_request(format!(
            "{} combinations held {hold_for} ms each take longer than {MAX_PACED_MS} ms",
            combos.len()
        )));
    }
    state
        .screen
        .with(move |c| {
            holding(c, &hold, |c| {
                for combo in &combos {
                    let mut pressed = Vec::new();
                    for &sym in combo {
                        let k = c.key_for(sym)?;
                        c.key(k, true)?;
                        pressed.push(k);
                    }
                    if hold_for > 0 {
                        c.sync()?;
                        std::thread::sleep(Duration::from_millis(hold_for));
                    }
                    for k in pressed.into_iter().rev() {
                        c.key(k, false)?;
                    }
                }
                Ok(())
            })?;
            Ok(Ok(()))
        })
        .await?;
    done()
}
