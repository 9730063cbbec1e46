//! A token that follows its file: rotation without a restart.
//!
//! Kubernetes updates a mounted Secret by swapping a `..data` symlink in
//! the mount directory, so the directory is watched (inotify), not the file:
//! any create, move, write or delete there re-reads the file. If the file
//! is gone or empty after a change, no token is configured (requests are
//! refused) until a good one appears: failing closed, never open.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use futures_util::StreamExt;
use inotify::{Inotify, WatchMask};

use crate::Token;

/// The token in force now.
#[derive(Clone)]
pub struct TokenSource {
    current: Arc<RwLock<Option<Token>>>,
}

impl TokenSource {
    /// A token that never changes (from the environment, or none).
    pub fn fixed(token: Option<Token>) -> TokenSource {
        TokenSource {
            current: Arc::new(RwLock::new(token)),
        }
    }

    /// Reads `path` now and again whenever its directory changes. Must be
    /// called inside a tokio runtime (the watcher is a task).
    pub fn watch_file(path: &Path) -> Result<TokenSource, String> {
        let first = Token::load(Some(path), "", None)?;
        let source = TokenSource::fixed(first);
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let inotify = Inotify::init().map_err(|e| format!("inotify: {e}"))?;
        inotify
            .watches()
            .add(
                &dir,
                WatchMask::CREATE
                    | WatchMask::MOVED_TO
                    | WatchMask::CLOSE_WRITE
                    | WatchMask::DELETE
                    | WatchMask::MOVED_FROM,
            )
            .map_err(|e| format!("watching {}: {e}", dir.display()))?;
        let mut events = inotify
            .into_event_stream(vec![0u8; 4096])
            .map_err(|e| format!("inotify: {e}"))?;
        let (path, current) = (path.to_path_buf(), source.current.clone());
        tokio::spawn(async move {
            while events.next().await.is_some() {
                let fresh = Token::load(Some(&path), "", None).ok().flatten();
                let mut slot = current.write().unwrap_or_else(|e| e.into_inner());
                if fresh.is_none() && slot.is_some() {
                    tracing::warn!(path = %path.display(), "token file missing or empty: refusing requests until it is back");
                } else if fresh.is_some()
                    && slot.as_ref().map(Token::fingerprint)
                        != fresh.as_ref().map(Token::fingerprint)
                {
                    tracing::info!(path = %path.display(), "token file changed: new token in force");
                }
                *slot = fresh;
            }
        });
        Ok(source)
    }

    pub fn get(&self) -> Option<Token> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn follows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "one\n").unwrap();
        let source = TokenSource::watch_file(&path).unwrap();
        assert!(source.get().unwrap().admits(Some("Bearer one"), None));
        // Rotate the way Kubernetes does: write elsewhere, move into place.
        let next = dir.path().join(".next");
        std::fs::write(&next, "two\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !source
            .get()
            .is_some_and(|t| t.admits(Some("Bearer two"), None))
        {
            assert!(tokio::time::Instant::now() < deadline, "token not rotated");
            tokio::task::yield_now().await;
        }
        std::fs::remove_file(&path).unwrap();
        while source.get().is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "removed token still in force"
            );
            tokio::task::yield_now().await;
        }
    }
}
