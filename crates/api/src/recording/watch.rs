//! The watcher of a recording in progress: the disk budget while it runs,
//! and corral's bookkeeping once ffmpeg ended by itself.

use corral_proto::State;

use super::{act, ffmpeg, finish, program, running, store, Config, Lock, WATCH_EVERY};
use crate::control::Client;

/// While recording `id`: stops it when the volume's free space falls
/// under half the budget (others wrote to it), and once ffmpeg ended by
/// itself (duration or size reached, crash) stops the program so corral
/// no longer counts it as wanted (an EXITED wanted program keeps /readyz
/// at 503).
pub async fn watch(c: Config, control: Client, id: String, lock: Lock) {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        // Held while deciding and stopping (released at the loop's end).
        let _guard = lock.lock().await;
        let s = match program(&c, &control).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(_) => continue, // corral busy or restarting: look again
        };
        if ffmpeg::read_params(&c.params).map(|p| p.id).ok().as_deref() != Some(&id) {
            return;
        }
        if !running(&s) {
            if matches!(s.state, State::Exited | State::Fatal | State::Backoff) {
                tracing::info!(%id, reason = ?s.reason, "recording ended by itself");
                let _ = act(&c, &control, false).await;
                finish(&c, &id, false).await;
            }
            return;
        }
        if let Ok(free) = store::free_bytes(&c.dir) {
            if free < c.min_free / 2 {
                tracing::warn!(%id, free, "the volume is filling up: stopping the recording");
                let _ = act(&c, &control, false).await;
                finish(&c, &id, true).await;
                return;
            }
        }
    }
}

/// At corral-api's start: watch a recording left running by a previous
/// corral-api, or clear one that ended meanwhile.
pub async fn adopt(c: Config, control: Client, lock: Lock) {
    let guard = lock.lock().await;
    if let Ok(Some(s)) = program(&c, &control).await {
        if running(&s) {
            if let Ok(p) = ffmpeg::read_params(&c.params) {
                drop(guard);
                watch(c, control, p.id, lock).await;
            }
        } else if matches!(s.state, State::Exited | State::Fatal | State::Backoff) {
            let _ = act(&c, &control, false).await;
        }
    }
}
