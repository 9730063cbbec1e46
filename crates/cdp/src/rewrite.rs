//! Rewriting the WebSocket URLs in Chrome's `/json` answers.
//!
//! Chrome builds `webSocketDebuggerUrl` and the `ws=` of
//! `devtoolsFrontendUrl` from the Host it was sent. The bridge sends the
//! upstream's own address (Chrome refuses other names), so every such URL
//! names `127.0.0.1:9223`, which a client outside the container cannot reach.
//! They are rewritten to the host the client used, with `wss` when the
//! client came through TLS (`X-Forwarded-Proto: https`).

/// Is `host` safe to splice into a URL inside a JSON string? Host names,
/// IPv4, bracketed IPv6 and a port: nothing that could close the string.
pub fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
}

/// Rewrites `ws://UPSTREAM` and `ws=UPSTREAM` to the client's host.
pub fn ws_urls(body: &str, upstream: &str, client_host: &str, secure: bool) -> String {
    let scheme = if secure { "wss" } else { "ws" };
    body.replace(
        &format!("ws://{upstream}"),
        &format!("{scheme}://{client_host}"),
    )
    .replace(
        &format!("ws={upstream}"),
        &format!("{scheme}={client_host}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERSION: &str = r#"{"Browser":"Chrome/156","webSocketDebuggerUrl":"ws://127.0.0.1:9223/devtools/browser/abc"}"#;
    const LIST: &str = r#"[{"devtoolsFrontendUrl":"/devtools/inspector.html?ws=127.0.0.1:9223/devtools/page/P1","id":"P1","webSocketDebuggerUrl":"ws://127.0.0.1:9223/devtools/page/P1"}]"#;

    #[test]
    fn rewrites_to_the_clients_host() {
        let out = ws_urls(VERSION, "127.0.0.1:9223", "browser.example:9222", false);
        assert!(out.contains(r#""ws://browser.example:9222/devtools/browser/abc""#));
        let out = ws_urls(LIST, "127.0.0.1:9223", "10.0.0.5:9222", false);
        assert!(out.contains("inspector.html?ws=10.0.0.5:9222/devtools/page/P1"));
        assert!(out.contains(r#""ws://10.0.0.5:9222/devtools/page/P1""#));
        assert!(!out.contains("9223"));
    }

    #[test]
    fn wss_behind_tls() {
        let out = ws_urls(LIST, "127.0.0.1:9223", "cdp.example", true);
        assert!(out.contains("inspector.html?wss=cdp.example/devtools/page/P1"));
        assert!(out.contains(r#""wss://cdp.example/devtools/page/P1""#));
    }

    #[test]
    fn other_text_is_left_alone() {
        let body = r#"{"url":"http://127.0.0.1:9223/x","title":"ws:// is a scheme"}"#;
        assert_eq!(ws_urls(body, "127.0.0.1:9223", "h", false), body);
    }

    #[test]
    fn hosts_that_could_break_json_are_refused() {
        assert!(valid_host("localhost:9222"));
        assert!(valid_host("[::1]:9222"));
        assert!(valid_host("chrome-service.ns.svc.cluster.local"));
        assert!(!valid_host(r#"x","evil":"y"#));
        assert!(!valid_host("a b"));
        assert!(!valid_host(""));
    }
}
