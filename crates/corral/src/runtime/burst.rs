//! Giving memory back after a burst of clients.
//!
//! Two hundred probe or control connections at once make a few MiB of
//! per-connection buffers. They are freed when the connections close, but
//! glibc keeps freed heap memory for reuse, so a PID 1 that lives for weeks
//! would keep its largest burst forever. When the last client connection of
//! any kind closes, corral asks glibc to return free pages (`malloc_trim`):
//! tied to that event, not a timer, so an idle corral still never wakes up.

use std::sync::atomic::{AtomicUsize, Ordering};

static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Held by each client connection (control socket or HTTP) while it lives.
pub struct Connection(());

impl Connection {
    pub fn open() -> Connection {
        OPEN.fetch_add(1, Ordering::Relaxed);
        Connection(())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if OPEN.fetch_sub(1, Ordering::Relaxed) == 1 {
            // SAFETY: malloc_trim has no preconditions; it only releases free
            // memory back to the kernel.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}
