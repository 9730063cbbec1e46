//! Diagnostics: what went wrong in a config file, and where.
//!
//! Every problem becomes a [`Diagnostic`] with a 1-based line and column and the
//! dotted key path it belongs to, so that a user can jump straight to it. The
//! parser collects them all in a [`Collector`] instead of stopping at the first,
//! because fixing a config one error per `--check` run is miserable.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters (what editors show).
    pub col: usize,
    /// Dotted key path such as `programs.xvfb.ready.timeout`; empty for a
    /// syntax error that belongs to no key.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        if self.key.is_empty() {
            write!(f, "{path}:{}:{}: {}", self.line, self.col, self.message)
        } else {
            let (line, col, key, msg) = (self.line, self.col, &self.key, &self.message);
            write!(f, "{path}:{line}:{col}: {key}: {msg}")
        }
    }
}

/// Why a config could not be loaded. `main` prints it and exits 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Never empty; sorted by position.
    #[error("{}", render_all(.0))]
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    /// The individual problems (empty for a read error).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid(d) => d,
        }
    }
}

/// One diagnostic per line, then a count line (`supervisor.toml: 3 errors`).
fn render_all(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    let path = diags
        .first()
        .map(|d| d.path.display().to_string())
        .unwrap_or_default();
    let n = diags.len();
    let noun = if n == 1 { "error" } else { "errors" };
    out.push_str(&format!("{path}: {n} {noun}"));
    out
}

/// Accumulates diagnostics for one file, turning byte offsets into line:col.
pub(super) struct Collector<'a> {
    path: &'a Path,
    text: &'a str,
    /// Byte offset at which each line starts; binary-searched per diagnostic.
    line_starts: Vec<usize>,
    diags: Vec<Diagnostic>,
}

impl<'a> Collector<'a> {
    pub(super) fn new(path: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Collector {
            path,
            text,
            line_starts,
            diags: Vec::new(),
        }
    }

    /// 1-based (line, col) of byte `offset`; clamped into the text.
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let col = self.text[self.line_starts[line]..offset].chars().count();
        (line + 1, col + 1)
    }

    /// Records a problem starting at `span.start`.
    pub(super) fn push(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let (line, col) = self.position(span.start);
        self.diags.push(Diagnostic {
            path: self.path.to_path_buf(),
            line,
            col,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// How many problems so far (to tell whether a part of the file added any).
    pub(super) fn len(&self) -> usize {
        self.diags.len()
    }

    /// `Err` with every diagnostic in file order, or `Ok` if there were none.
    pub(super) fn finish(mut self) -> Result<(), ConfigError> {
        if self.diags.is_empty() {
            return Ok(());
        }
        // Stable sort: problems found at the same spot keep the order they were found in.
        self.diags.sort_by_key(|d| (d.line, d.col));
        Err(ConfigError::Invalid(self.diags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_chars() {
        let text = "a = 1\nbé = \"x\"\n";
        let c = Collector::new(Path::new("f.toml"), text);
        assert_eq!(c.position(0), (1, 1));
        assert_eq!(c.position(4), (1, 5));
        assert_eq!(c.position(6), (2, 1));
        // `=` after the two-byte `é` is the 4th character of line 2.
        assert_eq!(c.position(text.rfind(" =").unwrap() + 1), (2, 4));
        assert_eq!(c.position(999), (3, 1));
    }

    #[test]
    fn display_lists_every_problem_and_a_count() {
        let mut c = Collector::new(Path::new("supervisor.toml"), "x = 1\ny = 2\n");
        c.push(6..7, "y", "second");
        c.push(0..1, "x", "first");
        let err = c.finish().unwrap_err();
        assert_eq!(
            err.to_string(),
            "supervisor.toml:1:1: x: first\nsupervisor.toml:2:1: y: second\nsupervisor.toml: 2 errors"
        );
        assert_eq!(err.diagnostics().len(), 2);
    }

    #[test]
    fn read_error_names_the_file() {
        let err = ConfigError::Read {
            path: PathBuf::from("/nope.toml"),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert!(err
            .to_string()
            .starts_with("cannot read config /nope.toml: "));
    }
}
