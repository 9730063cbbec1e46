//! corral-live: the live view. It serves noVNC's page and relays noVNC's
//! WebSocket to x11vnc, behind the same request policy as every corral
//! listener (`corral-serve`): a token for the screen, foreign Origins and
//! unknown Host names refused. It replaces websockify, which can do neither
//! the Host check nor keep the token out of its logs (docs/security.md).
//!
//! Modules: [`web`] serves noVNC's files (and the one-click redirect);
//! [`relay`] carries the RFB bytes between the WebSocket and x11vnc;
//! [`rfb`] logs in to x11vnc with a password only corral-live knows (x11vnc
//! answers WebSockets on its own port, Origin unchecked). A second token,
//! if configured, logs in with x11vnc's view-only password.
//! [`gate`] cuts the viewer's RFB stream into messages and drops keyboard,
//! pointer and clipboard input unless a human holds the control lease that
//! corral-api grants ([`lease`]): the live view is view-only by default.

pub mod gate;
pub mod lease;
pub mod relay;
pub mod rfb;
pub mod web;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use corral_serve::{Need, Policy};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;

pub type Body = corral_serve::JsonBody;

/// Connections served at once; past it new ones are closed at once.
pub const MAX_CONNECTIONS: usize = 256;

/// What the live view serves.
pub struct Options {
    /// noVNC's files.
    pub web: PathBuf,
    /// Who gets keyboard and mouse.
    pub control: Policy,
    /// Who gets the view-only door, if anyone.
    pub view: Option<Policy>,
    /// The VNC server (x11vnc).
    pub upstream: String,
    /// x11vnc's `-passwdfile` (full and view-only passwords), read at each
    /// connection: x11vnc's pre_start writes fresh ones at every start.
    pub passwords: Option<PathBuf>,
    /// The control lease (`POST /live/takeover` on corral-api): input from
    /// a control-token viewer reaches the screen only while it is current.
    pub lease: Arc<lease::LeaseFile>,
}

/// Which of the two doors a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Control,
    ViewOnly,
}

impl Options {
    /// Which door the request's token opens: the control token first, then
    /// the view token; a public request that carries neither goes through
    /// the control policy's Origin and Host checks. Else the control
    /// policy's refusal (logged).
    fn admit(
        &self,
        req: &Request<Incoming>,
        peer: SocketAddr,
        need: Need,
    ) -> Result<(Access, bool), corral_serve::Refusal> {
        let control = self.control.check(req.headers(), req.uri(), need);
        if let Ok(a) = &control {
            if a.authenticated {
                return Ok((Access::Control, true));
            }
        }
        if let Some(view) = &self.view {
            match view.check(req.headers(), req.uri(), need) {
                Ok(a) if a.authenticated => return Ok((Access::ViewOnly, true)),
                Ok(_) if control.is_err() => return Ok((Access::ViewOnly, false)),
                _ => {}
            }
        }
        control
            .map(|a| (Access::Control, a.authenticated))
            .inspect_err(|r| {
                r.log(Some(peer), req.method(), req.uri().path());
            })
    }
}

/// Serves until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    opts: Options,
    stop: impl std::future::Future<Output = ()>,
) {
    use corral_serve::listen::{serve_http1, HttpOptions};
    let opts = Arc::new(opts);
    let http = HttpOptions {
        max_connections: MAX_CONNECTIONS,
        ..HttpOptions::new("corral-live")
    };
    serve_http1(listener, http, stop, move |peer| {
        let opts = opts.clone();
        service_fn(move |req| {
            let opts = opts.clone();
            async move { Ok::<_, Infallible>(handle(req, &opts, peer).await) }
        })
    })
    .await
}

async fn handle(req: Request<Incoming>, opts: &Options, peer: SocketAddr) -> Response<Body> {
    if req.headers().contains_key(hyper::header::UPGRADE) {
        return match opts.admit(&req, peer, Need::Credential) {
            Ok((access, _)) => relay::upgrade(req, opts, access, peer).await,
            Err(refused) => refused.response(),
        };
    }
    match opts.admit(&req, peer, Need::Public) {
        Ok((access, authenticated)) => web::answer(&req, &opts.web, access, authenticated).await,
        Err(refused) => refused.response(),
    }
}
