//! The connection cap. Past `max` open connections, the oldest connection
//! that has not sent a request yet is closed to make room: a flood of idle
//! sockets cannot lock real clients out. If every connection is busy (live
//! WebSockets), the newcomer gets a plain 503 saying why.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

#[derive(Default)]
struct Inner {
    next: u64,
    /// Every open connection by accept order; `Some` while it is idle, with
    /// the means to close it.
    open: BTreeMap<u64, Option<oneshot::Sender<()>>>,
}

pub struct Gate {
    max: usize,
    inner: Mutex<Inner>,
}

/// A connection's place; freed when dropped.
pub struct Slot {
    gate: Arc<Gate>,
    id: u64,
}

impl Gate {
    pub fn new(max: usize) -> Arc<Gate> {
        Arc::new(Gate {
            max: max.max(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new connection, and a receiver that fires if it is
    /// evicted while idle. `None`: full of busy connections.
    pub fn admit(self: &Arc<Gate>) -> Option<(Slot, oneshot::Receiver<()>)> {
        let mut inner = self.lock();
        if inner.open.len() >= self.max {
            let oldest_idle = inner
                .open
                .iter()
                .find(|(_, idle)| idle.is_some())
                .map(|(id, _)| *id)?;
            if let Some(Some(close)) = inner.open.remove(&oldest_idle) {
                let _ = close.send(());
            }
        }
        let id = inner.next;
        inner.next += 1;
        let (tx, rx) = oneshot::channel();
        inner.open.insert(id, Some(tx));
        Some((
            Slot {
                gate: self.clone(),
                id,
            },
            rx,
        ))
    }

    pub fn open(&self) -> usize {
        self.lock().open.len()
    }
}

impl Slot {
    /// The connection sent a request: it is no longer a candidate for eviction.
    pub fn busy(&self) {
        if let Some(entry) = self.gate.lock().open.get_mut(&self.id) {
            *entry = None;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.lock().open.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_oldest_idle_then_refuses_when_all_are_busy() {
        let gate = Gate::new(2);
        let (a, mut a_closed) = gate.admit().unwrap();
        let (b, _b_closed) = gate.admit().unwrap();
        b.busy();
        let (c, _c_closed) = gate.admit().unwrap();
        assert!(a_closed.try_recv().is_ok(), "oldest idle evicted");
        assert_eq!(gate.open(), 2);
        c.busy();
        assert!(gate.admit().is_none(), "all busy: refused");
        drop(a); // already evicted: dropping it frees nothing twice
        assert_eq!(gate.open(), 2);
        drop(b);
        assert!(gate.admit().is_some());
    }
}
