//! corral-cdp: the bridge that makes Chromium's DevTools reachable.
//!
//! Chromium binds DevTools to 127.0.0.1 and answers only requests whose
//! Host is an IP or `localhost`. The bridge listens on the container's
//! address, forwards `/json` requests with the upstream's own Host and
//! rewrites the WebSocket URLs in the answers to the host the client used,
//! and relays WebSocket connections on fresh upstream sockets, following
//! Chromium across restarts. See `docs/cdp.md`.
//!
//! Modules: `server` accepts clients (the shared accept loop and drain of
//! `corral-serve`) and answers their HTTP requests (policy, `/json`
//! forwarding); [`gate`] is the connection cap that closes the oldest idle
//! connection to make room; [`upstream`] talks HTTP to Chromium's DevTools
//! port on fresh connections, held as down until [`ready`] (corral's word
//! that the chromium program is ready) passes when asked to; [`rewrite`] rewrites the WebSocket URLs in
//! `/json` answers to the host the client used; `ws` turns upgrades into a
//! fresh upstream WebSocket each; `relay` moves frames both ways with
//! back-pressure; `frame` re-frames a byte stream without I/O.

mod frame;
pub mod gate;
pub mod ready;
mod relay;
pub mod rewrite;
mod server;
pub mod upstream;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use ws::MAX_MESSAGE;

/// A client must send its request head within this long.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the bridge needs to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// `127.0.0.1:9223`.
    pub upstream: String,
    /// While Chromium is down, hold requests up to this long (else 503 at once).
    pub wait_ready: Option<Duration>,
    /// Chromium counts as down until corral reports this program ready.
    pub ready: Option<ready::ReadyCheck>,
    /// Who may connect: token, Origin, Host (`corral-serve`).
    pub policy: corral_serve::Policy,
    pub max_connections: usize,
    pub ping_interval: Duration,
}

/// Shared by every connection.
pub struct Context {
    pub upstream: upstream::Upstream,
    pub wait_ready: Option<Duration>,
    pub policy: corral_serve::Policy,
    pub gate: Arc<gate::Gate>,
    pub ping_interval: Duration,
    /// Flips to true when the bridge is stopping: relays close politely.
    pub shutdown: watch::Receiver<bool>,
    /// WebSocket relays running now; shutdown waits for them to close.
    pub relays: watch::Sender<usize>,
}

/// Serves on `listener` until `shutdown` flips to true; then open
/// WebSockets are closed with 1001 and the function returns.
pub async fn run(listener: TcpListener, opts: Options, shutdown: watch::Receiver<bool>) {
    let ctx = Arc::new(Context {
        upstream: upstream::Upstream::with_ready(opts.upstream, opts.ready),
        wait_ready: opts.wait_ready,
        policy: opts.policy,
        gate: gate::Gate::new(opts.max_connections),
        ping_interval: opts.ping_interval,
        shutdown: shutdown.clone(),
        relays: watch::Sender::new(0),
    });
    let mut stop = shutdown;
    tokio::select! {
        _ = server::serve(listener, ctx.clone()) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    // Give relays the chance to send their close frames, boundedly.
    let mut relays = ctx.relays.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(2), relays.wait_for(|n| *n == 0)).await;
}

/// Asks the browser behind `upstream` to close itself (`Browser.close`) and
/// waits until it has (its DevTools connection drops), up to `timeout`.
///
/// Headful Chromium exits on SIGTERM without writing its latest cookies;
/// closing through CDP runs its normal shutdown, which does. corral runs this
/// as Chromium's `pre_stop`. A browser that is not running is fine: there is
/// nothing to close.
pub async fn close_browser(upstream: &str, timeout: Duration) -> Result<(), String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let up = upstream::Upstream::new(upstream);
    let work = async {
        let path = match up.browser_path(None).await {
            Ok(p) => p,
            Err(upstream::UpstreamError::Down { .. }) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let stream = up.connect().await.map_err(|e| e.to_string())?;
        let url = format!("ws://{}{}", up.authority, path);
        let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .map_err(|e| e.to_string())?;
        ws.send(Message::text(r#"{"id":1,"method":"Browser.close"}"#))
            .await
            .map_err(|e| e.to_string())?;
        // Chrome answers, then drops the connection as it exits: wait for
        // the drop, which is the browser actually going away.
        while let Some(Ok(_)) = ws.next().await {}
        Ok(())
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        format!(
            "the browser did not close within {}",
            humantime::format_duration(timeout)
        )
    })?
}
