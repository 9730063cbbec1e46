//! corral-api: the HTTP control API of a corral container — processes,
//! files, logs, programs — secure by default. See `docs/api.md`; the
//! contract is `api/openapi.yaml`, served at `/spec.yaml`.

pub mod control;
pub mod fs;
pub mod http;
pub mod logs;
pub mod procs;
pub mod programs;
mod router;

use std::sync::Arc;

use corral_serve::Policy;
use tokio::net::TcpListener;

pub use router::route;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// Everything the handlers share.
pub struct AppState {
    /// Who may call (token, Origin, Host). No token only where allowed
    /// (loopback, or `--insecure-no-auth`).
    pub policy: Policy,
    pub fs: fs::Fs,
    pub procs: procs::Processes,
    pub control: control::Client,
    /// Chromium's DevTools address, for `/chromium/restart`.
    pub cdp: String,
    /// The corral program name of Chromium.
    pub chromium_program: String,
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener, state: Arc<AppState>) {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioIo, TokioTimer};
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        // Past the cap a connection is closed at once; the clients already
        // served keep their share of memory and file descriptors.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!("connection refused: {MAX_CONNECTIONS} already open");
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                // The peer, for the policy's refusal log lines.
                req.extensions_mut().insert(peer);
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(req, &state).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
