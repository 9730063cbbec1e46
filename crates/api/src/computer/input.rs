//! The input endpoints of `/computer/*`: mouse (move, click, drag, wheel)
//! and keyboard (Unicode text, key combinations), validated, then sent as
//! XTEST events over the kept connection. Each goes through
//! [`super::input_gate`] first.

use std::time::Duration;

use serde::Deserialize;

use super::input_gate;
use super::keys;
use super::x::{Conn, XError};
use crate::http::{body_json, ok, ApiError, Req, Resp};
use crate::AppState;

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
