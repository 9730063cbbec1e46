//! WebSocket upgrades: each client socket gets its own fresh upstream
//! connection, and one task relays frames both ways, in order, as text, as
//! they arrive ([`crate::relay`]).
//!
//! The browser endpoint is resolved at every upgrade (`/json/version`), so
//! `ws://HOST:9222/` and any stale `/devtools/browser/<old guid>` reach the
//! browser that runs now: a client holding an old URL works after Chromium
//! restarts. When Chromium dies, the client is closed with 1011 so it knows
//! to reconnect; when either side closes, the other gets the same close.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::gate::Slot;
use crate::relay::Relay;
use crate::server::{error, upstream_error, Body};
use crate::Context;

/// Chrome sends each CDP message as one frame; a full-page screenshot can
/// be 100 MB and more. Playwright's own client allows 256 MiB. The relay
/// holds no message whole, so this bounds nothing in memory: it is the
/// largest message passed on (larger ones are refused with 1009).
pub const MAX_MESSAGE: usize = 256 * 1024 * 1024;
/// Bound on the upstream WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest handshake answer head read from Chrome, and largest refusal body.
const MAX_ANSWER: usize = 64 * 1024;

/// Which upstream path a client's WebSocket path maps to.
async fn target(path: &str, ctx: &Context) -> Result<String, Response<Body>> {
    if path == "/" || path == "/devtools/browser" || path.starts_with("/devtools/browser/") {
        let deadline = ctx.wait_ready.map(|d| Instant::now() + d);
        return ctx
            .upstream
            .browser_path(deadline)
            .await
            .map_err(|e| upstream_error(&e));
    }
    if path.starts_with("/devtools/") {
        return Ok(path.to_string());
    }
    Err(error(
        StatusCode::NOT_FOUND,
        "no such WebSocket endpoint",
        format!("{path}: use / or /devtools/browser/… or /devtools/page/…"),
    ))
}

/// Answers a client's upgrade request: 101 once the upstream socket is
/// open, or an error saying why not (never a hang).
pub async fn upgrade(mut req: Request<Incoming>, ctx: &Context, slot: Arc<Slot>) -> Response<Body> {
    let Some(key) = corral_serve::upgrade::client_key(req.headers()) else {
        let mut resp = corral_serve::upgrade::bad_upgrade();
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    };
    let path = req.uri().path().to_string();
    let upstream_path = match target(&path, ctx).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let (upstream, upstream_early) = match connect_upstream(ctx, &upstream_path).await {
        Ok(up) => up,
        Err(resp) => return resp,
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let ping_every = ctx.ping_interval;
    let mut shutdown = ctx.shutdown.clone();
    let relays = ctx.relays.clone();
    relays.send_modify(|n| *n += 1);
    tokio::spawn(async move {
        let _slot = slot; // the connection counts against the cap while it relays
        let _counted = Relaying(relays);
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("client upgrade failed: {e}");
                return;
            }
        };
        tracing::info!(path = %upstream_path, "websocket open");
        // hyper's upgraded connection is the client's TcpStream with what
        // hyper read past the request: relay on the socket itself.
        let why = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                Relay::new(
                    parts.io.into_inner(),
                    parts.read_buf,
                    upstream,
                    upstream_early,
                )
                .run(ping_every, &mut shutdown)
                .await
            }
            Err(upgraded) => {
                Relay::new(
                    TokioIo::new(upgraded),
                    Bytes::new(),
                    upstream,
                    upstream_early,
                )
                .run(ping_every, &mut shutdown)
                .await
            }
        };
        tracing::info!(path = %upstream_path, "websocket closed: {why}");
    });
    corral_serve::upgrade::switching_protocols(&key, None)
}

/// Counts a relay as running until dropped.
struct Relaying(tokio::sync::watch::Sender<usize>);

impl Drop for Relaying {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Opens a WebSocket to Chromium on a fresh connection: the socket, past
/// the handshake, and any bytes Chrome sent right after its answer.
///
/// The handshake is done here rather than by a WebSocket library because
/// the relay works on the socket itself: nothing may stay behind in a
/// library's buffer. No Origin header (Chrome would check it against
/// --remote-allow-origins) and no compression offered: Chrome's frames pass
/// as they are.
async fn connect_upstream(ctx: &Context, path: &str) -> Result<(TcpStream, Bytes), Response<Body>> {
    let mut stream = ctx
        .upstream
        .connect()
        .await
        .map_err(|e| upstream_error(&e))?;
    let key = generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n",
        ctx.upstream.authority
    );
    let failed = |detail: String| {
        error(
            StatusCode::BAD_GATEWAY,
            "chromium WebSocket handshake failed",
            detail,
        )
    };
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut buf = BytesMut::with_capacity(1024);
        let head_len = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_ANSWER || stream.read_buf(&mut buf).await? == 0 {
                return Ok::<_, std::io::Error>((buf, None));
            }
        };
        Ok((buf, Some(head_len)))
    };
    let (mut buf, head_len) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange).await {
        Ok(Ok((buf, Some(n)))) => (buf, n),
        Ok(Ok(_)) => return Err(failed("no complete HTTP answer".into())),
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Err(_) => {
            return Err(error(
                StatusCode::GATEWAY_TIMEOUT,
                "chromium WebSocket handshake timed out",
                path.to_string(),
            ))
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut answer = httparse::Response::new(&mut headers);
    if !matches!(
        answer.parse(&buf[..head_len]),
        Ok(httparse::Status::Complete(_))
    ) {
        return Err(failed("not an HTTP answer".into()));
    }
    let status = answer.code.unwrap_or(0);
    let header = |name: &str| {
        answer
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    if status == 101 {
        if header("sec-websocket-accept").as_deref()
            != Some(derive_accept_key(key.as_bytes()).as_str())
        {
            return Err(failed("wrong Sec-WebSocket-Accept".into()));
        }
        if header("sec-websocket-extensions").is_some() {
            return Err(failed(
                "Chrome agreed to an extension that was not offered".into(),
            ));
        }
        return Ok((stream, buf.split_off(head_len).freeze()));
    }
    // A refusal (an unknown target, say): pass Chrome's status and words on.
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    let want = head_len + length.unwrap_or(MAX_ANSWER).min(MAX_ANSWER);
    let rest =
        async { while buf.len() < want && stream.read_buf(&mut buf).await.unwrap_or(0) > 0 {} };
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, rest).await;
    let body = &buf[head_len..buf.len().min(want)];
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    Err(error(
        status,
        "chromium refused the WebSocket",
        format!("{path}: {}", String::from_utf8_lossy(body).trim()),
    ))
}
