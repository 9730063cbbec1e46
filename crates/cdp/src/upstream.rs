//! Talking to Chromium's DevTools port: plain HTTP/1.1 requests on a fresh
//! connection each (Chrome's server turns a connection into the WebSocket
//! when it sees an upgrade, so nothing is pooled), with the upstream's own
//! address as Host so Chrome's DNS-rebinding check passes.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONNECTION, HOST};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::ready::ReadyCheck;

/// Largest answer read from Chrome (`/json/protocol` is about 1 MiB).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// A request to Chrome that takes longer than this has failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// While waiting for Chrome to come up, try again this often.
const RETRY_INTERVAL: Duration = Duration::from_millis(25);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Nothing answers: Chromium is down or restarting.
    #[error("chromium is not answering on {addr}: {source}")]
    Down {
        addr: String,
        source: std::io::Error,
    },
    /// Something answered, but not as Chrome does.
    #[error("chromium at {addr}: {detail}")]
    Protocol { addr: String, detail: String },
}

#[derive(Debug, Clone)]
pub struct Upstream {
    /// `127.0.0.1:9223`: where to connect, and the Host sent.
    pub authority: String,
    /// When set, Chromium counts as down until corral reports it ready.
    pub ready: Option<ReadyCheck>,
}

impl Upstream {
    pub fn new(authority: impl Into<String>) -> Upstream {
        Upstream {
            authority: authority.into(),
            ready: None,
        }
    }

    /// Like [`Upstream::new`], but held as down until `ready` passes.
    pub fn with_ready(authority: impl Into<String>, ready: Option<ReadyCheck>) -> Upstream {
        Upstream {
            ready,
            ..Upstream::new(authority)
        }
    }

    fn protocol(&self, detail: impl Into<String>) -> UpstreamError {
        UpstreamError::Protocol {
            addr: self.authority.clone(),
            detail: detail.into(),
        }
    }

    /// A request that failed on the wire: a connection closed or reset
    /// before the answer is Chromium going away (it was killed, or is
    /// restarting), so "down", not "answered badly".
    fn failed(&self, e: hyper::Error) -> UpstreamError {
        let gone = e.is_closed()
            || e.is_incomplete_message()
            || e.is_canceled()
            || std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some();
        if gone {
            UpstreamError::Down {
                addr: self.authority.clone(),
                source: std::io::Error::new(std::io::ErrorKind::ConnectionReset, e.to_string()),
            }
        } else {
            self.protocol(format!("request failed: {e}"))
        }
    }

    /// A fresh TCP connection to Chrome, once it is ready (if asked to wait
    /// for corral's word on that).
    pub async fn connect(&self) -> Result<TcpStream, UpstreamError> {
        if let Some(ready) = &self.ready {
            ready.check().await.map_err(|why| UpstreamError::Down {
                addr: self.authority.clone(),
                source: std::io::Error::other(why),
            })?;
        }
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|source| UpstreamError::Down {
                addr: self.authority.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Like [`Upstream::connect`], but while Chrome is down keeps trying
    /// until `deadline` (the `--wait-ready` bound), if one is given.
    pub async fn connect_waiting(
        &self,
        deadline: Option<Instant>,
    ) -> Result<TcpStream, UpstreamError> {
        loop {
            match self.connect().await {
                Err(UpstreamError::Down { .. })
                    if deadline.is_some_and(|d| Instant::now() + RETRY_INTERVAL < d) =>
                {
                    tokio::time::sleep(RETRY_INTERVAL).await;
                }
                other => return other,
            }
        }
    }

    /// One HTTP request; the whole answer, read into memory.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: Bytes,
        deadline: Option<Instant>,
    ) -> Result<Response<Bytes>, UpstreamError> {
        let stream = self.connect_waiting(deadline).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.failed(e))?;
        tokio::spawn(conn);
        headers.insert(
            HOST,
            HeaderValue::from_str(&self.authority).map_err(|e| self.protocol(e.to_string()))?,
        );
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
        let mut req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .body(Full::new(body))
            .map_err(|e| self.protocol(e.to_string()))?;
        *req.headers_mut() = headers;
        let exchange = async {
            let resp = sender.send_request(req).await.map_err(|e| self.failed(e))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| self.protocol(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| self.protocol("no answer in time"))?
    }

    /// The current browser's WebSocket path, `/devtools/browser/<guid>`;
    /// the guid changes every time Chromium starts.
    pub async fn browser_path(&self, deadline: Option<Instant>) -> Result<String, UpstreamError> {
        let resp = self
            .request(
                Method::GET,
                "/json/version",
                HeaderMap::new(),
                Bytes::new(),
                deadline,
            )
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(self.protocol(format!("/json/version answered {}", resp.status())));
        }
        let v: serde_json::Value = serde_json::from_slice(resp.body())
            .map_err(|e| self.protocol(format!("/json/version is not JSON: {e}")))?;
        let url = v["webSocketDebuggerUrl"]
            .as_str()
            .ok_or_else(|| self.protocol("/json/version has no webSocketDebuggerUrl"))?;
        let path = url
            .find("/devtools/browser/")
            .map(|i| url[i..].to_string())
            .ok_or_else(|| self.protocol(format!("unexpected webSocketDebuggerUrl {url:?}")))?;
        Ok(path)
    }
}
