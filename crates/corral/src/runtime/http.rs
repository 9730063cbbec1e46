//! The `[supervisor] http` listener: `/livez`, `/readyz`, `/metrics` for
//! the kubelet and Prometheus.
//!
//! `/readyz` and `/metrics` read the published snapshot; `/livez` asks the
//! supervisor loop itself (a `Ping` through the command channel), so it
//! fails when the loop is stuck, not merely when the process exists.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use corral_proto::Request;
use corral_serve::listen::{serve_http1, HttpOptions};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::control::{Command, Shared};
use super::snapshot::Snapshot;

/// How long `/livez` waits for the loop to answer.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once (probes are tiny; this only bounds abuse).
const MAX_CONNECTIONS: usize = 512;
/// A connection that sends no complete request for this long is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves for as long as corral runs (its shutdown ends the process).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let opts = HttpOptions {
        max_connections: MAX_CONNECTIONS,
        header_timeout: HEADER_TIMEOUT,
        ..HttpOptions::new("probes")
    };
    serve_http1(listener, opts, std::future::pending(), move |_peer| {
        // Counted while the connection lives: memory is trimmed after a burst.
        let open = super::burst::Connection::open();
        let shared = shared.clone();
        service_fn(move |req| {
            let _counted = &open;
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(route(req, &shared).await) }
        })
    })
    .await
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn route(req: hyper::Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    const JSON: &str = "application/json";
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n".into());
    }
    match req.uri().path() {
        "/livez" => {
            if alive(shared).await {
                reply(StatusCode::OK, TEXT, "ok\n".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    "supervisor loop not answering\n".into(),
                )
            }
        }
        "/readyz" => {
            let snap = shared.snapshot.borrow().clone();
            let (ready, body) = readiness(&snap);
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            reply(status, JSON, body)
        }
        "/metrics" => {
            let snap = shared.snapshot.borrow().clone();
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics(&snap),
            )
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: try /livez, /readyz, /metrics\n".into(),
        ),
    }
}

async fn alive(shared: &Shared) -> bool {
    let (reply, rx) = oneshot::channel();
    let cmd = Command {
        request: Request::Ping,
        reply,
    };
    let ask = async {
        shared.commands.send(cmd).await.ok()?;
        rx.await.ok()
    };
    matches!(
        tokio::time::timeout(LIVENESS_TIMEOUT, ask).await,
        Ok(Some(_))
    )
}

/// Ready when every program that should be up is ready, and not shutting down.
fn readiness(snap: &Snapshot) -> (bool, String) {
    let not_ready: Vec<serde_json::Value> = snap
        .not_ready()
        .into_iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "state": p.state,
                "reason": p.reason,
            })
        })
        .collect();
    let ready = not_ready.is_empty() && !snap.shutting_down;
    let body = serde_json::json!({
        "ready": ready,
        "shutting_down": snap.shutting_down,
        "not_ready": not_ready,
    });
    (ready, format!("{body}\n"))
}

/// Prometheus text exposition format 0.0.4.
pub fn metrics(snap: &Snapshot) -> String {
    let mut out = String::new();
    let mut family =
        |name: &str,
         kind: &str,
         help: &str,
         value: &dyn Fn(&super::snapshot::ProgramSnap) -> Option<f64>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for p in &snap.programs {
                if let Some(v) = value(p) {
                    let _ = writeln!(out, "{name}{{program=\"{}\"}} {v}", escape(&p.name));
                }
            }
        };
    let flag = |b: bool| Some(if b { 1.0 } else { 0.0 });
    family(
        "corral_program_up",
        "gauge",
        "Whether the program has a running process.",
        &|p| flag(p.is_live()),
    );
    family(
        "corral_program_ready",
        "gauge",
        "Whether the program is ready (its readiness check passed).",
        &|p| flag(p.ready),
    );
    family(
        "corral_program_restarts_total",
        "counter",
        "Restarts made by the restart policy.",
        &|p| Some(p.restarts as f64),
    );
    family(
        "corral_program_start_time_seconds",
        "gauge",
        "Start time of the program's current process, in Unix seconds.",
        &|p| p.status().start_time_unix,
    );
    let _ = writeln!(
        out,
        "# HELP corral_reaped_total Processes reaped by corral (programs, helpers and orphans).\n# TYPE corral_reaped_total counter\ncorral_reaped_total {}",
        snap.reaped_total
    );
    out
}

/// Label values escape backslash, quote and newline.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
