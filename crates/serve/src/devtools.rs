//! The one `/json/version` client for the sidecars that ask Chromium's
//! DevTools port who it is (corral-api after `/chromium/restart`,
//! corral-snapshot for the browser's WebSocket URL). corral-cdp's upstream
//! client is richer (waiting for Chromium, every method, its own errors)
//! and stays its own.

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

/// `/json/version` is a few hundred bytes: a larger answer is not Chromium.
const MAX_BODY: usize = 1 << 20;

/// `GET /json/version` on `authority` (`127.0.0.1:9223`, sent as Host so
/// Chrome's DNS-rebinding check passes), on a fresh connection, parsed as
/// JSON. Unbounded in time: callers put their own deadline around it.
pub async fn json_version(authority: &str) -> Result<serde_json::Value, String> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get("/json/version")
        .header(hyper::header::HOST, authority)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("/json/version is not JSON: {e}"))
}
