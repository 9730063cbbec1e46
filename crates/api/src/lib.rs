//! corral-api: the HTTP control API of a corral container — processes,
//! files, logs, programs — secure by default. See `docs/api.md`; the
//! contract is `api/openapi.yaml`, served at `/spec.yaml`.
//!
//! Modules: `router` is the one route table (and the request policy in
//! front of it); [`http`] the request and answer helpers and the error
//! shape; [`procs`] `/process/*` (exec, spawn, output streams, signals,
//! users); [`fs`] `/fs/*` (confinement to `--fs-root`, reads, atomic writes,
//! uploads, zip in and out); [`logs`] `/logs/stream`; [`programs`]
//! `/programs` and `/chromium/restart` over corral's control socket through
//! [`control`]; [`live`] `/live`, the live view's hand-over between an
//! agent and a human (a lease corral-live enforces); [`chromium`] the kept
//! flags and extensions and the `chromium-launch` subcommand that applies
//! them; [`recording`] `/recording/*` (screen recordings by ffmpeg as a
//! corral program); [`computer`] `/computer/*` (screenshots, mouse,
//! keyboard on the X display); [`display`] `/display` (the screen's size).

pub mod chromium;
pub mod computer;
pub mod control;
pub mod display;
pub mod fs;
pub mod http;
pub mod kept;
pub mod live;
pub mod logs;
pub mod procs;
pub mod programs;
pub mod recording;
mod router;

use std::sync::Arc;

use corral_serve::Policy;
use tokio::net::TcpListener;

pub use router::route;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// On SIGTERM, requests in flight get this long to finish (corral's
/// stop_timeout for the program is 10 s by default).
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(8);

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
    /// The live view's control lease (`/live`).
    pub live: live::Live,
    /// Kept flags and extensions (`/chromium/flags`, `/chromium/…extensions…`).
    pub chromium: chromium::Config,
    /// `/recording/*`: settings and the start/stop lock.
    pub recording: recording::Recorder,
    /// The X display `/computer/*` and `/display` act on.
    pub screen: Arc<computer::Screen>,
    /// Where `PATCH /display` keeps the size for the next starts.
    pub display_state: display::Saved,
}

/// Serves until `stop` resolves, then lets the requests in flight finish
/// (bounded: `corral_serve::listen`).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    stop: impl std::future::Future<Output = ()>,
) {
    use corral_serve::listen::{serve_http1, HttpOptions};
    use hyper::service::service_fn;
    let opts = HttpOptions {
        max_connections: MAX_CONNECTIONS,
        drain: DRAIN,
        ..HttpOptions::new("corral-api")
    };
    serve_http1(listener, opts, stop, move |peer| {
        let state = state.clone();
        service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            // The peer, for the policy's refusal log lines.
            req.extensions_mut().insert(peer);
            let state = state.clone();
            async move { Ok::<_, std::convert::Infallible>(route(req, &state).await) }
        })
    })
    .await
}
