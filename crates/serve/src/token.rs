//! A bearer token: `Authorization: Bearer TOKEN` or `?token=`, compared in
//! constant time, never shown by `Debug`.

use std::fmt;
use std::path::Path;

use subtle::ConstantTimeEq;

/// A secret; `Debug` does not show it.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    pub fn new(secret: &str) -> Result<Token, String> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err("the token is empty".into());
        }
        Ok(Token(secret.as_bytes().to_vec()))
    }

    /// From `--token-file` if given, else the environment variable `env_name`
    /// (its value passed as `env`), else none.
    pub fn load(
        file: Option<&Path>,
        env_name: &str,
        env: Option<String>,
    ) -> Result<Option<Token>, String> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
            return Token::new(&text)
                .map(Some)
                .map_err(|e| format!("token file {}: {e}", path.display()));
        }
        match env {
            Some(v) => Token::new(&v)
                .map(Some)
                .map_err(|e| format!("{env_name}: {e}")),
            None => Ok(None),
        }
    }

    /// A short, non-secret digest, to tell two tokens apart in logs' logic
    /// without revealing either (FNV-1a; not for security decisions).
    pub fn fingerprint(&self) -> u64 {
        self.0.iter().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
        })
    }

    fn matches(&self, offered: &[u8]) -> bool {
        self.0.ct_eq(offered).into()
    }

    /// Does the request carry this token (header or query)?
    pub fn admits(&self, authorization: Option<&str>, query: Option<&str>) -> bool {
        let from_header = authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| self.matches(t.trim().as_bytes()));
        let from_query = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|kv| kv.strip_prefix("token="))
            .any(|t| self.matches(t.as_bytes()));
        // Both are evaluated: the time taken does not say which one was tried.
        from_header | from_query
    }
}

/// The query without any `token=` parameter; `None` if nothing is left.
pub fn strip_token(query: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = query?
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("token="))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_or_query() {
        let t = Token::new("s3cret\n").unwrap();
        assert!(t.admits(Some("Bearer s3cret"), None));
        assert!(t.admits(None, Some("a=1&token=s3cret")));
        assert!(!t.admits(Some("Bearer nope"), Some("token=nope")));
        assert!(!t.admits(Some("Basic s3cret"), None));
        assert!(!t.admits(None, None));
        assert!(!t.admits(Some("Bearer s3cre"), None));
    }

    #[test]
    fn debug_hides_the_secret() {
        assert!(!format!("{:?}", Token::new("s3cret").unwrap()).contains("s3cret"));
    }

    #[test]
    fn empty_tokens_are_refused() {
        assert!(Token::new("  \n").is_err());
        assert!(Token::load(None, "X_TOKEN", Some(String::new())).is_err());
        assert!(Token::load(None, "X_TOKEN", None).unwrap().is_none());
    }

    #[test]
    fn token_is_cut_from_the_query() {
        assert_eq!(strip_token(Some("token=x")), None);
        assert_eq!(strip_token(Some("a=1&token=x&b=2")), Some("a=1&b=2".into()));
        assert_eq!(strip_token(Some("about:blank")), Some("about:blank".into()));
        assert_eq!(strip_token(None), None);
    }
}
