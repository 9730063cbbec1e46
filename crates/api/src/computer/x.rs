//! The X display, through one kept-open connection (x11rb, pure Rust):
//! XTEST input, root-window images, the pointer, RandR screen sizes.
//!
//! Why one connection: connecting costs a handshake and a keyboard-mapping
//! read (~1 ms); a kept one makes a click a few small requests and one round
//! trip. Every call ends with a round trip ([`Conn::sync`]) so that when an
//! endpoint answers, the X server has processed the input and queued the
//! events to the focused client (Chromium), in order.
//!
//! Characters missing from the keyboard map (non-ASCII text) are typed as
//! xdotool does: a spare keycode (one with no keysym) is mapped to the
//! character. Unlike xdotool the mapping is kept (up to the number of spare
//! keycodes, reused oldest first), so Chromium never reads a mapping that was
//! already restored before it handled the key press.

use std::collections::{HashMap, HashSet};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ConnectionExt as _, Keycode, Keysym, Window};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

/// What went wrong talking to the X server (the connection is then dropped
/// and made again on the next call: Xvfb may have restarted).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct XError(pub String);

macro_rules! x {
    ($what:expr, $e:expr) => {
        $e.map_err(|e| XError(format!("{}: {e}", $what)))
    };
}

/// A keysym to press, with Shift (level 2) or not.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub code: Keycode,
    pub shift: bool,
}

/// An open display with what the calls need from it.
pub struct Conn {
    conn: RustConnection,
    pub root: Window,
    min_keycode: Keycode,
    per_code: u8,
    /// The keyboard map as read (and as changed by us), keycode-indexed from
    /// `min_keycode`.
    keysyms: Vec<Keysym>,
    /// Keycodes with no keysym at all: ours to map characters to.
    spare: Vec<Keycode>,
    /// Characters currently mapped on spare keycodes, with a use counter.
    mapped: HashMap<Keysym, (Keycode, u64)>,
    uses: u64,
    shift_code: Keycode,
}

/// The browser's time to read a changed keyboard map ([`Conn::settle`]).
const REMAP_PAUSE_MS: u64 = 100;

impl Conn {
    pub fn open(display: &str) -> Result<Conn, XError> {
        let (conn, screen) = x11rb::connect(Some(display))
            .map_err(|e| XError(format!("cannot open X display {display}: {e}")))?;
        let root = conn.setup().roots[screen].root;
        let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
        x!(
            "XTEST",
            conn.extension_information(x11rb::protocol::xtest::X11_EXTENSION_NAME)
        )?
        .ok_or_else(|| XError(format!("X display {display} has no XTEST extension")))?;
        let map = x!(
            "GetKeyboardMapping",
            x!(
                "GetKeyboardMapping",
                conn.get_keyboard_mapping(min, max - min + 1)
            )?
            .reply()
        )?;
        let per_code = map.keysyms_per_keycode;
        let keysyms = map.keysyms;
        // Ours to map characters to: keycodes with no keysym, and those an
        // earlier corral-api (or xdotool) mapped a character to (the same
        // keysym on both levels), reused as they are. Not those of other
        // keys, even unused ones such as XF86Reload: a browser that handles
        // the key press before it re-reads the map would act on the old
        // keysym (tried: the page reloaded).
        let mut spare = Vec::new();
        let mut mapped = HashMap::new();
        for (i, syms) in keysyms.chunks(per_code as usize).enumerate() {
            let code = min + i as u8;
            if syms.iter().all(|k| *k == 0) {
                spare.push(code);
            } else if syms.len() > 1 && syms[0] == syms[1] && is_typed_char(syms[0]) {
                spare.push(code);
                mapped.insert(syms[0], (code, 0));
            }
        }
        let mut c = Conn {
            conn,
            root,
            min_keycode: min,
            per_code,
            keysyms,
            spare,
            mapped,
            uses: 0,
            shift_code: 0,
        };
        c.shift_code = c
            .find(SHIFT_L)
            .map(|k| k.code)
            .ok_or_else(|| XError("the keyboard map has no Shift_L".into()))?;
        Ok(c)
    }

    /// A round trip: every request before it has been processed.
    pub fn sync(&self) -> Result<(), XError> {
        x!(
            "GetInputFocus",
            x!("GetInputFocus", self.conn.get_input_focus())?.reply()
        )?;
        Ok(())
    }

    fn fake(&self, kind: u8, detail: u8, x: i16, y: i16) -> Result<(), XError> {
        x!(
            "XTEST FakeInput",
            self.conn
                .xtest_fake_input(kind, detail, x11rb::CURRENT_TIME, self.root, x, y, 0)
        )?;
        Ok(())
    }

    pub fn motion(&self, x: u16, y: u16) -> Result<(), XError> {
        self.fake(xproto::MOTION_NOTIFY_EVENT, 0, x as i16, y as i16)
    }

    pub fn button(&self, button: u8, down: bool) -> Result<(), XError> {
        let kind = if down {
            xproto::BUTTON_PRESS_EVENT
        } else {
            xproto::BUTTON_RELEASE_EVENT
        };
        self.fake(kind, button, 0, 0)
    }

    pub fn keycode(&self, code: Keycode, down: bool) -> Result<(), XError> {
        let kind = if down {
            xproto::KEY_PRESS_EVENT
        } else {
            xproto::KEY_RELEASE_EVENT
        };
        self.fake(kind, code, 0, 0)
    }

    /// Presses (or releases) a key, with Shift around it when its keysym
    /// sits on level 2.
    pub fn key(&self, key: Key, down: bool) -> Result<(), XError> {
        if down {
            if key.shift {
                self.keycode(self.shift_code, true)?;
            }
            self.keycode(key.code, true)
        } else {
            self.keycode(key.code, false)?;
            if key.shift {
                self.keycode(self.shift_code, false)?;
            }
            Ok(())
        }
    }

    /// The keycode (and level) carrying `sym` in the current map.
    fn find(&self, sym: Keysym) -> Option<Key> {
        let per = self.per_code as usize;
        for (i, syms) in self.keysyms.chunks(per).enumerate() {
            let code = self.min_keycode + i as u8;
            if syms.first() == Some(&sym) {
                return Some(Key { code, shift: false });
            }
            if syms.get(1) == Some(&sym) {
                return Some(Key { code, shift: true });
            }
        }
        None
    }

    /// The key for `sym`, mapping it on a spare keycode (and letting the
    /// browser catch up: [`Conn::settle`]) when the map lacks it.
    pub fn key_for(&mut self, sym: Keysym) -> Result<Key, XError> {
        if self.find(sym).is_none() {
            self.map_char(sym, &HashSet::new())?;
            self.settle()?;
        }
        self.touch(sym)
    }

    /// The key for `sym`, already in the map.
    fn touch(&mut self, sym: Keysym) -> Result<Key, XError> {
        if let Some(m) = self.mapped.get_mut(&sym) {
            self.uses += 1;
            m.1 = self.uses;
        }
        self.find(sym)
            .ok_or_else(|| XError(format!("keysym {sym:#x} is not in the keyboard map")))
    }

    /// Maps the characters of `syms` from the start on, as many as the spare
    /// keycodes can hold at once, and returns how many that is: the caller
    /// types those, then calls again for the rest. One pause per batch that
    /// changed the map.
    pub fn prepare(&mut self, syms: &[Keysym]) -> Result<usize, XError> {
        let mut needed = HashSet::new();
        let mut end = 0;
        for &sym in syms {
            let on_spare = self.mapped.contains_key(&sym) || self.find(sym).is_none();
            if on_spare && !needed.contains(&sym) {
                if needed.len() == self.spare.len() {
                    break;
                }
                needed.insert(sym);
            }
            end += 1;
        }
        let mut changed = false;
        for &sym in &needed {
            if self.find(sym).is_none() {
                self.map_char(sym, &needed)?;
                changed = true;
            }
        }
        if changed {
            self.settle()?;
        }
        Ok(end)
    }

    /// After the map changed: the X server has processed it, and the
    /// browser gets time to read it again. It handles a key press with the
    /// map it last read, and reads the new one only some time after the
    /// change is announced (measured: a character typed at once came out
    /// as the one the keycode held before); X has no acknowledgement from a
    /// client to wait on, so this pause is all there is.
    pub fn settle(&mut self) -> Result<(), XError> {
        self.sync()?;
        std::thread::sleep(std::time::Duration::from_millis(REMAP_PAUSE_MS));
        Ok(())
    }

    /// Maps `sym` on a spare keycode: a free one, else the least recently
    /// used one whose character is not in `keep`.
    fn map_char(&mut self, sym: Keysym, keep: &HashSet<Keysym>) -> Result<(), XError> {
        let free = self
            .spare
            .iter()
            .copied()
            .find(|c| !self.mapped.values().any(|(m, _)| m == c));
        let code = match free {
            Some(code) => code,
            None => {
                let (&old, &(code, _)) = self
                    .mapped
                    .iter()
                    .filter(|(s, _)| !keep.contains(*s))
                    .min_by_key(|(_, (_, used))| *used)
                    .ok_or_else(|| XError("no spare keycode to map a character to".into()))?;
                self.mapped.remove(&old);
                code
            }
        };
        let per = self.per_code as usize;
        let mut syms = vec![0; per];
        // Both levels: the character comes out with or without Shift held.
        syms[0] = sym;
        if per > 1 {
            syms[1] = sym;
        }
        x!(
            "ChangeKeyboardMapping",
            self.conn
                .change_keyboard_mapping(1, code, self.per_code, &syms)
        )?;
        let at = (code - self.min_keycode) as usize * per;
        self.keysyms[at..at + per].copy_from_slice(&syms);
        self.uses += 1;
        self.mapped.insert(sym, (code, self.uses));
        Ok(())
    }

    pub fn pointer(&self) -> Result<(i16, i16), XError> {
        let r = x!(
            "QueryPointer",
            x!("QueryPointer", self.conn.query_pointer(self.root))?.reply()
        )?;
        Ok((r.root_x, r.root_y))
    }

    /// The root window's current size.
    pub fn size(&self) -> Result<(u16, u16), XError> {
        let g = x!(
            "GetGeometry",
            x!("GetGeometry", self.conn.get_geometry(self.root))?.reply()
        )?;
        Ok((g.width, g.height))
    }

    /// A rectangle of the screen as tightly packed RGB bytes.
    pub fn image(&self, x: i16, y: i16, w: u16, h: u16) -> Result<Vec<u8>, XError> {
        let r = x!(
            "GetImage",
            x!(
                "GetImage",
                self.conn
                    .get_image(xproto::ImageFormat::Z_PIXMAP, self.root, x, y, w, h, !0)
            )?
            .reply()
        )?;
        let px = w as usize * h as usize;
        // Depth 24 and 32 bits per pixel, little-endian BGRX: what Xvfb
        // serves with `-screen 0 WxHx24`.
        if r.depth != 24 || r.data.len() != px * 4 {
            return Err(XError(format!(
                "unsupported X image: depth {}, {} bytes for {w}x{h} (start Xvfb with -screen 0 WxHx24)",
                r.depth,
                r.data.len()
            )));
        }
        let mut rgb = vec![0; px * 3];
        for (o, p) in rgb.chunks_exact_mut(3).zip(r.data.chunks_exact(4)) {
            o[0] = p[2];
            o[1] = p[1];
            o[2] = p[0];
        }
        Ok(rgb)
    }

    /// The largest screen RandR allows (Xvfb: the size it was started with).
    pub fn max_size(&self) -> Result<(u16, u16), XError> {
        let r = x!(
            "RandR GetScreenSizeRange",
            x!(
                "RandR GetScreenSizeRange",
                self.conn.randr_get_screen_size_range(self.root)
            )?
            .reply()
        )?;
        Ok((r.max_width, r.max_height))
    }

    /// Resizes the screen with RandR. Xvfb's one output lists a single mode
    /// (its start size) and takes no new ones, so the CRTC is switched off
    /// (nothing in Xvfb draws through it) and the screen is sized alone;
    /// going back to the start size turns it on again.
    pub fn resize(&self, w: u16, h: u16) -> Result<(), XError> {
        let res = x!(
            "RandR GetScreenResourcesCurrent",
            x!(
                "RandR GetScreenResourcesCurrent",
                self.conn.randr_get_screen_resources_current(self.root)
            )?
            .reply()
        )?;
        let (max_w, max_h) = self.max_size()?;
        for &crtc in &res.crtcs {
            let info = x!(
                "RandR GetCrtcInfo",
                x!(
                    "RandR GetCrtcInfo",
                    self.conn.randr_get_crtc_info(crtc, res.config_timestamp)
                )?
                .reply()
            )?;
            if info.mode != 0 && (info.width != w || info.height != h) {
                x!(
                    "RandR SetCrtcConfig",
                    x!(
                        "RandR SetCrtcConfig",
                        self.conn.randr_set_crtc_config(
                            crtc,
                            x11rb::CURRENT_TIME,
                            res.config_timestamp,
                            0,
                            0,
                            0,
                            randr::Rotation::ROTATE0,
                            &[],
                        )
                    )?
                    .reply()
                )?;
            }
        }
        // 96 dpi; RandR refuses 0 mm.
        let mm = |px: u16| ((px as u32 * 254 + 480) / 960).max(1);
        x!(
            "RandR SetScreenSize",
            self.conn
                .randr_set_screen_size(self.root, w, h, mm(w), mm(h))
        )?;
        if (w, h) == (max_w, max_h) {
            // Back at the start size: the one mode fits again.
            for &crtc in &res.crtcs {
                let out: Vec<u32> = res.outputs.clone();
                if let Some(mode) = res.modes.iter().find(|m| m.width == w && m.height == h) {
                    let _ = self
                        .conn
                        .randr_set_crtc_config(
                            crtc,
                            x11rb::CURRENT_TIME,
                            res.config_timestamp,
                            0,
                            0,
                            mode.id,
                            randr::Rotation::ROTATE0,
                            &out,
                        )
                        .map(|c| c.reply());
                }
            }
        }
        self.sync()?;
        let now = self.size()?;
        if now != (w, h) {
            return Err(XError(format!(
                "the X server kept its size {}x{} (asked {w}x{h})",
                now.0, now.1
            )));
        }
        Ok(())
    }

    /// Chromium's top-level windows (children of the root, there being no
    /// window manager) that are mapped and not override-redirect (its menus
    /// and popups are).
    pub fn top_levels(&self) -> Result<Vec<Window>, XError> {
        let tree = x!(
            "QueryTree",
            x!("QueryTree", self.conn.query_tree(self.root))?.reply()
        )?;
        let mut out = Vec::new();
        for w in tree.children {
            let Ok(cookie) = self.conn.get_window_attributes(w) else {
                continue;
            };
            // Windows may vanish between the two requests.
            if let Ok(a) = cookie.reply() {
                if a.map_state == xproto::MapState::VIEWABLE
                    && !a.override_redirect
                    && self.is_browser(w)
                {
                    out.push(w);
                }
            }
        }
        Ok(out)
    }

    /// Moves and sizes a window to fill the screen (when it does not yet:
    /// an unchanged geometry would still send it a ConfigureNotify).
    pub fn fill(&self, win: Window, w: u16, h: u16) -> Result<(), XError> {
        if let Ok(Ok(g)) = self.conn.get_geometry(win).map(|c| c.reply()) {
            if (g.x, g.y, g.width, g.height) == (0, 0, w, h) {
                return Ok(());
            }
        }
        let aux = xproto::ConfigureWindowAux::new()
            .x(0)
            .y(0)
            .width(w as u32)
            .height(h as u32);
        x!("ConfigureWindow", self.conn.configure_window(win, &aux))?;
        Ok(())
    }

    /// Asks for the root window's events: windows mapped on it, its size.
    pub fn watch_root(&self) -> Result<(), XError> {
        let aux = xproto::ChangeWindowAttributesAux::new().event_mask(
            xproto::EventMask::SUBSTRUCTURE_NOTIFY | xproto::EventMask::STRUCTURE_NOTIFY,
        );
        x!(
            "ChangeWindowAttributes",
            x!(
                "ChangeWindowAttributes",
                self.conn.change_window_attributes(self.root, &aux)
            )?
            .check()
        )
    }

    /// Blocks until a window is mapped or the screen changes size.
    pub fn wait_for_change(&self) -> Result<(), XError> {
        use x11rb::protocol::Event;
        loop {
            match x!("waiting for X events", self.conn.wait_for_event())? {
                Event::MapNotify(_) => return Ok(()),
                Event::ConfigureNotify(e) if e.window == self.root => return Ok(()),
                _ => {}
            }
        }
    }

    /// Whether a window is Chromium's (WM_CLASS "chromium", "Chromium"):
    /// other programs' windows are left where they are.
    pub fn is_browser(&self, win: Window) -> bool {
        let class = self
            .conn
            .get_property(
                false,
                win,
                xproto::AtomEnum::WM_CLASS,
                xproto::AtomEnum::STRING,
                0,
                256,
            )
            .ok()
            .and_then(|c| c.reply().ok());
        class.is_some_and(|p| {
            String::from_utf8_lossy(&p.value)
                .to_ascii_lowercase()
                .contains("chrom")
        })
    }
}

/// `Shift_L`.
pub const SHIFT_L: Keysym = 0xffe1;

/// A keysym that stands for one typed character beyond ASCII (Latin-1 or
/// Unicode), as we map them.
fn is_typed_char(k: Keysym) -> bool {
    (0xa0..=0xff).contains(&k) || (0x0100_0100..=0x0110_ffff).contains(&k)
}
