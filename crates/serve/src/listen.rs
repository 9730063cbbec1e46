//! Accepting connections the same way in every corral listener (corral's
//! probe port and control socket, corral-cdp, corral-live, corral-snapshot,
//! corral-api):
//!
//! - [`Acceptor`]: an accept that never busy-loops. When `accept` fails for
//!   want of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM) the pending
//!   connection stays queued and the next `accept` fails at once again, so
//!   retrying immediately burns a CPU for as long as the condition lasts. The
//!   acceptor waits instead, doubling from 5 ms to 1 s (what Go's net/http
//!   does), and logs once per burst of failures, not once per failure.
//! - [`Limit`]: the connection cap; past it a new connection is closed at
//!   once, logged once per burst.
//! - [`serve_http1`]: the loop every hyper HTTP/1 listener runs: accept,
//!   cap, serve with a header timeout; on stop, stop accepting and let the
//!   requests in flight finish, bounded by a deadline ([`Drain`]).
//! - [`stop_signal`]: resolves on SIGTERM or SIGINT.

use std::fmt::Display;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Something that accepts connections: a TCP or a Unix listener.
pub trait Listener: Send + 'static {
    type Io: Send + 'static;
    type Addr: Send + 'static;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Self::Addr)>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Self::Addr)>> + Send {
        tokio::net::TcpListener::accept(self)
    }
}

impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Self::Addr)>> + Send {
        tokio::net::UnixListener::accept(self)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const FIRST_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(1);

/// A listener whose `accept` backs off on errors (see the module docs).
pub struct Acceptor<L> {
    listener: L,
    name: &'static str,
    delay: Duration,
    /// Failures in the current burst.
    failures: u64,
}

impl<L: Listener> Acceptor<L> {
    /// `name` says which listener in the log lines.
    pub fn new(listener: L, name: &'static str) -> Acceptor<L> {
        Acceptor {
            listener,
            name,
            delay: FIRST_DELAY,
            failures: 0,
        }
    }

    pub fn listener(&self) -> &L {
        &self.listener
    }

    /// The next connection; waits out accept errors without spinning.
    pub async fn accept(&mut self) -> (L::Io, L::Addr) {
        loop {
            match self.listener.accept().await {
                Ok(conn) => {
                    if self.failures > 0 {
                        tracing::info!(
                            listener = self.name,
                            failures = self.failures,
                            "accepting connections again"
                        );
                        self.failures = 0;
                        self.delay = FIRST_DELAY;
                    }
                    return conn;
                }
                // The peer gave up before we took it: the queue moved on,
                // so the next accept is a new attempt, not a spin.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    if self.failures == 0 {
                        tracing::warn!(
                            listener = self.name,
                            "accept failed: {e}; retrying with back-off until it succeeds"
                        );
                    }
                    self.failures += 1;
                    tokio::time::sleep(self.delay).await;
                    self.delay = (self.delay * 2).min(MAX_DELAY);
                }
            }
        }
    }
}

/// The connection cap of one listener.
#[derive(Clone)]
pub struct Limit {
    permits: Arc<Semaphore>,
    max: usize,
    name: &'static str,
    /// Set while connections are being turned away: one log line per burst.
    full: Arc<AtomicBool>,
}

impl Limit {
    pub fn new(max: usize, name: &'static str) -> Limit {
        Limit {
            permits: Arc::new(Semaphore::new(max)),
            max,
            name,
            full: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A place for one more connection, or `None` at the cap.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        match self.permits.clone().try_acquire_owned() {
            Ok(p) => {
                if self.full.swap(false, Ordering::Relaxed) {
                    tracing::info!(listener = self.name, "below the connection cap again");
                }
                Some(p)
            }
            Err(_) => {
                if !self.full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        listener = self.name,
                        max = self.max,
                        "connection cap reached: new connections are closed until some end"
                    );
                }
                None
            }
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

/// A hyper connection that can be asked to finish its request in flight
/// and close.
pub trait Graceful {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::Connection::graceful_shutdown(self)
    }
}

impl<I, S, B> Graceful for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self)
    }
}

/// The connections of one listener, to finish before the process ends.
/// A connection counts while it holds its [`Limit`] permit.
pub struct Drain {
    stopping: watch::Sender<bool>,
    limit: Limit,
}

impl Drain {
    pub fn new(limit: Limit) -> Drain {
        Drain {
            stopping: watch::Sender::new(false),
            limit,
        }
    }

    /// Runs a connection to its end; once [`Drain::finish`] is called it is
    /// asked to finish the request in flight and close.
    pub fn watch<C>(&self, conn: C) -> impl Future<Output = C::Output> + Send + use<C>
    where
        C: Future + Graceful + Send,
    {
        let mut stopping = self.stopping.subscribe();
        async move {
            tokio::pin!(conn);
            tokio::select! {
                out = &mut conn => return out,
                _ = stopping.wait_for(|s| *s) => {}
            }
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }

    /// Asks every watched connection to finish and waits until all have
    /// given back their permits, up to `deadline`. False if some were left.
    pub async fn finish(self, deadline: Duration) -> bool {
        self.stopping.send_replace(true);
        let all = u32::try_from(self.limit.max).unwrap_or(u32::MAX);
        tokio::time::timeout(deadline, self.limit.permits.acquire_many(all))
            .await
            .is_ok()
    }
}

/// How an HTTP/1 listener serves.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub name: &'static str,
    pub max_connections: usize,
    /// A client must send its request head within this long.
    pub header_timeout: Duration,
    /// On stop, requests in flight get this long to finish.
    pub drain: Duration,
}

impl HttpOptions {
    pub fn new(name: &'static str) -> HttpOptions {
        HttpOptions {
            name,
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(5),
        }
    }
}

/// Serves HTTP/1 (with upgrades) on `listener` until `stop` resolves, then
/// lets the requests in flight finish (bounded by `opts.drain`). The
/// service for each connection is made by `make` from the peer's address.
pub async fn serve_http1<S, B, M>(
    listener: tokio::net::TcpListener,
    opts: HttpOptions,
    stop: impl Future<Output = ()>,
    make: M,
) where
    M: Fn(std::net::SocketAddr) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = hyper::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut acceptor = Acceptor::new(listener, opts.name);
    let limit = Limit::new(opts.max_connections, opts.name);
    let drain = Drain::new(limit.clone());
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            conn = acceptor.accept() => conn,
            () = &mut stop => break,
        };
        // Past the cap the stream is dropped: closed at once.
        let Some(permit) = limit.admit() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(opts.header_timeout)
            .serve_connection(TokioIo::new(stream), make(peer))
            .with_upgrades();
        let conn = drain.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(acceptor); // no new connections while the others finish
    if !drain.finish(opts.drain).await {
        tracing::warn!(
            listener = opts.name,
            "requests still in flight after {}: closing them",
            Humane(opts.drain)
        );
    }
}

struct Humane(Duration);

impl Display for Humane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1} s", self.0.as_secs_f64())
    }
}

/// Resolves on the first SIGTERM or SIGINT (never, if they cannot be
/// watched: the process then ends the default way).
pub async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot watch SIGTERM/SIGINT");
        return std::future::pending().await;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
}

#[cfg(test)]
mod tests;
