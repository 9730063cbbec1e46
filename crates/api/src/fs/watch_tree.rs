//! The inotify side of `/fs/watch`: which directories are watched (one
//! inotify watch per directory, the whole tree when recursive), and the
//! task that turns raw inotify events into the API's events.
//!
//! Confinement: a directory is never handed to inotify by name. It is
//! opened with `openat2(RESOLVE_BENEATH)` like every other `/fs` path
//! (`confine`), and the watch is added on `/proc/self/fd/N`, the inode
//! that was opened; a symlink or a racing rename cannot make inotify watch
//! something outside the root. Recursive walks only descend into real
//! directories (never through a symlink).
//!
//! Events (the SSE event name is the `type`):
//! - `create`, `modify`, `delete`: `{type, path, name, is_dir}`; a
//!   `modify` is not queued again while the same path's previous one is
//!   the last event queued and still unread (a large write is many
//!   `IN_MODIFY`; the client learns of it all the same).
//! - `move`: `{type, from, to, path, name, is_dir}`, `IN_MOVED_FROM` and
//!   `IN_MOVED_TO` paired by their cookie; `from` is null for something
//!   moved in from outside the watch, `to` null for something moved out.
//! - `overflow`: `{type, dropped}`: events were lost (the client did not
//!   read fast enough, or the kernel queue overflowed: `dropped` null).
//! - `end`: `{type, reason, path}`, always last, the stream then ends:
//!   `deleted` (the watched directory is gone: `IN_DELETE_SELF` /
//!   `IN_IGNORED`), `moved` (it was renamed, so its paths no longer hold),
//!   `unmounted`, `stopped` (`DELETE /fs/watch/{id}`), `error`.
//!
//! Paths are relative to the API root, like every `/fs` answer.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use inotify::{EventMask, EventOwned, Inotify, WatchDescriptor, WatchMask, Watches};
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::confine::{errno_err, kind, lstat_at, Root};
use super::path::RelPath;
use crate::http::ApiError;

/// Most directories one recursive watch may cover (each costs an inotify
/// watch, of which the kernel allows a fixed number per user).
pub const MAX_DIRS_PER_WATCH: usize = 4096;
/// Events queued per watch for its client; beyond, `overflow`.
pub const QUEUE: usize = 1024;
/// An `IN_MOVED_FROM` whose `IN_MOVED_TO` has not followed within this
/// long is a move out of the watch. The kernel queues the pair back to
/// back, so this is only a bound for the unpaired case, never a delay of
/// a paired move.
const PAIR_WAIT: Duration = Duration::from_millis(50);

fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::MODIFY
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
        | WatchMask::EXCL_UNLINK
}

/// The watched directories of one watch.
pub struct Tree {
    root: PathBuf,
    watches: Watches,
    dirs: HashMap<i32, (WatchDescriptor, RelPath)>,
    top: i32,
    top_path: RelPath,
    recursive: bool,
}

impl Tree {
    /// Watches `p` (and, when `recursive`, every directory below it).
    /// Blocking. Errors: the path's own (404, 403 escape, 400 not a
    /// directory), 409 when the tree has too many directories.
    pub fn new(root: PathBuf, p: &RelPath, recursive: bool) -> Result<(Tree, Inotify), ApiError> {
        let inotify = Inotify::init()
            .map_err(|e| ApiError::unavailable(format!("cannot start inotify: {e}")))?;
        let mut t = Tree {
            root,
            watches: inotify.watches(),
            dirs: HashMap::new(),
            top: -1,
            top_path: p.clone(),
            recursive,
        };
        let r = Root::new(&t.root)?;
        // The top may be a symlink to a directory inside the root (followed
        // beneath the root); it must be a directory.
        let st = r
            .open(p, OFlag::O_PATH)
            .and_then(|fd| nix::sys::stat::fstat(&fd).map_err(|e| errno_err(&p.display(), e)))?;
        if kind(&st) != SFlag::S_IFDIR {
            return Err(ApiError::bad_request(format!(
                "{p} is not a directory; fs/watch watches directories"
            )));
        }
        t.top = t.add_tree(&r, p, None)?;
        Ok((t, inotify))
    }

    /// Adds a watch on `p` and, when recursive, on every directory below;
    /// with `found`, also reports what is already there as `create` (for a
    /// directory that appeared: its contents may predate its watch).
    fn add_tree(
        &mut self,
        r: &Root,
        p: &RelPath,
        mut found: Option<&mut Vec<Value>>,
    ) -> Result<i32, ApiError> {
        if self.dirs.len() >= MAX_DIRS_PER_WATCH {
            return Err(ApiError::conflict(format!(
                "more than {MAX_DIRS_PER_WATCH} directories under {}; watch a smaller tree",
                self.top_path
            )));
        }
        let fd = r.open(p, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let wd = self
            .watches
            .add(format!("/proc/self/fd/{}", fd.as_raw_fd()), mask())
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOSPC) => ApiError::unavailable(format!(
                    "the kernel's inotify watch limit is reached (fs.inotify.max_user_watches): {e}"
                )),
                _ => ApiError::internal(format!("inotify_add_watch {p}: {e}")),
            })?;
        let id = wd.get_watch_descriptor_id();
        self.dirs.insert(id, (wd, p.clone()));
        if !self.recursive && found.is_none() {
            return Ok(id);
        }
        // A second descriptor of the directory for the lstat calls, since
        // iterating borrows the first.
        let at = fd.try_clone().map_err(|e| ApiError::io(&p.display(), &e))?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(|e| errno_err(&p.display(), e))?;
        let mut entries = Vec::new();
        for ent in dir.iter() {
            let Ok(ent) = ent else { continue };
            let Ok(name) = ent.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            let is_dir = matches!(lstat_at(&at, name), Ok(Some(st)) if kind(&st) == SFlag::S_IFDIR);
            entries.push((name.to_string(), is_dir));
        }
        drop(dir);
        for (name, is_dir) in entries {
            let child = p.child(&name);
            if let Some(f) = found.as_deref_mut() {
                f.push(ev("create", &child, is_dir));
            }
            if is_dir && self.recursive {
                match self.add_tree(r, &child, found.as_deref_mut()) {
                    Ok(_) => {}
                    // Gone again in the meantime: its delete is reported.
                    Err(e) if e.status == hyper::StatusCode::NOT_FOUND => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(id)
    }

    /// A directory moved within the watch: its watches now report under
    /// the new path.
    fn renamed(&mut self, from: &RelPath, to: &RelPath) {
        let n = from.components().len();
        for (_, p) in self.dirs.values_mut() {
            if p.components().starts_with(from.components()) {
                let mut q = to.clone();
                for c in &p.components()[n..] {
                    q = q.child(c);
                }
                *p = q;
            }
        }
    }

    /// A directory moved out of the watch: stop watching it and below.
    fn forget(&mut self, from: &RelPath) {
        let gone: Vec<i32> = self
            .dirs
            .iter()
            .filter(|(_, (_, p))| p.components().starts_with(from.components()))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some((wd, _)) = self.dirs.remove(&id) {
                let _ = self.watches.remove(wd);
            }
        }
    }
}

fn ev(kind: &str, p: &RelPath, is_dir: bool) -> Value {
    json!({"type": kind, "path": p.display(), "name": p.name().unwrap_or(""), "is_dir": is_dir})
}

/// One SSE frame; the data is one line of JSON.
pub fn frame(v: &Value) -> Bytes {
    let kind = v["type"].as_str().unwrap_or("message");
    Bytes::from(format!("event: {kind}\ndata: {v}\n\n"))
}

/// Where events go: a bounded queue with two slots kept back, one for an
/// `overflow` notice and one for the final `end`, so neither is ever lost.
struct Sink {
    tx: mpsc::Sender<Bytes>,
    dropped: u64,
    last_modify: Option<String>,
}

impl Sink {
    fn send(&mut self, v: Value) {
        if v["type"] == "modify" {
            let p = v["path"].as_str().map(str::to_string);
            // The same path's previous `modify` is the last event queued and
            // nobody has read it yet: the client will see a modify of this
            // path anyway. Once read, the next write is reported again.
            let unread = self.tx.capacity() < self.tx.max_capacity();
            if p.is_some() && self.last_modify == p && unread {
                return;
            }
            self.last_modify = p;
        } else {
            self.last_modify = None;
        }
        // Two slots are kept back: the final overflow notice and `end`.
        // A notice mid-stream goes only with room for it and the event.
        if self.dropped > 0 {
            if self.tx.capacity() < 4 {
                self.dropped += 1;
                return;
            }
            let notice = json!({"type": "overflow", "dropped": self.dropped});
            let _ = self.tx.try_send(frame(&notice));
            self.dropped = 0;
        }
        if self.tx.capacity() < 3 || self.tx.try_send(frame(&v)).is_err() {
            self.dropped += 1;
        }
    }

    fn end(mut self, reason: &str, top: &RelPath) {
        if self.dropped > 0 && self.tx.capacity() >= 2 {
            let notice = json!({"type": "overflow", "dropped": self.dropped});
            let _ = self.tx.try_send(frame(&notice));
        }
        let _ = self.tx.try_send(frame(
            &json!({"type": "end", "reason": reason, "path": top.display()}),
        ));
        self.dropped = 0;
    }
}

/// The queue a watch's events go to: `QUEUE` events plus the two kept back.
pub fn queue() -> (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>) {
    mpsc::channel(QUEUE + 2)
}

/// Reads inotify until the watch ends (its directory gone, `stop`, an
/// error); the last frame sent is always `end`. Returns when done.
pub async fn run(
    mut tree: Tree,
    inotify: Inotify,
    tx: mpsc::Sender<Bytes>,
    mut stop: oneshot::Receiver<()>,
) {
    let top = tree.top_path.clone();
    let mut sink = Sink {
        tx,
        dropped: 0,
        last_modify: None,
    };
    let mut stream = match inotify.into_event_stream([0u8; 16 * 1024]) {
        Ok(s) => s,
        Err(_) => return sink.end("error", &top),
    };
    // An IN_MOVED_FROM waiting for its IN_MOVED_TO: cookie, path, is_dir.
    let mut pending: Option<(u32, RelPath, bool)> = None;
    loop {
        let next = tokio::select! {
            _ = &mut stop => return sink.end("stopped", &top),
            n = stream.next() => n,
            _ = tokio::time::sleep(PAIR_WAIT), if pending.is_some() => {
                moved_out(&mut tree, &mut sink, pending.take());
                continue;
            }
        };
        let e = match next {
            Some(Ok(e)) => e,
            _ => return sink.end("error", &top),
        };
        let paired = e.mask.contains(EventMask::MOVED_TO)
            && matches!(&pending, Some((c, _, _)) if *c == e.cookie);
        if !paired {
            moved_out(&mut tree, &mut sink, pending.take());
        }
        if let Some(reason) = handle(&mut tree, &mut sink, &mut pending, e) {
            return sink.end(reason, &top);
        }
    }
}

fn moved_out(tree: &mut Tree, sink: &mut Sink, pending: Option<(u32, RelPath, bool)>) {
    if let Some((_, from, is_dir)) = pending {
        if is_dir {
            tree.forget(&from);
        }
        let mut v = ev("move", &from, is_dir);
        v["from"] = json!(from.display());
        v["to"] = Value::Null;
        sink.send(v);
    }
}

/// One inotify event; `Some(reason)` when the watch is over.
fn handle(
    tree: &mut Tree,
    sink: &mut Sink,
    pending: &mut Option<(u32, RelPath, bool)>,
    e: EventOwned,
) -> Option<&'static str> {
    if e.mask.contains(EventMask::Q_OVERFLOW) {
        sink.send(json!({"type": "overflow", "dropped": null}));
        return None;
    }
    let id = e.wd.get_watch_descriptor_id();
    let is_top = id == tree.top;
    if is_top && e.mask.contains(EventMask::UNMOUNT) {
        return Some("unmounted");
    }
    if is_top
        && e.mask
            .intersects(EventMask::DELETE_SELF | EventMask::IGNORED)
    {
        return Some("deleted");
    }
    if is_top && e.mask.contains(EventMask::MOVE_SELF) {
        return Some("moved");
    }
    if e.mask.contains(EventMask::IGNORED) {
        tree.dirs.remove(&id);
        return None;
    }
    let (_, dir) = tree.dirs.get(&id)?;
    // Events on a subdirectory itself (no name): its parent reports them.
    let name = e.name.as_ref().and_then(|n| n.to_str())?;
    let p = dir.child(name);
    let is_dir = e.mask.contains(EventMask::ISDIR);
    if e.mask.contains(EventMask::CREATE) {
        sink.send(ev("create", &p, is_dir));
        if is_dir && tree.recursive {
            added(tree, sink, &p);
        }
    } else if e.mask.contains(EventMask::MODIFY) {
        sink.send(ev("modify", &p, is_dir));
    } else if e.mask.contains(EventMask::DELETE) {
        sink.send(ev("delete", &p, is_dir));
    } else if e.mask.contains(EventMask::MOVED_FROM) {
        *pending = Some((e.cookie, p, is_dir));
    } else if e.mask.contains(EventMask::MOVED_TO) {
        let from = match pending.take() {
            Some((c, from, _)) if c == e.cookie => Some(from),
            _ => None,
        };
        let mut v = ev("move", &p, is_dir);
        v["from"] = json!(from.as_ref().map(RelPath::display));
        v["to"] = json!(p.display());
        sink.send(v);
        if is_dir && tree.recursive {
            match from {
                Some(from) => tree.renamed(&from, &p),
                None => added(tree, sink, &p),
            }
        }
    }
    None
}

/// A directory appeared (recursive watch): watch it and report what it
/// already holds.
fn added(tree: &mut Tree, sink: &mut Sink, p: &RelPath) {
    let mut found = Vec::new();
    let r = Root::new(&tree.root).and_then(|r| tree.add_tree(&r, p, Some(&mut found)));
    for v in found {
        sink.send(v);
    }
    if let Err(e) = r {
        if e.status != hyper::StatusCode::NOT_FOUND {
            sink.send(json!({"type": "error", "path": p.display(), "detail": e.detail}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut mpsc::Receiver<Bytes>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(b) = rx.try_recv() {
            out.push(String::from_utf8(b.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn fs_watch_queue_is_bounded_and_keeps_overflow_and_end() {
        let (tx, mut rx) = queue();
        let mut sink = Sink {
            tx,
            dropped: 0,
            last_modify: None,
        };
        let p = RelPath::parse("/d/f").unwrap();
        for _ in 0..QUEUE + 100 {
            sink.send(ev("create", &p, false));
        }
        sink.end("deleted", &RelPath::parse("/d").unwrap());
        let got = drain(&mut rx);
        assert_eq!(got.len(), QUEUE + 2, "bounded, with room kept back");
        assert!(
            got[QUEUE].starts_with("event: overflow\n"),
            "{}",
            got[QUEUE]
        );
        assert!(got[QUEUE].contains("\"dropped\":100"), "{}", got[QUEUE]);
        assert!(got[QUEUE + 1].starts_with("event: end\n"));
        assert!(got[QUEUE + 1].contains("\"reason\":\"deleted\""));
    }

    #[test]
    fn fs_watch_modify_is_coalesced_only_while_unread() {
        let (tx, mut rx) = queue();
        let mut sink = Sink {
            tx,
            dropped: 0,
            last_modify: None,
        };
        let p = RelPath::parse("/f").unwrap();
        sink.send(ev("modify", &p, false));
        sink.send(ev("modify", &p, false));
        assert_eq!(drain(&mut rx).len(), 1, "the second one is unread anyway");
        sink.send(ev("modify", &p, false));
        assert_eq!(drain(&mut rx).len(), 1, "read: the next write is reported");
        sink.send(ev("modify", &p, false));
        sink.send(ev("modify", &RelPath::parse("/g").unwrap(), false));
        sink.send(ev("modify", &p, false));
        assert_eq!(drain(&mut rx).len(), 3);
    }
}
