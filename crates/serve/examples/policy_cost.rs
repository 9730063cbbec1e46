//! What the request policy costs per request, in nanoseconds: `cargo run
//! --release -p corral-serve --example policy_cost`. bench/cdp/run prints it
//! next to the end-to-end figures (the policy runs once per HTTP request or
//! WebSocket upgrade, never per CDP message).

use std::hint::black_box;
use std::time::Instant;

use corral_serve::{Auth, Need, Policy, Token, TokenSource};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::Uri;

fn per_call(policy: &Policy, headers: &HeaderMap, uri: &Uri) -> f64 {
    const N: u32 = 1_000_000;
    // Warm up, then time N calls; the best of five runs.
    for _ in 0..10_000 {
        let _ = black_box(policy.check(headers, uri, Need::Credential));
    }
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..N {
                let _ = black_box(policy.check(black_box(headers), uri, Need::Credential));
            }
            t.elapsed().as_nanos() as f64 / f64::from(N)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let open = Policy::open();
    let token = Token::new(&"ab".repeat(32)).expect("token");
    let guarded = Policy {
        auth: Auth::Token(TokenSource::fixed(Some(token))),
        ..Policy::open()
    };
    let mut local = HeaderMap::new();
    local.insert("host", HeaderValue::from_static("127.0.0.1:9222"));
    let mut bearer = local.clone();
    let value = format!("Bearer {}", "ab".repeat(32));
    bearer.insert(
        "authorization",
        HeaderValue::from_str(&value).expect("ascii"),
    );
    let mut named = bearer.clone();
    named.insert("host", HeaderValue::from_static("corral.example.com:9222"));
    let mut evil = local.clone();
    evil.insert("origin", HeaderValue::from_static("http://evil.example"));
    let uri: Uri = "/json/version".parse().expect("uri");
    let rows = [
        (
            "loopback client, no token configured",
            per_call(&open, &local, &uri),
        ),
        ("bearer token, IP Host", per_call(&guarded, &bearer, &uri)),
        ("bearer token, named Host", per_call(&guarded, &named, &uri)),
        ("refused: foreign Origin", per_call(&open, &evil, &uri)),
    ];
    for (what, ns) in rows {
        println!("{what}: {ns:.0} ns");
    }
}
