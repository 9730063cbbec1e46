//! `${VAR}` / `${VAR:-default}` expansion of config strings.
//!
//! Deliberately small and predictable, unlike a shell: no `$VAR` without braces
//! (so `$HOME` in an argument stays literal, and regexes ending in `$` work), no
//! nesting, no command substitution, and the result is never expanded again (a
//! value containing `${X}` arrives verbatim). `$$` is an escaped `$`.
//! A reference to an unset variable is an error rather than an empty string,
//! because silently starting `Xvfb` with an empty screen spec is worse than
//! refusing to start.

use std::collections::BTreeMap;

/// Expands `s` with variables from `env`; the error is a one-line message.
pub(super) fn expand(s: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    // Fast path: most strings have no `$` at all.
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {s:?} (missing `}}`)"))?;
            out.push_str(&lookup(&body[..end], env)?);
            rest = &body[end + 1..];
        } else {
            // A lone `$` (e.g. `$HOME`, `foo$`) is kept as written.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Resolves the inside of one `${…}`.
fn lookup(inner: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let (name, default) = match inner.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (inner, None),
    };
    if !is_var_name(name) {
        return Err(format!(
            "invalid variable name {name:?} in `${{{inner}}}` (use letters, digits and `_`)"
        ));
    }
    // Like the shell's `:-`, an empty value counts as unset when a default is given.
    match (env.get(name), default) {
        (Some(v), Some(d)) if v.is_empty() => Ok(d.to_string()),
        (Some(v), _) => Ok(v.clone()),
        (None, Some(d)) => Ok(d.to_string()),
        (None, None) => Err(format!(
            "environment variable {name} is not set (write `${{{name}:-}}` to allow an empty value)"
        )),
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("HOME", "/root"), ("EMPTY", ""), ("NESTED", "${HOME}")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_set_and_default() {
        let e = env();
        assert_eq!(expand("${HOME}/x", &e).unwrap(), "/root/x");
        assert_eq!(expand("${NOPE:-1280x720x24}", &e).unwrap(), "1280x720x24");
        assert_eq!(expand("${HOME:-/tmp}", &e).unwrap(), "/root");
        assert_eq!(expand("${EMPTY:-d}", &e).unwrap(), "d");
        assert_eq!(expand("${EMPTY}", &e).unwrap(), "");
        assert_eq!(expand("${NOPE:-}", &e).unwrap(), "");
        assert_eq!(expand("a${HOME}b${HOME}", &e).unwrap(), "a/rootb/root");
    }

    #[test]
    fn dollar_rules() {
        let e = env();
        assert_eq!(expand("$$", &e).unwrap(), "$");
        assert_eq!(expand("$${HOME}", &e).unwrap(), "${HOME}");
        assert_eq!(expand("$HOME ^ready$", &e).unwrap(), "$HOME ^ready$");
        assert_eq!(expand("plain", &e).unwrap(), "plain");
    }

    #[test]
    fn values_are_not_re_expanded() {
        assert_eq!(expand("${NESTED}", &env()).unwrap(), "${HOME}");
    }

    #[test]
    fn errors() {
        let e = env();
        let unset = expand("x ${NOPE} y", &e).unwrap_err();
        assert!(unset.contains("NOPE is not set"), "{unset}");
        assert!(unset.contains("${NOPE:-}"), "{unset}");
        assert!(expand("${HOME", &e).unwrap_err().contains("unterminated"));
        assert!(expand("${}", &e)
            .unwrap_err()
            .contains("invalid variable name"));
        assert!(expand("${1X}", &e)
            .unwrap_err()
            .contains("invalid variable name"));
    }
}
