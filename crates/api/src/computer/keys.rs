//! Key names and characters as X keysyms: `press_key`'s combinations
//! ("ctrl+a", "Delete", "shift+Tab", "Return") and `type`'s Unicode text.
//!
//! Names follow X (xdotool's: `Return`, `BackSpace`, `Page_Up`) and accept
//! the DOM's too (`Enter`, `Backspace`, `PageUp`, `ArrowLeft`), any case.
//! A single character names its own key ("a", "é", "/").

use x11rb::protocol::xproto::Keysym;

/// Modifier names and the keysym held for them.
const MODIFIERS: &[(&str, Keysym)] = &[
    ("ctrl", 0xffe3),
    ("control", 0xffe3),
    ("control_l", 0xffe3),
    ("control_r", 0xffe4),
    ("shift", 0xffe1),
    ("shift_l", 0xffe1),
    ("shift_r", 0xffe2),
    ("alt", 0xffe9),
    ("alt_l", 0xffe9),
    ("alt_r", 0xffea),
    ("option", 0xffe9),
    // Chromium reports Super as metaKey.
    ("super", 0xffeb),
    ("super_l", 0xffeb),
    ("super_r", 0xffec),
    ("meta", 0xffeb),
    ("cmd", 0xffeb),
    ("win", 0xffeb),
];

/// Named keys (lower case) and their keysyms.
const NAMED: &[(&str, Keysym)] = &[
    ("return", 0xff0d),
    ("enter", 0xff0d),
    ("kp_enter", 0xff8d),
    ("tab", 0xff09),
    ("escape", 0xff1b),
    ("esc", 0xff1b),
    ("backspace", 0xff08),
    ("delete", 0xffff),
    ("del", 0xffff),
    ("insert", 0xff63),
    ("home", 0xff50),
    ("end", 0xff57),
    ("page_up", 0xff55),
    ("pageup", 0xff55),
    ("prior", 0xff55),
    ("page_down", 0xff56),
    ("pagedown", 0xff56),
    ("next", 0xff56),
    ("left", 0xff51),
    ("arrowleft", 0xff51),
    ("up", 0xff52),
    ("arrowup", 0xff52),
    ("right", 0xff53),
    ("arrowright", 0xff53),
    ("down", 0xff54),
    ("arrowdown", 0xff54),
    ("space", 0x20),
    ("menu", 0xff67),
    ("print", 0xff61),
    ("pause", 0xff13),
    ("caps_lock", 0xffe5),
    ("capslock", 0xffe5),
    ("num_lock", 0xff7f),
    ("scroll_lock", 0xff14),
    ("minus", 0x2d),
    ("plus", 0x2b),
    ("equal", 0x3d),
    ("comma", 0x2c),
    ("period", 0x2e),
    ("slash", 0x2f),
];

/// The keysym of one character (X: Latin-1 as is, the rest of Unicode at
/// 0x01000000 + code point); newline and tab are their keys.
pub fn char_keysym(c: char) -> Option<Keysym> {
    let cp = c as u32;
    match c {
        '\n' | '\r' => Some(0xff0d),
        '\t' => Some(0xff09),
        _ if c.is_control() => None,
        _ if (0x20..=0x7e).contains(&cp) || (0xa0..=0xff).contains(&cp) => Some(cp),
        _ => Some(0x0100_0000 + cp),
    }
}

/// The keysym of one key name (a modifier name counts: "shift" alone).
pub fn key_keysym(name: &str) -> Option<Keysym> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return char_keysym(c);
    }
    let lower = name.to_ascii_lowercase();
    if let Some(n) = lower.strip_prefix('f') {
        if let Ok(n @ 1..=24) = n.parse::<u32>() {
            return Some(0xffbe + n - 1);
        }
    }
    NAMED
        .iter()
        .chain(MODIFIERS)
        .find(|(n, _)| *n == lower)
        .map(|(_, k)| *k)
}

/// A modifier's keysym.
pub fn modifier_keysym(name: &str) -> Option<Keysym> {
    let lower = name.to_ascii_lowercase();
    MODIFIERS.iter().find(|(n, _)| *n == lower).map(|(_, k)| *k)
}

/// "ctrl+shift+a" as keysyms pressed in order (released in reverse). A
/// literal "+" is the key named "plus" (or a trailing "+", as in "ctrl++").
pub fn combination(combo: &str) -> Result<Vec<Keysym>, String> {
    if combo.is_empty() {
        return Err("an empty key combination".into());
    }
    let mut parts: Vec<&str> = combo.split('+').collect();
    // "ctrl++" splits into ["ctrl", "", ""]: the last key is "+".
    if combo.ends_with("++") || combo == "+" {
        parts.truncate(parts.len().saturating_sub(2));
        parts.push("+");
    }
    let mut out = Vec::new();
    for p in &parts {
        let sym = key_keysym(p).ok_or_else(|| {
            format!("unknown key {p:?} in {combo:?} (X names such as Return, BackSpace, Page_Up, F5, ctrl, shift, alt, super, or one character)")
        })?;
        out.push(sym);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_characters_and_combinations() {
        assert_eq!(key_keysym("Return"), Some(0xff0d));
        assert_eq!(key_keysym("enter"), Some(0xff0d));
        assert_eq!(key_keysym("Delete"), Some(0xffff));
        assert_eq!(key_keysym("F5"), Some(0xffc2));
        assert_eq!(key_keysym("F25"), None);
        assert_eq!(key_keysym("a"), Some(0x61));
        assert_eq!(key_keysym("é"), Some(0xe9));
        assert_eq!(key_keysym("€"), Some(0x0100_20ac));
        assert_eq!(key_keysym("nope"), None);
        assert_eq!(combination("ctrl+a").unwrap(), vec![0xffe3, 0x61]);
        assert_eq!(
            combination("Ctrl+Shift+Tab").unwrap(),
            vec![0xffe3, 0xffe1, 0xff09]
        );
        assert_eq!(combination("ctrl++").unwrap(), vec![0xffe3, 0x2b]);
        assert_eq!(combination("+").unwrap(), vec![0x2b]);
        assert!(combination("ctrl+nope").unwrap_err().contains("\"nope\""));
        assert!(combination("").is_err());
        assert!(combination("ctrl+").is_err());
        assert_eq!(char_keysym('\n'), Some(0xff0d));
        assert_eq!(char_keysym('\u{7}'), None);
        assert_eq!(modifier_keysym("Meta"), Some(0xffeb));
        assert_eq!(modifier_keysym("a"), None);
    }
}
