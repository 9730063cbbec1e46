//! Request paths. Every path a client sends names something under the
//! root: "/a/b" and "a/b" both mean ROOT/a/b. They are cleaned lexically
//! (like Go's `path.Clean`): empty and "." components vanish and ".." pops
//! the previous component; a ".." that would climb above the root is
//! refused with 403 before the kernel is asked anything. The kernel
//! (`openat2` with `RESOLVE_BENEATH`) then enforces the same boundary
//! through symlinks, which no lexical check can see.

use crate::http::ApiError;

/// A cleaned path relative to the root: only normal components, so the
/// final component is never "", "." or "..".
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RelPath {
    comps: Vec<String>,
}

impl RelPath {
    /// The root itself.
    pub fn root() -> RelPath {
        RelPath::default()
    }

    /// Cleans a client-supplied path. NUL bytes are refused (400) because
    /// the kernel would silently truncate at them.
    pub fn parse(raw: &str) -> Result<RelPath, ApiError> {
        if raw.contains('\0') {
            return Err(ApiError::bad_request(format!(
                "path {raw:?} contains a NUL byte"
            )));
        }
        let mut comps: Vec<String> = Vec::new();
        for c in raw.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if comps.pop().is_none() {
                        return Err(escapes(raw));
                    }
                }
                c => comps.push(c.to_string()),
            }
        }
        Ok(RelPath { comps })
    }

    /// A path relative to an archive or upload directory: like `parse`,
    /// but absolute paths and every ".." are errors (the reason is
    /// returned), since an archive has no business naming either.
    pub fn parse_member(raw: &str) -> Result<RelPath, &'static str> {
        if raw.contains('\0') {
            return Err("the name contains a NUL byte");
        }
        if raw.contains('\\') {
            // A Windows separator would become part of a file name here;
            // refusing is clearer than guessing.
            return Err("the name contains a backslash");
        }
        if raw.starts_with('/') {
            return Err("absolute path");
        }
        let mut comps = Vec::new();
        for c in raw.split('/') {
            match c {
                "" | "." => {}
                ".." => return Err("a \"..\" component"),
                c => comps.push(c.to_string()),
            }
        }
        Ok(RelPath { comps })
    }

    pub fn is_root(&self) -> bool {
        self.comps.is_empty()
    }

    pub fn components(&self) -> &[String] {
        &self.comps
    }

    /// The final component, `None` for the root.
    pub fn name(&self) -> Option<&str> {
        self.comps.last().map(String::as_str)
    }

    /// The containing directory, `None` for the root.
    pub fn parent(&self) -> Option<RelPath> {
        let (_, rest) = self.comps.split_last()?;
        Some(RelPath {
            comps: rest.to_vec(),
        })
    }

    /// The first `n` components.
    pub fn prefix(&self, n: usize) -> RelPath {
        RelPath {
            comps: self.comps[..n.min(self.comps.len())].to_vec(),
        }
    }

    pub fn join(&self, other: &RelPath) -> RelPath {
        let mut comps = self.comps.clone();
        comps.extend(other.comps.iter().cloned());
        RelPath { comps }
    }

    pub fn child(&self, name: &str) -> RelPath {
        let mut comps = self.comps.clone();
        comps.push(name.to_string());
        RelPath { comps }
    }

    /// For the kernel: "a/b", or "." for the root.
    pub fn rel(&self) -> String {
        if self.comps.is_empty() {
            ".".to_string()
        } else {
            self.comps.join("/")
        }
    }

    /// For answers: "/a/b", or "/" for the root.
    pub fn display(&self) -> String {
        format!("/{}", self.comps.join("/"))
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

pub fn escapes(raw: &str) -> ApiError {
    ApiError::forbidden(format!("path {raw:?} escapes the root"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_path_cleaning() {
        let p = RelPath::parse("/a//./b/../c/").unwrap();
        assert_eq!(p.display(), "/a/c");
        assert_eq!(p.rel(), "a/c");
        assert_eq!(RelPath::parse("a/b").unwrap().display(), "/a/b");
        assert!(RelPath::parse("/").unwrap().is_root());
        assert_eq!(RelPath::parse("").unwrap().rel(), ".");
        assert_eq!(RelPath::parse("a/..").unwrap().display(), "/");
    }

    #[test]
    fn fs_path_dotdot_above_root_is_403() {
        for raw in ["..", "/..", "/a/../..", "../etc/passwd", "a/../../b"] {
            let e = RelPath::parse(raw).unwrap_err();
            assert_eq!(e.status, hyper::StatusCode::FORBIDDEN, "{raw}");
            assert!(e.detail.contains("escapes the root"));
        }
        assert_eq!(
            RelPath::parse("a\0b").unwrap_err().status,
            hyper::StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn fs_path_members() {
        assert_eq!(RelPath::parse_member("./a/b/").unwrap().display(), "/a/b");
        assert!(RelPath::parse_member("/etc/x").is_err());
        assert!(RelPath::parse_member("a/../b").is_err());
        assert!(RelPath::parse_member("a\\b").is_err());
    }
}
