//! `/fs/watch`, named as kernel-images names it: `POST /fs/watch {path,
//! recursive?}` starts a watch and answers `201 {watch_id, …}`;
//! `GET /fs/watch/{id}/events` streams its events as Server-Sent Events
//! (see `watch_tree` for the events); `DELETE /fs/watch/{id}` stops it.
//!
//! Or in one request: `GET /fs/watch?path=P[&recursive=true]` starts a
//! watch and streams it at once (id in `X-Watch-Id`); hanging up stops it.
//!
//! Events are queued from the moment the watch starts, so nothing done
//! between the POST and the GET is missed. One stream at a time per watch
//! (a second concurrent GET is 409); a client that disconnects can GET
//! again and carries on where it left off (an event in flight as the
//! connection went may be lost with it).
//!
//! Bounds: at most `max_total` live watches altogether and
//! `max_per_client` per client (the peer's IP address), both 429 when
//! exceeded, saying which. A watch nobody streams for [`IDLE`] is stopped,
//! so a client that forgets its DELETE does not hold a slot forever. A
//! watch that has ended (its directory was removed) stops counting at
//! once; its queued events and `end` can still be streamed until [`IDLE`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::path::RelPath;
use super::{blocking, watch_tree, Fs};
use crate::http::{body_json, json, ok, sse, ApiError, Req, Resp};

/// Default bound on live watches altogether (`--max-fs-watches`).
pub const MAX_WATCHES: usize = 64;
/// Default bound on live watches per client IP (`--max-fs-watches-per-client`).
pub const MAX_WATCHES_PER_CLIENT: usize = 16;
/// A watch with no stream attached for this long is stopped and forgotten.
pub const IDLE: Duration = Duration::from_secs(10 * 60);
/// A comment this often keeps an idle stream open and notices a client
/// that has gone.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

/// The live watches.
pub struct Watches {
    map: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
    next: AtomicU64,
    pub max_total: usize,
    pub max_per_client: usize,
}

impl Default for Watches {
    fn default() -> Self {
        Watches::new(MAX_WATCHES, MAX_WATCHES_PER_CLIENT)
    }
}

struct Slot {
    client: IpAddr,
    /// The queue's receiving end; `None` while a stream holds it.
    frames: Mutex<Option<mpsc::Receiver<Bytes>>>,
    /// Since when no stream has been attached.
    idle_since: Mutex<Instant>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    /// The watch task has sent `end` (it no longer counts against a bound).
    ended: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Slot {
    fn stop(&self) {
        if let Some(s) = lock(&self.stop).take() {
            let _ = s.send(());
        }
    }
}

impl Watches {
    pub fn new(max_total: usize, max_per_client: usize) -> Watches {
        Watches {
            map: Arc::default(),
            next: AtomicU64::new(1),
            max_total,
            max_per_client,
        }
    }

    /// Forgets watches idle for [`IDLE`] (stopping them); then 429 when
    /// `client` may not start another.
    fn admit(&self, client: IpAddr, now: Instant) -> Result<(), ApiError> {
        let mut map = lock(&self.map);
        map.retain(|_, s| {
            let idle = lock(&s.frames).is_some() && now - *lock(&s.idle_since) > IDLE;
            if idle {
                s.stop();
            }
            !idle
        });
        // Ended watches keep their queued events for a later GET, but not
        // without bound: beyond 4 x max_total records, the longest-idle
        // ended ones go first.
        let keep = self.max_total.saturating_mul(4).max(1);
        if map.len() >= keep {
            let mut ended: Vec<(Instant, String)> = map
                .iter()
                .filter(|(_, s)| s.ended.load(Ordering::SeqCst) && lock(&s.frames).is_some())
                .map(|(id, s)| (*lock(&s.idle_since), id.clone()))
                .collect();
            ended.sort();
            for (_, id) in ended {
                if map.len() < keep {
                    break;
                }
                map.remove(&id);
            }
        }
        let live: Vec<&Arc<Slot>> = map
            .values()
            .filter(|s| !s.ended.load(Ordering::SeqCst))
            .collect();
        let mine = live.iter().filter(|s| s.client == client).count();
        if mine >= self.max_per_client {
            return Err(too_many(format!(
                "this client ({client}) already has {mine} fs watches (at most {} per client); stop one with DELETE /fs/watch/{{id}}",
                self.max_per_client
            )));
        }
        if live.len() >= self.max_total {
            return Err(too_many(format!(
                "{} fs watches are running (at most {} altogether); stop one with DELETE /fs/watch/{{id}}",
                live.len(),
                self.max_total
            )));
        }
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Arc<Slot>, ApiError> {
        lock(&self.map)
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no fs watch {id:?}")))
    }
}

/// A random suffix for watch ids: an id is not guessable from another
/// (nor hit by chance by a fuzzer, which would then hold a stream open).
fn nonce() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: getrandom fills the 4 bytes of `b` at most.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 4 {
        // Never expected on Linux ≥ 3.17; the counter still makes ids unique.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        return t.map_or(0, |d| d.subsec_nanos());
    }
    u32::from_ne_bytes(b)
}

fn too_many(detail: String) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too many watches", detail)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Start {
    path: String,
    #[serde(default)]
    recursive: bool,
}

/// `POST /fs/watch {path, recursive?}` → 201 `{watch_id, path, recursive}`.
pub async fn start(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let client = peer_ip(&req);
    let b: Start = body_json(req).await?;
    let p = RelPath::parse(&b.path)?;
    let id = begin(fs, client, &p, b.recursive).await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"watch_id": id, "path": p.display(), "recursive": b.recursive}),
    ))
}

/// `GET /fs/watch?path=P[&recursive=true]`: a watch and its stream in one
/// request, for clients that want one call. The watch lives as long as the
/// connection (the client hanging up stops it); its id is in the
/// `X-Watch-Id` header, so it can also be stopped with DELETE.
pub async fn start_and_stream(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let client = peer_ip(&req);
    let p = super::path_param(&req, "path")?;
    let recursive = super::bool_param(&req, "recursive")?;
    let id = begin(fs, client, &p, recursive).await?;
    let mut r = stream(&id, fs, true)?;
    if let Ok(v) = hyper::header::HeaderValue::from_str(&id) {
        r.headers_mut().insert("x-watch-id", v);
    }
    Ok(r)
}

fn peer_ip(req: &Req) -> IpAddr {
    req.extensions()
        .get::<SocketAddr>()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Starts a watch of `p` for `client` (bounds checked); returns its id.
async fn begin(fs: &Fs, client: IpAddr, p: &RelPath, recursive: bool) -> Result<String, ApiError> {
    let w = &fs.watches;
    w.admit(client, Instant::now())?;
    let (root, p2) = (fs.root.clone(), p.clone());
    let (tree, inotify) = blocking(move || watch_tree::Tree::new(root, &p2, recursive)).await?;
    // Checked again: another start may have taken the last slot meanwhile.
    w.admit(client, Instant::now())?;
    let id = format!(
        "w-{}-{:08x}",
        w.next.fetch_add(1, Ordering::SeqCst),
        nonce()
    );
    let (tx, rx) = watch_tree::queue();
    let (stop_tx, stop_rx) = oneshot::channel();
    let slot = Arc::new(Slot {
        client,
        frames: Mutex::new(Some(rx)),
        idle_since: Mutex::new(Instant::now()),
        stop: Mutex::new(Some(stop_tx)),
        ended: AtomicBool::new(false),
    });
    lock(&w.map).insert(id.clone(), slot.clone());
    tokio::spawn(async move {
        watch_tree::run(tree, inotify, tx, stop_rx).await;
        slot.ended.store(true, Ordering::SeqCst);
    });
    Ok(id)
}

/// `GET /fs/watch/{id}/events`: the SSE stream.
pub async fn events(id: &str, fs: &Fs) -> Result<Resp, ApiError> {
    stream(id, fs, false)
}

/// Attaches a stream to watch `id`; with `owned`, the client leaving stops
/// the watch instead of leaving it queueing for a later GET.
fn stream(id: &str, fs: &Fs, owned: bool) -> Result<Resp, ApiError> {
    let slot = fs.watches.get(id)?;
    let Some(mut frames) = lock(&slot.frames).take() else {
        return Err(ApiError::conflict(format!(
            "fs watch {id} is already being streamed to another client"
        )));
    };
    // Room for one frame only: a frame is taken from the watch's queue
    // when the connection can take it, so a client that goes loses at
    // most the one in flight; the rest wait in the queue for the next GET.
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let (map, id) = (fs.watches.map.clone(), id.to_string());
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                p = tx.reserve() => match p { Ok(p) => p, Err(_) => break },
                _ = tx.closed() => break,
            };
            tokio::select! {
                f = frames.recv() => match f {
                    Some(f) => permit.send(f),
                    None => {
                        // `end` was sent: the watch is over and forgotten.
                        lock(&map).remove(&id);
                        return;
                    }
                },
                _ = tokio::time::sleep(KEEPALIVE_EVERY) => {
                    permit.send(Bytes::from_static(b": keep-alive\n\n"));
                }
                _ = tx.closed() => break,
            }
        }
        if owned {
            lock(&map).remove(&id);
            slot.stop();
            return;
        }
        // The client left: the watch goes on, queueing for the next GET.
        *lock(&slot.idle_since) = Instant::now();
        *lock(&slot.frames) = Some(frames);
    });
    Ok(sse(rx))
}

/// `DELETE /fs/watch/{id}`: stops the watch (an attached stream gets
/// `end` with reason `stopped`) and forgets it.
pub async fn stop(id: &str, fs: &Fs) -> Result<Resp, ApiError> {
    let slot = lock(&fs.watches.map)
        .remove(id)
        .ok_or_else(|| ApiError::not_found(format!("no fs watch {id:?}")))?;
    slot.stop();
    ok(&json!({"watch_id": id, "stopped": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(client: IpAddr, ended: bool) -> Arc<Slot> {
        Arc::new(Slot {
            client,
            frames: Mutex::new(Some(mpsc::channel(1).1)),
            idle_since: Mutex::new(Instant::now()),
            stop: Mutex::new(None),
            ended: AtomicBool::new(ended),
        })
    }

    #[test]
    fn fs_watch_bounds_per_client_and_total() {
        let w = Watches::new(3, 2);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "127.0.0.1".parse().unwrap(),
            "127.0.0.2".parse().unwrap(),
            "127.0.0.3".parse().unwrap(),
        );
        let now = Instant::now();
        lock(&w.map).insert("1".into(), slot(a, false));
        lock(&w.map).insert("2".into(), slot(a, false));
        let e = w.admit(a, now).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.detail.contains("per client"), "{}", e.detail);
        w.admit(b, now).unwrap();
        lock(&w.map).insert("3".into(), slot(b, false));
        let e = w.admit(c, now).unwrap_err();
        assert!(e.detail.contains("altogether"), "{}", e.detail);
        // An ended watch no longer counts.
        lock(&w.map).insert("3".into(), slot(b, true));
        w.admit(c, now).unwrap();
        // An idle one is forgotten.
        assert!(w.admit(c, now + IDLE + Duration::from_secs(1)).is_ok());
        assert!(lock(&w.map).is_empty());
        // Ended records are bounded too (4 x max_total), oldest first.
        for i in 0..20 {
            lock(&w.map).insert(format!("e{i}"), slot(c, true));
        }
        w.admit(c, Instant::now()).unwrap();
        assert!(lock(&w.map).len() < 12, "{}", lock(&w.map).len());
    }
}
