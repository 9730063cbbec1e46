//! One harvest: all cookies, then every origin's localStorage and IndexedDB,
//! read over raw CDP from the running browser (live values, not the files on
//! disk), for every origin found by [`crate::origins`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cdp::{Cdp, CdpError};
use crate::origins;
use crate::page::ScratchPage;
use crate::state::{Cookie, Item, OriginState, StorageState};

const COLLECT_JS: &str = include_str!("js/collect.js");

#[derive(Debug, Clone)]
pub struct HarvestOptions {
    /// `http://127.0.0.1:9223` (or a `ws://` browser URL).
    pub cdp: String,
    /// Chromium's `--user-data-dir`, to find origins with no open tab.
    pub profile: Option<PathBuf>,
    /// Bound on each CDP call and each origin's page load.
    pub step_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HarvestError {
    #[error(transparent)]
    Cdp(#[from] CdpError),
    #[error("reading the profile: {0}")]
    Profile(String),
}

/// What a harvest found, and what it skipped.
#[derive(Debug)]
pub struct Harvest {
    pub state: StorageState,
    /// Origins that could not be read, with why (they are left out).
    pub skipped: Vec<(String, String)>,
    pub elapsed: Duration,
}

pub async fn harvest(opts: &HarvestOptions) -> Result<Harvest, HarvestError> {
    let started = Instant::now();
    let cdp = Arc::new(Cdp::connect(&opts.cdp, opts.step_timeout).await?);
    let raw = cdp.call(None, "Storage.getCookies", json!({})).await?;
    let cookies: Vec<Cookie> = raw["cookies"]
        .as_array()
        .map(|a| a.iter().filter_map(Cookie::from_cdp).collect())
        .unwrap_or_default();

    let mut candidates: BTreeSet<String> = BTreeSet::new();
    if let Some(profile) = &opts.profile {
        let dir = profile.clone();
        let found = tokio::task::spawn_blocking(move || origins::from_profile(&dir))
            .await
            .map_err(|e| HarvestError::Profile(e.to_string()))?
            .map_err(HarvestError::Profile)?;
        candidates.extend(found);
    }
    let targets = cdp.call(None, "Target.getTargets", json!({})).await?;
    for t in targets["targetInfos"].as_array().into_iter().flatten() {
        if let Some(o) = t["url"].as_str().and_then(origins::normalize) {
            candidates.insert(o);
        }
    }
    for c in &cookies {
        if let Some(o) = origins::from_cookie_domain(&c.domain, c.secure) {
            candidates.insert(o);
        }
    }

    let page = ScratchPage::open(cdp.clone()).await?;
    let mut states = Vec::new();
    let mut skipped = Vec::new();
    for origin in &candidates {
        match read_origin(&page, origin, opts.step_timeout).await {
            Ok(Some(state)) => states.push(state),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(origin, "skipped: {e}");
                skipped.push((origin.clone(), e.to_string()));
            }
        }
    }
    page.close().await;
    Ok(Harvest {
        state: StorageState {
            cookies,
            origins: states,
        },
        skipped,
        elapsed: started.elapsed(),
    })
}

/// One origin's storage; `None` when it holds nothing.
async fn read_origin(
    page: &ScratchPage,
    origin: &str,
    timeout: Duration,
) -> Result<Option<OriginState>, CdpError> {
    page.goto(origin, timeout).await?;
    let text = page.eval(&format!("({COLLECT_JS})()")).await?;
    let parsed: Value = text
        .as_str()
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| CdpError::Protocol {
            method: "collect".into(),
            message: format!("{origin}: unexpected result"),
        })?;
    let local_storage: Vec<Item> =
        serde_json::from_value(parsed["localStorage"].clone()).unwrap_or_default();
    let indexed_db: Vec<Value> = parsed["indexedDB"].as_array().cloned().unwrap_or_default();
    if local_storage.is_empty() && indexed_db.is_empty() {
        return Ok(None);
    }
    Ok(Some(OriginState {
        origin: origin.to_string(),
        local_storage,
        indexed_db,
    }))
}
