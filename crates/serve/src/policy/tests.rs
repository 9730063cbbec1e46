//! The policy's verdicts, request by request: the attacks of
//! docs/security.md and the clients that must keep working.

use super::*;
use crate::Token;

fn req(pairs: &[(&str, &str)], uri: &str) -> (HeaderMap, Uri) {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    (h, uri.parse().unwrap())
}

fn with_token() -> Policy {
    Policy {
        auth: Auth::Token(TokenSource::fixed(Some(Token::new("s3cret").unwrap()))),
        ..Policy::open()
    }
}

fn status(p: &Policy, pairs: &[(&str, &str)], uri: &str, need: Need) -> u16 {
    let (h, u) = req(pairs, uri);
    match p.check(&h, &u, need) {
        Ok(_) => 200,
        Err(r) => r.status.as_u16(),
    }
}

#[test]
fn cdp_clients_without_origin_pass_on_loopback() {
    let p = Policy::open();
    for host in [
        "127.0.0.1:9222",
        "localhost:9222",
        "[::1]:9222",
        "10.0.0.7:9222",
        "app.localhost",
    ] {
        assert_eq!(
            status(&p, &[("host", host)], "/json/version", Need::Credential),
            200,
            "{host}"
        );
    }
    assert_eq!(
        status(&p, &[], "/json/version", Need::Credential),
        200,
        "no Host (HTTP/1.0)"
    );
}

#[test]
fn a_foreign_origin_is_refused_even_with_the_token() {
    for p in [Policy::open(), with_token()] {
        let h = [
            ("host", "127.0.0.1:9222"),
            ("origin", "http://evil.example"),
            ("authorization", "Bearer s3cret"),
        ];
        assert_eq!(status(&p, &h, "/devtools/browser", Need::Credential), 403);
        let h = [("host", "127.0.0.1:9222"), ("origin", "null")];
        assert_eq!(status(&p, &h, "/", Need::Public), 403, "opaque origin");
    }
}

#[test]
fn allowed_origins_are_normalised() {
    let mut p = Policy::open();
    p.origins = Origins::parse(&[
        "HTTPS://App.Example.com:443/".into(),
        "http://localhost:3000".into(),
    ])
    .unwrap();
    let ok = |p: &Policy, o: &str| {
        status(
            p,
            &[("host", "127.0.0.1:9222"), ("origin", o)],
            "/",
            Need::Credential,
        )
    };
    assert_eq!(ok(&p, "https://app.example.com"), 200);
    assert_eq!(ok(&p, "http://localhost:3000"), 200);
    assert_eq!(ok(&p, "http://localhost:3001"), 403);
    assert_eq!(ok(&p, "http://app.example.com"), 403, "scheme matters");
    assert!(Origins::parse(&["app.example.com".into()]).is_err());
    p.origins = Origins::parse(&["*".into()]).unwrap();
    assert_eq!(ok(&p, "http://anything.example"), 200);
}

#[test]
fn same_origin_only_where_asked_and_never_past_the_host_check() {
    let mut p = Policy::open();
    let h = [
        ("host", "127.0.0.1:6080"),
        ("origin", "http://127.0.0.1:6080"),
    ];
    assert_eq!(status(&p, &h, "/websockify", Need::Credential), 403);
    p.origins.same_origin = true;
    assert_eq!(status(&p, &h, "/websockify", Need::Credential), 200);
    let h = [
        ("host", "127.0.0.1:6080"),
        ("origin", "http://127.0.0.1:6081"),
    ];
    assert_eq!(
        status(&p, &h, "/websockify", Need::Credential),
        403,
        "other port"
    );
    // DNS rebinding: same-origin by construction, stopped by the Host check.
    let h = [
        ("host", "evil.example:6080"),
        ("origin", "http://evil.example:6080"),
    ];
    assert_eq!(status(&p, &h, "/websockify", Need::Credential), 403);
}

#[test]
fn dns_rebinding_is_refused_without_a_token_and_allowed_names_pass() {
    let mut p = Policy::open();
    assert_eq!(
        status(
            &p,
            &[("host", "evil.example:9222")],
            "/json/version",
            Need::Credential
        ),
        403
    );
    p.hosts = Hosts::parse(&["corral.svc.cluster.local".into()]).unwrap();
    assert_eq!(
        status(
            &p,
            &[("host", "Corral.svc.cluster.local.:9222")],
            "/json",
            Need::Credential
        ),
        200
    );
    assert_eq!(
        status(
            &p,
            &[("host", "localhost.evil.example")],
            "/json",
            Need::Credential
        ),
        403
    );
    let t = with_token();
    let h = [
        ("host", "evil.example:9222"),
        ("authorization", "Bearer s3cret"),
    ];
    assert_eq!(
        status(&t, &h, "/json", Need::Credential),
        200,
        "a token admits any name"
    );
    assert_eq!(
        status(
            &t,
            &[("host", "evil.example:9222")],
            "/healthz",
            Need::Public
        ),
        403
    );
    assert_eq!(
        status(
            &t,
            &[("host", "evil.example")],
            "/healthz?token=s3cret",
            Need::Public
        ),
        200
    );
}

#[test]
fn credentials_from_the_header_or_the_query() {
    let p = with_token();
    let host = ("host", "127.0.0.1:9222");
    assert_eq!(status(&p, &[host], "/json", Need::Credential), 401);
    assert_eq!(
        status(
            &p,
            &[host, ("authorization", "Bearer nope")],
            "/json",
            Need::Credential
        ),
        401
    );
    assert_eq!(
        status(
            &p,
            &[host, ("authorization", "Bearer s3cret")],
            "/json",
            Need::Credential
        ),
        200
    );
    assert_eq!(
        status(
            &p,
            &[host],
            "/devtools/browser?token=s3cret",
            Need::Credential
        ),
        200
    );
    assert_eq!(status(&p, &[host], "/healthz", Need::Public), 200);
    let (h, u) = req(&[host], "/json");
    let refusal = p.check(&h, &u, Need::Credential).unwrap_err();
    assert!(refusal
        .response()
        .headers()
        .contains_key(header::WWW_AUTHENTICATE));
}

#[test]
fn no_token_in_force_fails_closed() {
    let p = Policy {
        auth: Auth::Token(TokenSource::fixed(None)),
        ..Policy::open()
    };
    assert_eq!(status(&p, &[], "/json?token=", Need::Credential), 503);
    let p = Policy {
        auth: Auth::Unconfigured {
            how: "set it".into(),
        },
        ..Policy::open()
    };
    assert_eq!(status(&p, &[], "/api/snapshot", Need::Credential), 503);
    assert_eq!(status(&p, &[], "/healthz", Need::Public), 200);
}

#[test]
fn refusals_never_echo_the_token() {
    let p = with_token();
    let (h, u) = req(
        &[("host", "evil.example"), ("origin", "http://evil.example")],
        "/x?token=s3cret",
    );
    let r = p.check(&h, &u, Need::Credential).unwrap_err();
    assert!(!r.detail.contains("s3cret"));
}

#[test]
fn a_malformed_host_is_a_bad_request() {
    let p = Policy::open();
    for h in ["x\",\"evil\":\"y", "a b", "[::1", "host:port", "host:99999"] {
        assert_eq!(
            status(&p, &[("host", h)], "/json", Need::Credential),
            400,
            "{h}"
        );
    }
}

#[test]
fn host_names_are_validated() {
    assert!(Hosts::parse(&["bad host".into()]).is_err());
    assert!(Hosts::parse(&["a.example:80".into()]).is_err());
    assert!(Hosts::parse(&["".into(), "ok.example".into()]).is_ok());
}
