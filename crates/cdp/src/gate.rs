//! The connection cap. Past `max` open connections, the oldest connection
//! that has not sent a request yet is closed to make room: a flood of idle
//! sockets cannot lock real clients out. If every connection is busy (live
//! WebSockets), the newcomer gets a plain 503 saying why.
//!
//! The gate also gives memory back after a burst: glibc keeps freed heap
//! pages for reuse, so 64 busy clients (or 10,000 idle ones) would stay in
//! the bridge's RSS for as long as any other connection lives. Whenever the
//! open count falls to half the most open since the last trim, the bridge
//! calls `malloc_trim`: O(log n) trims per burst, tied to connections
//! closing, never to a timer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

#[derive(Default)]
struct Inner {
    next: u64,
    /// Every open connection by accept order; `Some` while it is idle, with
    /// the means to close it.
    open: BTreeMap<u64, Option<oneshot::Sender<()>>>,
    /// The most connections open at once since the last trim.
    peak: usize,
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
        inner.peak = inner.peak.max(inner.open.len());
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

    /// The high-water mark the next trim is measured against.
    #[cfg(test)]
    fn peak(&self) -> usize {
        self.lock().peak
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
        let trim = {
            let mut inner = self.gate.lock();
            inner.open.remove(&self.id);
            let open = inner.open.len();
            let trim = inner.peak >= 2 && open <= inner.peak / 2;
            if trim {
                inner.peak = open;
            }
            trim
        };
        if trim {
            // SAFETY: malloc_trim has no preconditions; it only returns
            // free heap pages to the kernel.
            unsafe {
                libc::malloc_trim(0);
            }
        }
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

    #[test]
    fn memory_is_trimmed_each_time_the_open_count_halves() {
        let gate = Gate::new(100);
        let mut slots: Vec<_> = (0..64).map(|_| gate.admit().unwrap().0).collect();
        assert_eq!(gate.peak(), 64);
        slots.truncate(33);
        assert_eq!(gate.peak(), 64, "not yet half");
        slots.pop();
        assert_eq!(gate.peak(), 32, "trimmed at 32, the new mark");
        slots.truncate(2);
        assert_eq!(gate.peak(), 2, "and again on the way down");
    }
}
