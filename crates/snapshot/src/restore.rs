//! `restore`: load a storageState into the persistent profile — the reverse
//! of a harvest. The whole file is parsed and checked first; a malformed
//! file changes nothing. Cookies go in with `Storage.setCookies`; each
//! origin's localStorage and IndexedDB are written from a hidden,
//! intercepted page (no request reaches the origin).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::cdp::{Cdp, CdpError};
use crate::page::ScratchPage;
use crate::state::StorageState;

const RESTORE_JS: &str = include_str!("js/restore.js");

/// What a restore did.
#[derive(Debug, Default)]
pub struct Restored {
    pub cookies: usize,
    pub origins: usize,
    /// Origins that could not be written, with why.
    pub failed: Vec<(String, String)>,
}

pub async fn restore(
    cdp_url: &str,
    state: &StorageState,
    step_timeout: Duration,
) -> Result<Restored, CdpError> {
    let cdp = Arc::new(Cdp::connect(cdp_url, step_timeout).await?);
    let cookies: Vec<_> = state.cookies.iter().map(|c| c.to_cdp()).collect();
    if !cookies.is_empty() {
        cdp.call(None, "Storage.setCookies", json!({ "cookies": cookies }))
            .await?;
    }
    let mut done = Restored {
        cookies: cookies.len(),
        ..Restored::default()
    };
    if state.origins.is_empty() {
        return Ok(done);
    }
    let page = ScratchPage::open(cdp.clone()).await?;
    for origin in &state.origins {
        let arg = serde_json::to_string(origin).expect("serialisable");
        let result = match page.goto(&origin.origin, step_timeout).await {
            Ok(()) => page
                .eval(&format!("({RESTORE_JS})({arg})"))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => done.origins += 1,
            Err(e) => {
                tracing::warn!(origin = %origin.origin, "not restored: {e}");
                done.failed.push((origin.origin.clone(), e.to_string()));
            }
        }
    }
    page.close().await;
    Ok(done)
}
