//! Playwright's `storageState` JSON, typed where corral-snapshot relies on
//! the shape (cookies, origins, localStorage) and passed through as JSON
//! where it does not (IndexedDB databases, which the page scripts read and
//! write). Parsing a file here is also the validation `restore` does before
//! it touches anything.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageState {
    pub cookies: Vec<Cookie>,
    pub origins: Vec<OriginState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub domain: String,
    pub path: String,
    /// Unix seconds; -1 for a session cookie.
    #[serde(serialize_with = "whole_as_integer")]
    pub expires: f64,
    pub http_only: bool,
    pub secure: bool,
    pub same_site: SameSite,
}

/// `-1`, not `-1.0`: the way Playwright and Chrome write whole seconds.
fn whole_as_integer<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OriginState {
    pub origin: String,
    #[serde(default)]
    pub local_storage: Vec<Item>,
    #[serde(default, rename = "indexedDB", skip_serializing_if = "Vec::is_empty")]
    pub indexed_db: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub name: String,
    pub value: String,
}

impl Cookie {
    /// From a CDP `Storage.getCookies` entry, the way Playwright maps them:
    /// no SameSite attribute means Lax, a session cookie expires at -1.
    pub fn from_cdp(c: &Value) -> Option<Cookie> {
        let same_site = match c["sameSite"].as_str() {
            Some("Strict") => SameSite::Strict,
            Some("None") => SameSite::None,
            _ => SameSite::Lax,
        };
        let session = c["session"].as_bool().unwrap_or(false);
        Some(Cookie {
            name: c["name"].as_str()?.to_string(),
            value: c["value"].as_str()?.to_string(),
            domain: c["domain"].as_str()?.to_string(),
            path: c["path"].as_str().unwrap_or("/").to_string(),
            expires: if session {
                -1.0
            } else {
                c["expires"].as_f64().unwrap_or(-1.0)
            },
            http_only: c["httpOnly"].as_bool().unwrap_or(false),
            secure: c["secure"].as_bool().unwrap_or(false),
            same_site,
        })
    }

    /// As a CDP `Storage.setCookies` parameter.
    pub fn to_cdp(&self) -> Value {
        let mut v = serde_json::json!({
            "name": self.name,
            "value": self.value,
            "domain": self.domain,
            "path": self.path,
            "httpOnly": self.http_only,
            "secure": self.secure,
            "sameSite": self.same_site,
        });
        if self.expires >= 0.0 {
            v["expires"] = self.expires.into();
        }
        v
    }
}

impl StorageState {
    /// Parses and checks a file: well-formed JSON of the right shape, every
    /// origin an http(s) origin, every cookie with a name and a domain.
    /// Problems are reported all together, with where they are.
    pub fn parse(text: &str) -> Result<StorageState, String> {
        let state: StorageState =
            serde_json::from_str(text).map_err(|e| format!("not a storage state: {e}"))?;
        let mut problems = Vec::new();
        for (i, c) in state.cookies.iter().enumerate() {
            if c.name.is_empty() && c.value.is_empty() {
                problems.push(format!("cookies[{i}]: empty name and value"));
            }
            if c.domain.is_empty() {
                problems.push(format!("cookies[{i}] ({}): empty domain", c.name));
            }
            if c.same_site == SameSite::None && !c.secure {
                problems.push(format!(
                    "cookies[{i}] ({}): sameSite None needs secure",
                    c.name
                ));
            }
        }
        for (i, o) in state.origins.iter().enumerate() {
            if crate::origins::normalize(&o.origin).as_deref() != Some(o.origin.as_str()) {
                problems.push(format!(
                    "origins[{i}]: {:?} is not an http(s) origin like \"https://example.com\"",
                    o.origin
                ));
            }
            for (j, db) in o.indexed_db.iter().enumerate() {
                if !db["name"].is_string() || !db["version"].is_u64() || !db["stores"].is_array() {
                    problems.push(format!(
                        "origins[{i}].indexedDB[{j}]: needs name, version and stores"
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(state)
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdp_cookies_map_like_playwright() {
        let c = serde_json::json!({"name":"a","value":"1","domain":"x.test","path":"/",
            "expires":-1,"size":2,"httpOnly":true,"secure":false,"session":true,"priority":"Medium"});
        let got = Cookie::from_cdp(&c).unwrap();
        assert_eq!(got.expires, -1.0);
        assert_eq!(got.same_site, SameSite::Lax);
        let json = serde_json::to_value(&got).unwrap();
        assert_eq!(json["httpOnly"], true);
        assert_eq!(json["sameSite"], "Lax");
        assert_eq!(json["expires"].to_string(), "-1");
        assert!(got.to_cdp().get("expires").is_none());
    }

    #[test]
    fn bad_files_are_refused_with_every_reason() {
        assert!(StorageState::parse("{").is_err());
        assert!(StorageState::parse(r#"{"cookies":[]}"#).is_err());
        let bad = r#"{"cookies":[{"name":"a","value":"1","domain":"","path":"/","expires":-1,
            "httpOnly":false,"secure":false,"sameSite":"None"}],
            "origins":[{"origin":"ftp://x","localStorage":[]}]}"#;
        let err = StorageState::parse(bad).unwrap_err();
        assert!(err.contains("empty domain"), "{err}");
        assert!(err.contains("needs secure"), "{err}");
        assert!(err.contains("not an http(s) origin"), "{err}");
        let good = r#"{"cookies":[],"origins":[{"origin":"http://127.0.0.1:8080","localStorage":[{"name":"k","value":"v"}]}]}"#;
        assert_eq!(StorageState::parse(good).unwrap().origins.len(), 1);
    }
}
