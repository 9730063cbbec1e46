//! noVNC's files, read from `--web` and never from outside it, and the
//! one-click entry: `/?token=T` redirects to noVNC's page with the token in
//! the WebSocket path it will open (as Jupyter's banner URL carries its
//! token), view-only when T is the view token.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::{Access, Body};

/// The page a bare `/` leads to, with noVNC's own options.
const PAGE: &str = "vnc.html?autoconnect=true&resize=scale";

pub async fn answer(
    req: &Request<Incoming>,
    root: &Path,
    access: Access,
    authenticated: bool,
) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = corral_serve::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            "the live view serves GET",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    if path == "/" {
        return redirect(&entry(req.uri().query(), access, authenticated));
    }
    let Some(file) = confined(root, path) else {
        return not_found(path);
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let mut r = Response::new(if req.method() == Method::HEAD {
                Full::new(Bytes::new())
            } else {
                Full::new(Bytes::from(bytes))
            });
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&file)),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            // Nobody frames the screen: no click-jacking of the controls.
            h.insert("x-frame-options", HeaderValue::from_static("DENY"));
            r
        }
        Err(_) => not_found(path),
    }
}

/// Where `/` leads: noVNC's page, carrying a valid token into the
/// WebSocket path it opens.
pub fn entry(query: Option<&str>, access: Access, authenticated: bool) -> String {
    let token = query
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    let mut to = PAGE.to_string();
    if let (true, Some(token)) = (authenticated, token) {
        let ws_path = format!("websockify?token={token}");
        let encoded: String = form_urlencoded::byte_serialize(ws_path.as_bytes()).collect();
        to.push_str("&path=");
        to.push_str(&encoded);
        if access == Access::ViewOnly {
            to.push_str("&view_only=true");
        }
    }
    to
}

fn redirect(to: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to) {
        h.insert(header::LOCATION, v);
    }
    // The token is in the Location: keep it out of caches and Referer.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

fn not_found(path: &str) -> Response<Body> {
    corral_serve::json_error(
        StatusCode::NOT_FOUND,
        "not found",
        &format!("{path}: no such file in the live view"),
    )
}

/// The file a URL path names under `root`, or `None` if the path is not a
/// plain relative one (no `..`, `.`, empty or hidden segments, no escapes
/// or backslashes). Symlinks inside the root are the package's own.
pub fn confined(root: &Path, path: &str) -> Option<PathBuf> {
    let mut file = root.to_path_buf();
    for seg in path.trim_start_matches('/').split('/') {
        let plain = !seg.is_empty()
            && !seg.starts_with('.')
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+~@".contains(&b));
        if !plain {
            return None;
        }
        file.push(seg);
    }
    Some(file)
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "ogg" | "oga" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_root() {
        let root = Path::new("/srv/novnc");
        assert_eq!(confined(root, "/app/ui.js"), Some(root.join("app/ui.js")));
        for bad in [
            "/../etc/passwd",
            "/app/../../x",
            "/./vnc.html",
            "/app//ui.js",
            "/.git/config",
            "/a%2f..",
            "/a\\b",
            "/",
        ] {
            assert_eq!(confined(root, bad), None, "{bad}");
        }
    }

    #[test]
    fn the_entry_carries_only_a_valid_token() {
        let to = entry(Some("token=ab12"), Access::Control, true);
        assert_eq!(
            to,
            "vnc.html?autoconnect=true&resize=scale&path=websockify%3Ftoken%3Dab12"
        );
        assert!(entry(Some("token=ab12"), Access::ViewOnly, true).ends_with("&view_only=true"));
        assert_eq!(entry(Some("token=wrong"), Access::Control, false), PAGE);
        assert_eq!(entry(None, Access::Control, false), PAGE);
    }
}
