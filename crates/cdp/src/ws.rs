//! WebSocket upgrades: each client socket gets its own fresh upstream
//! connection, and one task relays messages both ways, in order, as text.
//!
//! The browser endpoint is resolved at every upgrade (`/json/version`), so
//! `ws://HOST:9222/` and any stale `/devtools/browser/<old guid>` reach the
//! browser that runs now: a client holding an old URL works after Chromium
//! restarts. When Chromium dies, the client is closed with 1011 so it knows
//! to reconnect; when either side closes, the other gets the same close.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::gate::Slot;
use crate::server::{error, upstream_error, Body};
use crate::Context;

/// Chrome sends each CDP message as one frame; a full-page screenshot can
/// be 100 MB and more. Playwright's own client allows 256 MiB.
pub const MAX_MESSAGE: usize = 256 * 1024 * 1024;
/// A peer that does not take a message within this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the upstream WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Read buffer per WebSocket. tungstenite's default (128 KiB) is zero-filled
/// on every read and resident for each of the two sockets of every relay:
/// 16 KiB cut the bridge's memory with 64 clients from 22 to 6.5 MiB and its
/// CPU per message by a sixth (bench/cdp), and large messages still arrive
/// whole (the buffer only sizes each read).
const READ_BUFFER: usize = 16 * 1024;

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

fn header_is(req: &Request<Incoming>, name: header::HeaderName, want: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(want))
}

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
    let key = req.headers().get("sec-websocket-key").cloned();
    let valid = header_is(&req, header::UPGRADE, "websocket")
        && header_is(&req, header::CONNECTION, "upgrade")
        && req
            .headers()
            .get("sec-websocket-version")
            .map(|v| v.as_bytes())
            == Some(b"13");
    let Some(key) = key.filter(|_| valid) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad WebSocket upgrade",
            "needs Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Version: 13 and Sec-WebSocket-Key",
        );
    };
    let path = req.uri().path().to_string();
    let upstream_path = match target(&path, ctx).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let upstream = match connect_upstream(ctx, &upstream_path).await {
        Ok(ws) => ws,
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
        let client = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(ws_config()),
        )
        .await;
        tracing::info!(path = %upstream_path, "websocket open");
        let why = relay(client, upstream, ping_every, &mut shutdown).await;
        tracing::info!(path = %upstream_path, "websocket closed: {why}");
    });
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        "sec-websocket-accept",
        HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .expect("base64 is a valid header"),
    );
    resp
}

type Upstream = WebSocketStream<tokio::net::TcpStream>;

/// Counts a relay as running until dropped.
struct Relaying(tokio::sync::watch::Sender<usize>);

impl Drop for Relaying {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

async fn connect_upstream(ctx: &Context, path: &str) -> Result<Upstream, Response<Body>> {
    let stream = ctx
        .upstream
        .connect()
        .await
        .map_err(|e| upstream_error(&e))?;
    let url = format!("ws://{}{}", ctx.upstream.authority, path);
    // No Origin header (Chrome would check it against --remote-allow-origins)
    // and no compression offered: Chrome's one-frame messages pass as they are.
    let handshake = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()));
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(resp))) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let detail = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).trim().to_string())
                .unwrap_or_default();
            Err(error(
                status,
                "chromium refused the WebSocket",
                format!("{path}: {detail}"),
            ))
        }
        Ok(Err(e)) => Err(error(
            StatusCode::BAD_GATEWAY,
            "chromium WebSocket handshake failed",
            e.to_string(),
        )),
        Err(_) => Err(error(
            StatusCode::GATEWAY_TIMEOUT,
            "chromium WebSocket handshake timed out",
            path.to_string(),
        )),
    }
}

fn close(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    }))
}

/// Sends with a bound: a peer that stops reading cannot hold the relay.
async fn send<S>(sink: &mut S, msg: Message) -> Result<(), String>
where
    S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
{
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("peer not reading".into()),
    }
}

/// Relays until one side closes or fails; returns why it ended.
async fn relay<C>(
    mut client: WebSocketStream<C>,
    mut upstream: Upstream,
    ping_every: Duration,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> String
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    loop {
        tokio::select! {
            msg = client.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if let Err(e) = send(&mut upstream, Message::Text(t)).await {
                        let _ = send(&mut client, close(CloseCode::Error, "chromium went away")).await;
                        return format!("upstream send failed: {e}");
                    }
                }
                // Chrome drops connections that send binary frames: pass
                // UTF-8 on as text, refuse the rest.
                Some(Ok(Message::Binary(b))) => match String::from_utf8(b.to_vec()) {
                    Ok(t) => {
                        if let Err(e) = send(&mut upstream, Message::text(t)).await {
                            let _ = send(&mut client, close(CloseCode::Error, "chromium went away")).await;
                            return format!("upstream send failed: {e}");
                        }
                    }
                    Err(_) => {
                        let _ = send(&mut client, close(CloseCode::Unsupported, "CDP messages are UTF-8 text")).await;
                        let _ = send(&mut upstream, close(CloseCode::Normal, "client sent binary data")).await;
                        return "client sent non-UTF-8 binary".into();
                    }
                },
                Some(Ok(Message::Close(frame))) => {
                    let _ = send(&mut upstream, Message::Close(frame.clone())).await;
                    // Complete the client's closing handshake: tungstenite
                    // queued the echo, and dropping the socket unflushed would
                    // make the client see 1006 instead of its own code.
                    let finish = async {
                        // SinkExt::close flushes the echo tungstenite queued;
                        // the inherent `close` would try to send a second one.
                        let _ = SinkExt::close(&mut client).await;
                        // A FIN after the echo, so the client reads it before EOF.
                        let _ = tokio::io::AsyncWriteExt::shutdown(client.get_mut()).await;
                    };
                    let _ = tokio::time::timeout(SEND_TIMEOUT, finish).await;
                    return format!("client closed ({})", frame.map(|f| u16::from(f.code)).unwrap_or(1005));
                }
                // Pings are answered by tungstenite itself; pongs need nothing.
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = send(&mut upstream, close(CloseCode::Away, "client went away")).await;
                    return format!("client error: {e}");
                }
                None => {
                    let _ = send(&mut upstream, close(CloseCode::Away, "client went away")).await;
                    return "client disconnected".into();
                }
            },
            msg = upstream.next() => match msg {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    if let Err(e) = send(&mut client, m).await {
                        let _ = send(&mut upstream, close(CloseCode::Away, "client went away")).await;
                        return format!("client send failed: {e}");
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let _ = send(&mut client, Message::Close(frame.clone())).await;
                    let _ = tokio::time::timeout(SEND_TIMEOUT, SinkExt::close(&mut upstream)).await;
                    return format!("chromium closed ({})", frame.map(|f| u16::from(f.code)).unwrap_or(1005));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = send(&mut client, close(CloseCode::Error, "chromium went away")).await;
                    return format!("chromium error: {e}");
                }
                None => {
                    let _ = send(&mut client, close(CloseCode::Error, "chromium went away")).await;
                    return "chromium disconnected".into();
                }
            },
            _ = ping.tick() => {
                if let Err(e) = send(&mut client, Message::Ping(Default::default())).await {
                    let _ = send(&mut upstream, close(CloseCode::Away, "client went away")).await;
                    return format!("ping failed: {e}");
                }
            }
            _ = shutdown.changed() => {
                let _ = send(&mut client, close(CloseCode::Away, "corral-cdp is shutting down")).await;
                let _ = send(&mut upstream, close(CloseCode::Away, "corral-cdp is shutting down")).await;
                return "bridge shutting down".into();
            }
        }
    }
}
