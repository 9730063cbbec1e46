//! corral-live: the live view. It serves noVNC's page and relays noVNC's
//! WebSocket to x11vnc, behind the same request policy as every corral
//! listener (`corral-serve`): a token for the screen, foreign Origins and
//! unknown Host names refused. It replaces websockify, which can do neither
//! the Host check nor keep the token out of its logs (docs/security.md).
//!
//! Modules: [`web`] serves noVNC's files (and the one-click redirect);
//! [`relay`] carries the RFB bytes between the WebSocket and x11vnc. A
//! second token, if configured, reaches a view-only x11vnc.

pub mod relay;
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
    /// The policy for keyboard and mouse, and the VNC server behind it.
    pub control: (Policy, String),
    /// The view-only token's policy and VNC server, if any.
    pub view: Option<(Policy, String)>,
}

/// Which of the two doors a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Control,
    ViewOnly,
}

impl Options {
    /// The first policy that admits the request, or the control policy's
    /// refusal (logged).
    fn admit(
        &self,
        req: &Request<Incoming>,
        peer: SocketAddr,
        need: Need,
    ) -> Result<(Access, bool), corral_serve::Refusal> {
        let refused = match self.control.0.check(req.headers(), req.uri(), need) {
            Ok(a) => return Ok((Access::Control, a.authenticated)),
            Err(r) => r,
        };
        if let Some((view, _)) = &self.view {
            if let Ok(a) = view.check(req.headers(), req.uri(), need) {
                return Ok((Access::ViewOnly, a.authenticated));
            }
        }
        refused.log(Some(peer), req.method(), req.uri().path());
        Err(refused)
    }

    fn upstream(&self, access: Access) -> &str {
        match (access, &self.view) {
            (Access::ViewOnly, Some((_, up))) => up,
            _ => &self.control.1,
        }
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
            Ok((access, _)) => relay::upgrade(req, opts.upstream(access), access, peer).await,
            Err(refused) => refused.response(),
        };
    }
    match opts.admit(&req, peer, Need::Public) {
        Ok((access, authenticated)) => web::answer(&req, &opts.web, access, authenticated).await,
        Err(refused) => refused.response(),
    }
}
