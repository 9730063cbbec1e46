//! Accepting clients and answering their HTTP requests: authentication,
//! the Host check, `/json` forwarding with URL rewriting, and handing
//! WebSocket upgrades to [`crate::ws`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::gate::Slot;
use crate::upstream::UpstreamError;
use crate::{rewrite, ws, Context};
use corral_serve::{strip_token, Need};

/// Request bodies are tiny in CDP's HTTP API; refuse anything large.
const MAX_REQUEST_BODY: usize = 64 * 1024;

pub type Body = Full<Bytes>;

/// A JSON error answer (`corral-serve`'s one shape), closing the connection.
pub fn error(status: StatusCode, error: &str, detail: impl Into<String>) -> Response<Body> {
    let mut resp = corral_serve::json_error(status, error, &detail.into());
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

pub fn upstream_error(e: &UpstreamError) -> Response<Body> {
    match e {
        UpstreamError::Down { .. } => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "chromium is down",
            e.to_string(),
        ),
        UpstreamError::Protocol { .. } => error(
            StatusCode::BAD_GATEWAY,
            "bad answer from chromium",
            e.to_string(),
        ),
    }
}

/// Accepts connections until the process ends.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) {
    // Accept errors (EMFILE and friends) back off instead of spinning; the
    // connections we have keep being served.
    let mut acceptor = corral_serve::listen::Acceptor::new(listener, "corral-cdp");
    loop {
        let (stream, peer) = acceptor.accept().await;
        let _ = stream.set_nodelay(true);
        let full = ctx.gate.open() >= ctx.gate.max();
        tokio::spawn(connection(stream, peer, ctx.clone()));
        if full {
            // At the cap, the newcomer evicts the oldest idle connection,
            // whose task then closes it. Let both run before accepting the
            // next one: otherwise a flood is accepted faster than evicted
            // sockets close, and the descriptors overshoot the cap by as
            // much as the machine is loaded.
            tokio::task::yield_now().await;
        }
    }
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, ctx: Arc<Context>) {
    let Some((slot, evicted)) = ctx.gate.admit() else {
        let body = format!(
            "{{\"error\":\"too many connections\",\"detail\":\"corral-cdp serves at most {} connections and all are in use\"}}\n",
            ctx.gate.max()
        );
        let head = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(format!("{head}{body}").as_bytes()).await;
        return;
    };
    let ctx_max = ctx.gate.max();
    let local = stream.local_addr().ok();
    // Kept to tell an evicted idle connection why, while hyper still owns
    // (and keeps open) the socket.
    let raw = stream.as_raw_fd();
    let slot = Arc::new(slot);
    let service = {
        let slot = slot.clone();
        service_fn(move |req| {
            slot.busy();
            let (ctx, slot) = (ctx.clone(), slot.clone());
            async move { Ok::<_, Infallible>(handle(req, &ctx, slot, local, peer).await) }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(crate::HEADER_TIMEOUT)
        // Every HTTP answer carries `Connection: close` itself (error(),
        // forward()); with keep_alive(false) hyper would also append
        // `close` to the 101, and strict clients (tungstenite: Rust CDP
        // clients, corral-snapshot itself) refuse `Connection: Upgrade, close`.
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = &mut conn => {
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        }
        // Err means the sender was dropped because a request came: not an eviction.
        Ok(()) = evicted => {
            tracing::debug!(%peer, "idle connection closed to make room");
            // `conn` is still alive here, so `raw` is still this socket.
            refuse_evicted(raw, ctx_max);
        }
    }
}

/// Tells an evicted idle connection why it is closed, best effort: it sent
/// nothing yet, so a complete HTTP answer is the clearest refusal. Never
/// blocks (MSG_DONTWAIT) on a peer that does not read.
fn refuse_evicted(fd: std::os::fd::RawFd, max: usize) {
    let body = format!(
        "{{\"error\":\"too many connections\",\"detail\":\"this idle connection was closed to make room: corral-cdp serves at most {max} connections\"}}\n"
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // SAFETY: `fd` is an open socket owned by the connection future, which
    // outlives this call; send and shutdown do not take ownership.
    unsafe {
        libc::send(
            fd,
            answer.as_ptr().cast(),
            answer.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        );
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

async fn handle(
    req: Request<Incoming>,
    ctx: &Context,
    slot: Arc<Slot>,
    local: Option<SocketAddr>,
    peer: SocketAddr,
) -> Response<Body> {
    if let Err(refused) = ctx.policy.admit(&req, Some(peer), Need::Credential) {
        let (mut parts, body) = refused.response().into_parts();
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Response::from_parts(parts, body);
    }
    let host = match req.headers().get(header::HOST).map(|h| h.to_str()) {
        Some(Ok(h)) => h.to_string(),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "invalid Host header", "not ASCII"),
        None => local
            .map(|a| a.to_string())
            .unwrap_or_else(|| "localhost".into()),
    };
    if !rewrite::valid_host(&host) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid Host header",
            "expected a host name or address, with an optional port",
        );
    }
    let secure = req
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    if req.headers().contains_key(header::UPGRADE) {
        return ws::upgrade(req, ctx, slot).await;
    }
    forward(req, ctx, &host, secure).await
}

/// Hop-by-hop headers, and Host: never forwarded as the client sent them.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    const HOP: [HeaderName; 8] = [
        header::CONNECTION,
        header::HOST,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::CONTENT_LENGTH,
    ];
    for h in HOP {
        headers.remove(h);
    }
    headers.remove("keep-alive");
    // The client's token is for the bridge; Chrome has no use for it.
    headers.remove(header::AUTHORIZATION);
}

/// Forwards a plain HTTP request to Chrome and rewrites the answer's URLs.
async fn forward(
    req: Request<Incoming>,
    ctx: &Context,
    host: &str,
    secure: bool,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
                e.to_string(),
            )
        }
    };
    let path = parts.uri.path();
    let path_and_query = match strip_token(parts.uri.query()) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    let deadline = ctx.wait_ready.map(|d| Instant::now() + d);
    let resp = match ctx
        .upstream
        .request(parts.method, &path_and_query, headers, body, deadline)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(path, "{e}");
            return upstream_error(&e);
        }
    };
    let (mut parts, body) = resp.into_parts();
    let body = match std::str::from_utf8(&body) {
        Ok(text) if path.starts_with("/json") => Bytes::from(rewrite::ws_urls(
            text,
            &ctx.upstream.authority,
            host,
            secure,
        )),
        _ => body,
    };
    strip_hop_by_hop(&mut parts.headers);
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Response::from_parts(parts, Full::new(body))
}
