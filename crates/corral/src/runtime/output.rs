//! Recent output of each program, for `corralctl tail`: the last lines kept
//! in memory (bounded in bytes, so a noisy program cannot grow corral), and
//! a broadcast of new lines for `tail -f`. Independent of `log_dir`, so tail
//! works in a container that only logs to stdout.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

/// Bytes of recent output kept per program.
const RING_BYTES: usize = 64 * 1024;
/// Lines a slow `tail -f` may fall behind before it is told it skipped some.
const FOLLOW_BACKLOG: usize = 256;

pub struct Output {
    ring: Mutex<Ring>,
    tx: broadcast::Sender<Arc<str>>,
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<Arc<str>>,
    bytes: usize,
}

impl Output {
    fn new() -> Output {
        Output {
            ring: Mutex::new(Ring::default()),
            tx: broadcast::channel(FOLLOW_BACKLOG).0,
        }
    }

    pub fn push(&self, line: &[u8]) {
        let line: Arc<str> = String::from_utf8_lossy(line).into();
        {
            let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            ring.bytes += line.len();
            ring.lines.push_back(line.clone());
            while ring.bytes > RING_BYTES {
                match ring.lines.pop_front() {
                    Some(old) => ring.bytes -= old.len(),
                    None => break,
                }
            }
        }
        // No receivers is the normal case: nobody is following.
        let _ = self.tx.send(line);
    }

    /// The last `n` lines kept.
    pub fn last(&self, n: usize) -> Vec<String> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let skip = ring.lines.len().saturating_sub(n);
        ring.lines
            .iter()
            .skip(skip)
            .map(|l| l.to_string())
            .collect()
    }

    /// New lines from now on. Subscribe before reading [`Output::last`] so
    /// no line falls between the two.
    pub fn follow(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }
}

/// Every program's output, by name.
#[derive(Default, Clone)]
pub struct Outputs(Arc<Mutex<HashMap<String, Arc<Output>>>>);

impl Outputs {
    pub fn get(&self, name: &str) -> Arc<Output> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_string())
            .or_insert_with(|| Arc::new(Output::new()))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_within_the_byte_bound() {
        let out = Output::new();
        let line = vec![b'x'; 1000];
        for _ in 0..200 {
            out.push(&line);
        }
        out.push(b"last");
        let kept = out.last(usize::MAX);
        assert!(kept.len() < 70, "bounded: {}", kept.len());
        assert_eq!(out.last(1), ["last"]);
    }

    #[test]
    fn followers_see_new_lines() {
        let out = Output::new();
        let mut rx = out.follow();
        out.push(b"hello");
        assert_eq!(&*rx.try_recv().unwrap(), "hello");
    }
}
