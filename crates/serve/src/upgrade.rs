//! The server side of a WebSocket handshake (RFC 6455 §4.2), shared by the
//! two listeners that relay WebSockets (corral-cdp to Chromium, corral-live
//! to x11vnc): what makes a request a valid upgrade, and the 101 that
//! accepts one. What each does with the connection after that is its own.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::{json_error, JsonBody};

/// Whether header `name` lists `want` (comma-separated, any case), as
/// `Connection: keep-alive, Upgrade` lists `upgrade`.
pub fn lists(headers: &HeaderMap, name: HeaderName, want: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(want))
}

/// The client's `Sec-WebSocket-Key` if the request is a valid version-13
/// upgrade; answer [`bad_upgrade`] when it is not.
pub fn client_key(headers: &HeaderMap) -> Option<HeaderValue> {
    let valid = lists(headers, header::UPGRADE, "websocket")
        && lists(headers, header::CONNECTION, "upgrade")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(|v| v.as_bytes())
            == Some(b"13");
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| valid)
        .cloned()
}

/// The 400 for a request that is not a valid upgrade, saying what one needs.
pub fn bad_upgrade() -> Response<JsonBody> {
    json_error(
        StatusCode::BAD_REQUEST,
        "bad WebSocket upgrade",
        "needs Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Version: 13 and Sec-WebSocket-Key",
    )
}

/// The 101 accepting an upgrade with `key`, answering `protocol` when the
/// client offered one that is spoken (a browser fails the connection if an
/// offered protocol is not answered). Exactly `Connection: Upgrade`: strict
/// clients refuse anything else there.
pub fn switching_protocols(
    key: &HeaderValue,
    protocol: Option<&'static str>,
) -> Response<JsonBody> {
    let mut r = Response::new(JsonBody::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Some(p) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .expect("base64 is a valid header"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_valid_upgrade_gives_its_key_and_the_rfc_accept() {
        let h = headers(&[
            ("upgrade", "WebSocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        let key = client_key(&h).unwrap();
        let r = switching_protocols(&key, Some("binary"));
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455 §1.3's example.
        assert_eq!(
            r.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(r.headers()[header::CONNECTION], "Upgrade");
        assert_eq!(r.headers()[header::SEC_WEBSOCKET_PROTOCOL], "binary");
    }

    #[test]
    fn anything_less_is_a_400() {
        let full = [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        for skip in 0..full.len() {
            let some: Vec<_> = full
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, p)| *p)
                .collect();
            assert!(
                client_key(&headers(&some)).is_none(),
                "without {:?}",
                full[skip]
            );
        }
        let mut v8 = full;
        v8[2] = ("sec-websocket-version", "8");
        assert!(client_key(&headers(&v8)).is_none());
        assert_eq!(bad_upgrade().status(), StatusCode::BAD_REQUEST);
    }
}
