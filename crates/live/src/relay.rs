//! The WebSocket from noVNC to the VNC server: RFB bytes carried as binary
//! messages one way and raw TCP the other, as websockify does. The VNC
//! server is connected and logged in to ([`crate::rfb`]) before the 101 is
//! sent, so a client learns at once (502 with a reason) when it is down;
//! then the viewer is greeted with "no authentication" and the bytes flow,
//! the viewer's through the input gate ([`crate::gate`]): keyboard, mouse
//! and clipboard only from a control-token viewer while a human holds the
//! control lease, never from a view-token one.

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::rfb::{self, Viewer};
use crate::{Access, Body, Options};

/// One read from the VNC server becomes one message of at most this size.
const CHUNK: usize = 64 * 1024;

pub async fn upgrade(
    mut req: Request<Incoming>,
    opts: &Options,
    access: Access,
    peer: SocketAddr,
) -> Response<Body> {
    let upstream = opts.upstream.as_str();
    let Some(key) = corral_serve::upgrade::client_key(req.headers()) else {
        return corral_serve::upgrade::bad_upgrade();
    };
    // noVNC offers the "binary" subprotocol; a browser fails the
    // connection if an offered protocol is not answered.
    let binary =
        corral_serve::upgrade::lists(req.headers(), header::SEC_WEBSOCKET_PROTOCOL, "binary");
    let vnc = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => {
            return corral_serve::json_error(
                StatusCode::BAD_GATEWAY,
                "the VNC server is down",
                &format!("{upstream}: {e}"),
            )
        }
    };
    let _ = vnc.set_nodelay(true);
    let mut vnc = vnc;
    if let Err(e) = log_in(&mut vnc, opts, access).await {
        tracing::warn!(%peer, "{e}");
        return corral_serve::json_error(
            StatusCode::BAD_GATEWAY,
            "cannot log in to the VNC server",
            &e,
        );
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let lease = opts.lease.clone();
    // Logged when it changes for this viewer (not per message): what an
    // operator, and the hand-over tests, look for.
    let last = std::sync::atomic::AtomicU8::new(0);
    let may_input = move || {
        let now = access == Access::Control && lease.held();
        let code = if now { 2 } else { 1 };
        if last.swap(code, std::sync::atomic::Ordering::Relaxed) != code {
            if now {
                tracing::info!(%peer, "viewer input passes: a human holds the live view");
            } else {
                tracing::info!(%peer, ?access, "viewer input dropped: no control lease");
            }
        }
        now
    };
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tracing::info!(%peer, ?access, "live view open");
        let why = carry(ws, vnc, may_input).await;
        tracing::info!(%peer, ?access, "live view closed: {why}");
    });
    corral_serve::upgrade::switching_protocols(&key, binary.then_some("binary"))
}

/// Logs in to the VNC server with the password of the viewer's door.
async fn log_in(vnc: &mut TcpStream, opts: &Options, access: Access) -> Result<(), String> {
    let password = match (&opts.passwords, access) {
        (Some(path), _) => {
            let p = rfb::read_passwords(path)?;
            Some(match access {
                Access::Control => p.control,
                Access::ViewOnly => p.view,
            })
        }
        // Without x11vnc's view-only password nothing makes a viewer
        // view-only but the viewer itself: refuse rather than pretend.
        (None, Access::ViewOnly) => return Err("view-only needs --vnc-password-file".into()),
        (None, Access::Control) => None,
    };
    let handshake = rfb::login(vnc, password.as_deref());
    tokio::time::timeout(std::time::Duration::from_secs(10), handshake)
        .await
        .map_err(|_| "the VNC server did not finish its handshake within 10 s".to_string())?
}

/// The viewer's end of the WebSocket as a byte stream, for the greeting.
struct WsViewer<'a, S> {
    tx: &'a mut futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    rx: &'a mut futures_util::stream::SplitStream<WebSocketStream<S>>,
    /// Bytes received past what the greeting asked for.
    buf: Vec<u8>,
}

impl<S> Viewer for WsViewer<'_, S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.tx
            .send(Message::binary(Bytes::copy_from_slice(bytes)))
            .await
            .map_err(|e| format!("the viewer went away: {e}"))
    }

    async fn recv_exact(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            match self.rx.next().await {
                Some(Ok(Message::Binary(b))) => self.buf.extend_from_slice(&b),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                _ => return Err("the viewer went away during the handshake".into()),
            }
        }
        Ok(self.buf.drain(..n).collect())
    }
}

/// Greets the viewer, then relays until either side ends; says which.
async fn carry<S>(
    ws: WebSocketStream<S>,
    vnc: TcpStream,
    may_input: impl Fn() -> bool + Send,
) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut vnc_rx, mut vnc_tx) = vnc.into_split();
    let mut viewer = WsViewer {
        tx: &mut ws_tx,
        rx: &mut ws_rx,
        buf: Vec::new(),
    };
    let greeted =
        tokio::time::timeout(std::time::Duration::from_secs(30), rfb::greet(&mut viewer)).await;
    let leftover = std::mem::take(&mut viewer.buf);
    match greeted {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return e,
        Err(_) => return "the viewer did not finish its handshake within 30 s".into(),
    }
    let mut gate = crate::gate::Gate::new();
    let mut out = Vec::with_capacity(CHUNK);
    if let Err(e) = gate.feed(&leftover, &mut out, &may_input) {
        return e;
    }
    if vnc_tx.write_all(&out).await.is_err() {
        return "the VNC server stopped reading".into();
    }
    let to_vnc = async {
        while let Some(msg) = ws_rx.next().await {
            match msg {
                Ok(Message::Binary(b)) => {
                    out.clear();
                    if let Err(e) = gate.feed(&b, &mut out, &may_input) {
                        return e;
                    }
                    if !out.is_empty() && vnc_tx.write_all(&out).await.is_err() {
                        return "the VNC server stopped reading".into();
                    }
                }
                Ok(Message::Close(_)) => return "the viewer closed".into(),
                Ok(Message::Text(_)) => {
                    return "the viewer sent text (only binary RFB is relayed)".into()
                }
                Ok(_) => {} // pings are answered by tungstenite
                Err(_) => return "the viewer's connection failed".into(),
            }
        }
        "the viewer went away".to_string()
    };
    let to_viewer = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match vnc_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return "the VNC server closed".to_string(),
                Ok(n) => {
                    if ws_tx
                        .send(Message::binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return "the viewer stopped reading".to_string();
                    }
                }
            }
        }
    };
    let why = tokio::select! { w = to_vnc => w, w = to_viewer => w };
    let _ = ws_tx.close().await;
    if gate.dropped > 0 {
        format!(
            "{why} ({} input messages dropped: no control)",
            gate.dropped
        )
    } else {
        why
    }
}
