//! From `supervisor.toml` text to a validated [`Config`].
//!
//! Walks toml's span-preserving document tree (`DeTable`/`DeValue`, each node
//! `Spanned`) by hand instead of deriving `Deserialize`: serde stops at the first
//! error and loses positions, while here every problem in the file is collected
//! with its line:col and key path, and parsing goes on with a default so later
//! keys are still checked. A config with any diagnostic is rejected as a whole.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use corral_boot::signal::Sig;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diag::Collector;
use super::expand::expand;
use super::values;
use super::{Config, ConfigError, SupervisorSettings};

mod program;
#[cfg(test)]
mod tests;

type Val<'i> = Spanned<DeValue<'i>>;
type Key<'i> = Spanned<Cow<'i, str>>;

const ROOT_KEYS: &[&str] = &["supervisor", "programs"];
const SUPERVISOR_KEYS: &[&str] = &[
    "control_socket",
    "http",
    "log_dir",
    "log_max_bytes",
    "log_backups",
    "stop_timeout",
    "shutdown_timeout",
    "rlimits",
];
const PROGRAM_KEYS: &[&str] = &[
    "command",
    "env",
    "cwd",
    "user",
    "depends_on",
    "binds_to",
    "ready",
    "restart",
    "backoff",
    "critical",
    "max_restarts",
    "restart_window",
    "rlimits",
    "stop_signal",
    "kill_mode",
    "stop_timeout",
    "pre_start",
    "pre_stop",
    "autostart",
    "oneshot",
];
const READY_KEYS: &[&str] = &["tcp", "http", "x11", "file", "log", "exec", "timeout"];
const BACKOFF_KEYS: &[&str] = &["initial", "max", "reset_after"];
const RLIMIT_PAIR_KEYS: &[&str] = &["soft", "hard"];

/// Default `restart_window` for `max_restarts`.
const DEFAULT_RESTART_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Parses, expands and validates a whole file, reporting every problem at once.
pub(super) fn parse(
    path: &Path,
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    let mut cx = Cx {
        diags: Collector::new(path, text),
        env,
    };
    let root = match DeTable::parse(text) {
        Ok(root) => root.into_inner(),
        Err(e) => {
            // The tree is unusable after a syntax error, so this is the only diagnostic.
            let msg = format!("TOML syntax error: {}", e.message().trim_end());
            cx.diags.push(e.span().unwrap_or(0..0), "", msg);
            return Err(cx.diags.finish().expect_err("a diagnostic was pushed"));
        }
    };

    for (k, _) in root.iter() {
        if !ROOT_KEYS.contains(&k.get_ref().as_ref()) {
            cx.unknown(k, &join("", k.get_ref()), ROOT_KEYS);
        }
    }
    // `[supervisor]` first: programs inherit its stop_timeout and rlimits.
    let supervisor = match root.get("supervisor") {
        Some(v) => cx.supervisor(v),
        None => SupervisorSettings::default(),
    };

    let mut programs = BTreeMap::new();
    let mut refs = Vec::new();
    let mut names = BTreeSet::new();
    if let Some(t) = root.get("programs").and_then(|v| cx.table(v, "programs")) {
        for (k, v) in t.iter() {
            let name = k.get_ref().as_ref();
            let key = join("programs", name);
            names.insert(name.to_string());
            if !is_program_name(name) {
                let msg = format!(
                    "invalid program name {name:?} (use only letters, digits, `_`, `.` and `-`)"
                );
                cx.diags.push(k.span(), &key, msg);
            }
            if let Some(p) = cx.program(name, &key, v, &supervisor, &mut refs) {
                programs.insert(name.to_string(), p);
            }
        }
    }
    cx.check_refs(&names, &refs);

    cx.diags.finish()?;
    Ok(Config {
        path: path.to_path_buf(),
        supervisor,
        programs,
    })
}

fn is_program_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `base.key`, quoting the key like TOML would when it is not a bare key.
fn join(base: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if base.is_empty() {
        key
    } else {
        format!("{base}.{key}")
    }
}

/// Overwrites a default only when the value parsed.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// One `depends_on`/`binds_to` entry, checked once all program names are known.
struct Ref {
    from: String,
    to: String,
    span: Range<usize>,
    key: String,
}

/// Parsing context: where diagnostics go and what `${VAR}` expands from.
struct Cx<'a> {
    diags: Collector<'a>,
    env: &'a BTreeMap<String, String>,
}

impl Cx<'_> {
    fn err(&mut self, span: Range<usize>, key: &str, msg: impl Into<String>) {
        self.diags.push(span, key, msg);
    }

    fn type_err(&mut self, v: &Val<'_>, key: &str, expected: &str) {
        let msg = format!("expected {expected}, found {}", v.get_ref().type_str());
        self.err(v.span(), key, msg);
    }

    fn unknown(&mut self, k: &Key<'_>, key: &str, allowed: &[&str]) {
        let msg = format!(
            "unknown key {:?} (allowed: {})",
            k.get_ref().as_ref(),
            allowed.join(", ")
        );
        self.err(k.span(), key, msg);
    }

    fn table<'v, 'i>(&mut self, v: &'v Val<'i>, key: &str) -> Option<&'v DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.type_err(v, key, "a table");
                None
            }
        }
    }

    /// A string, with `${VAR}` expanded; errors point at the string.
    fn string(&mut self, v: &Val<'_>, key: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => match expand(s, self.env) {
                Ok(s) => Some(s),
                Err(msg) => {
                    self.err(v.span(), key, msg);
                    None
                }
            },
            _ => {
                self.type_err(v, key, "a string");
                None
            }
        }
    }

    /// A string run through one of the [`values`] parsers.
    fn parsed<T>(
        &mut self,
        v: &Val<'_>,
        key: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(v, key)?;
        match f(&s) {
            Ok(t) => Some(t),
            Err(msg) => {
                self.err(v.span(), key, msg);
                None
            }
        }
    }

    fn nonempty(&mut self, v: &Val<'_>, key: &str) -> Option<String> {
        self.parsed(v, key, |s| {
            if s.is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(s.to_string())
            }
        })
    }

    fn path(&mut self, v: &Val<'_>, key: &str) -> Option<PathBuf> {
        self.nonempty(v, key).map(PathBuf::from)
    }

    fn bool(&mut self, v: &Val<'_>, key: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_err(v, key, "a boolean (true or false)");
                None
            }
        }
    }

    /// A non-negative TOML integer no larger than `max`.
    fn uint(&mut self, v: &Val<'_>, key: &str, max: u64) -> Option<u64> {
        let DeValue::Integer(i) = v.get_ref() else {
            self.type_err(v, key, "an integer");
            return None;
        };
        match u64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if n <= max => Some(n),
            _ if i.as_str().starts_with('-') => {
                self.err(v.span(), key, "must not be negative");
                None
            }
            _ => {
                self.err(v.span(), key, format!("too large (at most {max})"));
                None
            }
        }
    }

    fn duration(&mut self, v: &Val<'_>, key: &str) -> Option<std::time::Duration> {
        if !matches!(v.get_ref(), DeValue::String(_)) {
            self.type_err(v, key, "a duration string such as \"10s\" or \"500ms\"");
            return None;
        }
        self.parsed(v, key, values::duration)
    }

    fn signal(&mut self, v: &Val<'_>, key: &str) -> Option<Sig> {
        match v.get_ref() {
            DeValue::Integer(_) => {
                let n = self.uint(v, key, i32::MAX as u64)?;
                self.number(v, key, values::signal_number(n as i64))
            }
            DeValue::String(_) => self.parsed(v, key, values::signal),
            _ => {
                self.type_err(v, key, "a signal name such as \"TERM\" or a number");
                None
            }
        }
    }

    /// Reports `r`'s error at `v`.
    fn number<T>(&mut self, v: &Val<'_>, key: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|msg| self.err(v.span(), key, msg)).ok()
    }

    /// A byte count: an integer, or a string with a unit such as `"10MiB"`.
    fn size(&mut self, v: &Val<'_>, key: &str) -> Option<u64> {
        match v.get_ref() {
            DeValue::Integer(_) => self.uint(v, key, u64::MAX),
            DeValue::String(_) => self.parsed(v, key, values::size),
            _ => {
                self.type_err(v, key, "a size such as 10485760 or \"10MiB\"");
                None
            }
        }
    }

    /// An argv: an array of strings, or one string split like a shell would
    /// (after expansion, so a variable may hold several words), never run by one.
    fn argv(&mut self, v: &Val<'_>, key: &str) -> Option<Vec<String>> {
        let argv = match v.get_ref() {
            DeValue::String(_) => {
                let s = self.string(v, key)?;
                let Some(words) = shlex::split(&s) else {
                    let msg = format!("cannot split {s:?} into words (unbalanced quotes?)");
                    self.err(v.span(), key, msg);
                    return None;
                };
                words
            }
            DeValue::Array(items) => {
                let words: Vec<Option<String>> =
                    items.iter().map(|item| self.string(item, key)).collect();
                words.into_iter().collect::<Option<Vec<_>>>()?
            }
            _ => {
                self.type_err(v, key, "an array of strings or a string");
                return None;
            }
        };
        match argv.first() {
            None => self.err(v.span(), key, "empty command"),
            Some(first) if first.is_empty() => {
                self.err(v.span(), key, "the program name (first word) is empty")
            }
            Some(_) => return Some(argv),
        }
        None
    }

    /// An array of program names, with their spans for later checks.
    fn names(&mut self, v: &Val<'_>, key: &str) -> Vec<(String, Range<usize>)> {
        let DeValue::Array(items) = v.get_ref() else {
            self.type_err(v, key, "an array of program names");
            return Vec::new();
        };
        let mut out: Vec<(String, Range<usize>)> = Vec::new();
        for item in items.iter() {
            if let Some(name) = self.string(item, key) {
                if out.iter().any(|(n, _)| *n == name) {
                    self.err(item.span(), key, format!("{name:?} is listed twice"));
                } else {
                    out.push((name, item.span()));
                }
            }
        }
        out
    }

    fn env_table(&mut self, v: &Val<'_>, key: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(t) = self.table(v, key) else {
            return out;
        };
        for (k, v) in t.iter() {
            let name = k.get_ref().as_ref();
            let key = join(key, name);
            if name.is_empty() || name.contains(['=', '\0']) {
                let msg = format!("invalid environment variable name {name:?}");
                self.err(k.span(), &key, msg);
            }
            if let Some(value) = self.string(v, &key) {
                out.insert(name.to_string(), value);
            }
        }
        out
    }

    fn supervisor(&mut self, v: &Val<'_>) -> SupervisorSettings {
        let mut s = SupervisorSettings::default();
        let Some(t) = self.table(v, "supervisor") else {
            return s;
        };
        for (k, v) in t.iter() {
            let key = &join("supervisor", k.get_ref());
            match k.get_ref().as_ref() {
                "control_socket" => set(&mut s.control_socket, self.path(v, key)),
                "http" => s.http = self.parsed(v, key, values::socket_addr),
                "log_dir" => s.log_dir = self.path(v, key),
                "log_max_bytes" => match self.size(v, key) {
                    Some(0) => self.err(v.span(), key, "must be greater than 0"),
                    n => set(&mut s.log_max_bytes, n),
                },
                "log_backups" => {
                    let n = self.uint(v, key, u32::MAX.into());
                    set(&mut s.log_backups, n.map(|n| n as u32));
                }
                "stop_timeout" => set(&mut s.stop_timeout, self.duration(v, key)),
                "shutdown_timeout" => set(&mut s.shutdown_timeout, self.duration(v, key)),
                "rlimits" => s.rlimits = self.rlimits(v, key),
                _ => self.unknown(k, key, SUPERVISOR_KEYS),
            }
        }
        s
    }
}
