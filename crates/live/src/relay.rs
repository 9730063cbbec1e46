//! The WebSocket from noVNC to the VNC server: RFB bytes carried as binary
//! messages one way and raw TCP the other, as websockify does. The VNC
//! server is connected before the 101 is sent, so a client learns at once
//! (502 with a reason) when it is down.

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::{Access, Body};

/// One read from the VNC server becomes one message of at most this size.
const CHUNK: usize = 64 * 1024;

fn listed(req: &Request<Incoming>, name: header::HeaderName, want: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(want))
}

pub async fn upgrade(
    mut req: Request<Incoming>,
    upstream: &str,
    access: Access,
    peer: SocketAddr,
) -> Response<Body> {
    let key = req.headers().get("sec-websocket-key").cloned();
    let valid = listed(&req, header::UPGRADE, "websocket")
        && listed(&req, header::CONNECTION, "upgrade")
        && req
            .headers()
            .get("sec-websocket-version")
            .map(|v| v.as_bytes())
            == Some(b"13");
    let Some(key) = key.filter(|_| valid) else {
        return corral_serve::json_error(
            StatusCode::BAD_REQUEST,
            "bad WebSocket upgrade",
            "needs Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Version: 13 and Sec-WebSocket-Key",
        );
    };
    // noVNC offers the "binary" subprotocol; a browser fails the
    // connection if an offered protocol is not answered.
    let binary = listed(&req, header::SEC_WEBSOCKET_PROTOCOL, "binary");
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
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tracing::info!(%peer, ?access, "live view open");
        let why = carry(ws, vnc).await;
        tracing::info!(%peer, ?access, "live view closed: {why}");
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if binary {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("binary"),
        );
    }
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .expect("base64 is a valid header"),
    );
    r
}

/// Relays until either side ends; says which.
async fn carry<S>(ws: WebSocketStream<S>, vnc: TcpStream) -> &'static str
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut vnc_rx, mut vnc_tx) = vnc.into_split();
    let to_vnc = async {
        while let Some(msg) = ws_rx.next().await {
            match msg {
                Ok(Message::Binary(b)) => {
                    if vnc_tx.write_all(&b).await.is_err() {
                        return "the VNC server stopped reading";
                    }
                }
                Ok(Message::Close(_)) => return "the viewer closed",
                Ok(Message::Text(_)) => return "the viewer sent text (only binary RFB is relayed)",
                Ok(_) => {} // pings are answered by tungstenite
                Err(_) => return "the viewer's connection failed",
            }
        }
        "the viewer went away"
    };
    let to_viewer = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match vnc_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return "the VNC server closed",
                Ok(n) => {
                    if ws_tx
                        .send(Message::binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return "the viewer stopped reading";
                    }
                }
            }
        }
    };
    let why = tokio::select! { w = to_vnc => w, w = to_viewer => w };
    let _ = ws_tx.close().await;
    why
}
