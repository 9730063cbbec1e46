//! The acceptor's back-off with a listener that fails on demand, on tokio's
//! paused clock, and the cap.

use super::*;
use std::sync::Mutex;

/// Fails `failures` times with EMFILE, then accepts.
struct Flaky {
    left: Mutex<u32>,
    calls: Arc<Mutex<Vec<tokio::time::Instant>>>,
}

impl Listener for Flaky {
    type Io = ();
    type Addr = ();
    fn accept(&self) -> impl Future<Output = io::Result<((), ())>> + Send {
        self.calls.lock().unwrap().push(tokio::time::Instant::now());
        let mut left = self.left.lock().unwrap();
        let r = if *left == 0 {
            Ok(((), ()))
        } else {
            *left -= 1;
            Err(io::Error::from_raw_os_error(libc_emfile()))
        };
        std::future::ready(r)
    }
}

fn libc_emfile() -> i32 {
    24 // EMFILE on Linux
}

#[tokio::test(start_paused = true)]
async fn accept_errors_back_off_instead_of_spinning() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut a = Acceptor::new(
        Flaky {
            left: Mutex::new(12),
            calls: calls.clone(),
        },
        "test",
    );
    let t0 = tokio::time::Instant::now();
    a.accept().await;
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 13, "12 failures, then the accept");
    // 5, 10, 20 … ms, capped at 1 s: about 5.3 s of waiting for 12 failures,
    // not 12 calls in a microsecond.
    let waited = calls.last().unwrap().duration_since(t0);
    assert!(waited >= Duration::from_secs(5), "{waited:?}");
    let gaps: Vec<_> = calls.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps[0], Duration::from_millis(5));
    assert!(gaps.iter().all(|g| *g <= Duration::from_secs(1)));
    assert_eq!(a.failures, 0, "the burst is over");
    assert_eq!(a.delay, FIRST_DELAY, "and the next one starts small again");
}

#[test]
fn the_cap_refuses_past_max_and_frees_on_drop() {
    let limit = Limit::new(2, "test");
    let a = limit.admit().unwrap();
    let _b = limit.admit().unwrap();
    assert!(limit.admit().is_none());
    assert!(limit.admit().is_none());
    drop(a);
    assert!(limit.admit().is_some());
}
