//! A small Chrome DevTools Protocol client: one WebSocket to the browser
//! endpoint, calls matched to answers by id, sessions (flat mode) by
//! `sessionId`, and events broadcast to whoever listens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Storage of a busy profile can be large; Chrome sends it as one message.
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CdpError {
    #[error("cannot reach chromium at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{method}: {message}")]
    Protocol { method: String, message: String },
    #[error("{0}: no answer in time")]
    Timeout(String),
    #[error("the DevTools connection closed")]
    Closed,
}

/// An event from the browser or one of its sessions.
#[derive(Debug, Clone)]
pub struct Event {
    pub method: String,
    pub session: Option<String>,
    pub params: Value,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

pub struct Cdp {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    events: broadcast::Sender<Event>,
    next_id: AtomicU64,
    timeout: Duration,
    /// Set by the reader when the connection ends, before it fails the
    /// waiting calls: a call made after that fails at once instead of
    /// waiting out its timeout (a journal must notice a restart quickly).
    closed: Arc<AtomicBool>,
}

/// `http://host:port` → the browser's `webSocketDebuggerUrl`, via
/// `/json/version`; a `ws://` URL is used as it is.
pub async fn browser_ws_url(cdp: &str) -> Result<String, CdpError> {
    if cdp.starts_with("ws://") {
        return Ok(cdp.to_string());
    }
    let unreachable = |detail: String| CdpError::Unreachable {
        url: cdp.to_string(),
        detail,
    };
    let authority = cdp
        .strip_prefix("http://")
        .ok_or_else(|| unreachable("--cdp must be an http:// or ws:// URL".into()))?
        .trim_end_matches('/');
    let v = tokio::time::timeout(
        Duration::from_secs(10),
        corral_serve::devtools::json_version(authority),
    )
    .await
    .map_err(|_| unreachable("/json/version: no answer in time".into()))?
    .map_err(unreachable)?;
    v["webSocketDebuggerUrl"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| unreachable("/json/version has no webSocketDebuggerUrl".into()))
}

impl Cdp {
    /// Connects to the browser endpoint behind `cdp` (http:// or ws://).
    pub async fn connect(cdp: &str, timeout: Duration) -> Result<Cdp, CdpError> {
        let url = browser_ws_url(cdp).await?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
            .await
            .map_err(|e| CdpError::Unreachable {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let pending: Pending = Arc::default();
        let (events, _) = broadcast::channel(4096);
        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let (p, ev) = (pending.clone(), events.clone());
        let closed = Arc::new(AtomicBool::new(false));
        let gone = closed.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if let Some(id) = v["id"].as_u64() {
                    let waiter = p.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                    if let Some(tx) = waiter {
                        let result = match v.get("error") {
                            Some(err) => {
                                Err(err["message"].as_str().unwrap_or("error").to_string())
                            }
                            None => Ok(v["result"].clone()),
                        };
                        let _ = tx.send(result);
                    }
                } else if let Some(method) = v["method"].as_str() {
                    let _ = ev.send(Event {
                        method: method.to_string(),
                        session: v["sessionId"].as_str().map(str::to_string),
                        params: v["params"].clone(),
                    });
                }
            }
            // Closed: every caller still waiting learns it now, and every
            // later one at once.
            gone.store(true, Ordering::SeqCst);
            p.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        Ok(Cdp {
            out,
            pending,
            events,
            next_id: AtomicU64::new(1),
            timeout,
            closed,
        })
    }

    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Calls `method` (in `session` if given) and waits for its result.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, CdpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        if self.closed.load(Ordering::SeqCst) {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            return Err(CdpError::Closed);
        }
        self.out
            .send(Message::text(msg.to_string()))
            .map_err(|_| CdpError::Closed)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(message))) => Err(CdpError::Protocol {
                method: method.to_string(),
                message,
            }),
            Ok(Err(_)) => Err(CdpError::Closed),
            Err(_) => {
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                Err(CdpError::Timeout(method.to_string()))
            }
        }
    }

    /// Sends without waiting for the answer (event handlers that must not block).
    pub fn send(&self, session: Option<&str>, method: &str, params: Value) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let _ = self.out.send(Message::text(msg.to_string()));
    }
}

impl Drop for Cdp {
    fn drop(&mut self) {
        let _ = self.out.send(Message::Close(None));
    }
}
