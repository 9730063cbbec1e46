//! `serve`: harvest every `--interval`, keep the last good snapshot, and
//! answer `GET /api/snapshot` behind the bearer token.
//!
//! Harvests are single-flight: a periodic harvest and any number of
//! `?fresh=1` requests arriving together share one run and its result. A
//! failed harvest never replaces the last good snapshot (on disk or in
//! memory); it is logged with its reason, and `?fresh=1` answers with it.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use corral_serve::{Need, Policy};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::harvest::{harvest, HarvestOptions};
use crate::store::write_atomic;

pub struct ServeOptions {
    pub harvest: HarvestOptions,
    pub out: PathBuf,
    pub interval: Duration,
    /// Bound on a `?fresh=1` request's wait for its harvest.
    pub fresh_timeout: Duration,
    /// Who may read snapshots (`/healthz` is public).
    pub policy: Policy,
}

/// A snapshot as served.
#[derive(Debug)]
pub struct Snapshot {
    pub bytes: Bytes,
    /// Quoted, strong: a digest of the bytes.
    pub etag: String,
    pub at: SystemTime,
}

impl Snapshot {
    fn new(bytes: Vec<u8>, at: SystemTime) -> Snapshot {
        let digest = Sha256::digest(&bytes);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Snapshot {
            bytes: Bytes::from(bytes),
            etag: format!("\"{hex}\""),
            at,
        }
    }
}

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;

type Outcome = Option<Result<Arc<Snapshot>, String>>;

pub struct Server {
    opts: ServeOptions,
    current: RwLock<Option<Arc<Snapshot>>>,
    /// The harvest running now, if any; callers wait on its outcome.
    inflight: Mutex<Option<watch::Receiver<Outcome>>>,
}

impl Server {
    /// Starts with the snapshot already on disk, if there is one, so a
    /// restarted sidecar serves at once.
    pub fn new(opts: ServeOptions) -> Arc<Server> {
        let existing = std::fs::read(&opts.out).ok().map(|b| {
            let at = std::fs::metadata(&opts.out)
                .and_then(|m| m.modified())
                .unwrap_or_else(|_| SystemTime::now());
            Arc::new(Snapshot::new(b, at))
        });
        Arc::new(Server {
            opts,
            current: RwLock::new(existing),
            inflight: Mutex::new(None),
        })
    }

    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Joins the harvest in flight, or starts one.
    pub fn harvest_now(self: &Arc<Self>) -> watch::Receiver<Outcome> {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = inflight.as_ref() {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(None);
        *inflight = Some(rx.clone());
        let me = self.clone();
        tokio::spawn(async move {
            let outcome = me.run_harvest().await;
            // Clear first: a caller arriving after this point starts anew.
            *me.inflight.lock().unwrap_or_else(|e| e.into_inner()) = None;
            let _ = tx.send(Some(outcome));
        });
        rx
    }

    async fn run_harvest(&self) -> Result<Arc<Snapshot>, String> {
        let h = harvest(&self.opts.harvest).await.map_err(|e| {
            tracing::warn!("harvest failed, keeping the last good snapshot: {e}");
            e.to_string()
        })?;
        let bytes = serde_json::to_vec_pretty(&h.state).map_err(|e| e.to_string())?;
        let out = self.opts.out.clone();
        let written = bytes.clone();
        tokio::task::spawn_blocking(move || write_atomic(&out, &written))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| {
                tracing::warn!(path = %self.opts.out.display(), "cannot write the snapshot, keeping the last good one: {e}");
                format!("cannot write {}: {e}", self.opts.out.display())
            })?;
        let snap = Arc::new(Snapshot::new(bytes, SystemTime::now()));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(snap.clone());
        tracing::info!(
            cookies = h.state.cookies.len(),
            origins = h.state.origins.len(),
            skipped = h.skipped.len(),
            ms = h.elapsed.as_millis() as u64,
            "harvested"
        );
        Ok(snap)
    }

    /// Harvests now and then every `interval`, forever.
    pub async fn periodic(self: Arc<Self>) {
        loop {
            let mut rx = self.harvest_now();
            let _ = rx.wait_for(Option::is_some).await;
            tokio::time::sleep(self.opts.interval).await;
        }
    }

    /// Serves until `stop` resolves, then lets requests in flight finish
    /// (a `?fresh=1` harvest included, up to its timeout).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        stop: impl std::future::Future<Output = ()>,
    ) {
        use corral_serve::listen::{serve_http1, HttpOptions};
        let opts = HttpOptions {
            max_connections: MAX_CONNECTIONS,
            drain: self.opts.fresh_timeout,
            ..HttpOptions::new("corral-snapshot")
        };
        serve_http1(listener, opts, stop, move |peer| {
            let me = self.clone();
            service_fn(move |req| {
                let me = me.clone();
                async move { Ok::<_, Infallible>(me.route(req, peer).await) }
            })
        })
        .await
    }

    async fn route(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: std::net::SocketAddr,
    ) -> Response<Full<Bytes>> {
        let need = match req.uri().path() {
            "/healthz" => Need::Public,
            _ => Need::Credential,
        };
        if let Err(refused) = self.opts.policy.admit(&req, Some(peer), need) {
            return refused.response();
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                "only GET",
            );
        }
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/api/snapshot" => self.snapshot(&req).await,
            _ => json_error(
                StatusCode::NOT_FOUND,
                "not found",
                "try /api/snapshot or /healthz",
            ),
        }
    }

    async fn snapshot(self: &Arc<Self>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let fresh = req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "fresh=1" || kv == "fresh=true"));
        let snap = if fresh {
            let mut rx = self.harvest_now();
            let waited =
                tokio::time::timeout(self.opts.fresh_timeout, rx.wait_for(Option::is_some))
                    .await
                    .map(|r| r.map(|outcome| outcome.clone()));
            match waited {
                Ok(Ok(Some(Ok(s)))) => s,
                Ok(Ok(Some(Err(e)))) => {
                    return json_error(StatusCode::BAD_GATEWAY, "harvest failed", e)
                }
                Ok(_) => {
                    return json_error(
                        StatusCode::BAD_GATEWAY,
                        "harvest failed",
                        "the harvest task ended",
                    )
                }
                Err(_) => {
                    let detail = format!(
                        "no harvest result within {}",
                        humantime::format_duration(self.opts.fresh_timeout)
                    );
                    return json_error(StatusCode::GATEWAY_TIMEOUT, "harvest timed out", detail);
                }
            }
        } else {
            match self.current() {
                Some(s) => s,
                None => {
                    return json_error(
                        StatusCode::NOT_FOUND,
                        "no snapshot yet",
                        "the first harvest has not completed; try ?fresh=1",
                    )
                }
            }
        };
        let not_modified = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim() == snap.etag || t.trim() == "*")
            });
        let mut r = if not_modified {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            let mut r = Response::new(Full::new(snap.bytes.clone()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        };
        let h = r.headers_mut();
        h.insert(
            header::ETAG,
            HeaderValue::from_str(&snap.etag).expect("hex etag"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&httpdate::fmt_http_date(snap.at)).expect("ascii date"),
        );
        r
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

fn json_error(status: StatusCode, error: &str, detail: impl Into<String>) -> Response<Full<Bytes>> {
    corral_serve::json_error(status, error, &detail.into())
}
