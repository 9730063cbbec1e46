//! One harvest: all cookies, then every origin's localStorage and IndexedDB,
//! read over raw CDP from the running browser (live values, not the files on
//! disk), for every origin found by [`crate::origins`].

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cdp::{Cdp, CdpError};
use crate::page::ScratchPage;
use crate::state::{Cookie, Item, OriginState, StorageState};
use crate::{frames, locate, origins};

const COLLECT_JS: &str = include_str!("js/collect.js");

#[derive(Debug, Clone)]
pub struct HarvestOptions {
    /// `http://127.0.0.1:9223` (or a `ws://` browser URL).
    pub cdp: String,
    /// Chromium's `--user-data-dir`, to find origins with no open tab; when
    /// `None`, it is found (see [`crate::locate`]) unless `open_tabs_only`.
    pub profile: Option<PathBuf>,
    /// Harvest only the origins of open tabs and cookie domains: no profile
    /// needed, origins whose tab is closed are missed.
    pub open_tabs_only: bool,
    /// Read each origin by navigating the scratch page to it (the original
    /// path, one navigation per origin) instead of grouping same-site
    /// origins as iframes of one document (see [`crate::frames`]).
    pub navigate_each: bool,
    /// Bound on each CDP call and each origin's page load.
    pub step_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HarvestError {
    #[error(transparent)]
    Cdp(#[from] CdpError),
    #[error("reading the profile: {0}")]
    Profile(String),
    #[error("cannot find Chromium's profile (--user-data-dir): {0}; pass --profile DIR, or --open-tabs-only to harvest only open tabs and cookie domains")]
    NoProfile(String),
}

/// The profile to read: `--profile`, else found by [`find_profile`], else
/// `None` only when the user asked for open tabs only.
pub async fn resolve_profile(
    opts: &HarvestOptions,
    cdp: &Arc<Cdp>,
) -> Result<Option<PathBuf>, HarvestError> {
    if let Some(p) = &opts.profile {
        return Ok(Some(p.clone()));
    }
    if opts.open_tabs_only {
        return Ok(None);
    }
    let found = find_profile(&opts.cdp, cdp, opts.step_timeout).await?;
    tracing::info!(profile = %found.dir().display(), via = ?found, "found Chromium's profile");
    Ok(Some(found.dir().to_path_buf()))
}

/// `serve` finds the profile once, at start (Chromium is ready by then:
/// corral starts it after), rather than on every harvest.
pub async fn locate_profile(opts: &HarvestOptions) -> Result<Option<PathBuf>, HarvestError> {
    if opts.profile.is_some() || opts.open_tabs_only {
        return Ok(opts.profile.clone());
    }
    let cdp = Arc::new(Cdp::connect(&opts.cdp, opts.step_timeout).await?);
    resolve_profile(opts, &cdp).await
}

/// Chromium's user-data-dir: from /proc when it is a local process we may
/// inspect, else from `chrome://version` read in a scratch page.
pub async fn find_profile(
    cdp_url: &str,
    cdp: &Arc<Cdp>,
    timeout: Duration,
) -> Result<locate::Found, HarvestError> {
    let mut tried = Vec::new();
    if let Some(port) = locate::local_port(cdp_url) {
        let found = tokio::task::spawn_blocking(move || locate::from_proc(port))
            .await
            .ok()
            .flatten();
        if let Some(f) = found {
            return Ok(f);
        }
        tried.push(format!(
            "no readable local process with a profile listens on port {port}"
        ));
    }
    let page = ScratchPage::open(cdp.clone()).await?;
    let shown = async {
        page.goto_url("chrome://version", timeout).await?;
        page.eval("document.getElementById('profile_path')?.textContent ?? ''")
            .await
    }
    .await;
    page.close().await;
    let shown = shown?;
    let path = shown.as_str().unwrap_or_default().trim().to_string();
    if let Some(f) = locate::from_profile_path(&path) {
        return Ok(f);
    }
    tried.push(match path.as_str() {
        "" => "chrome://version shows no profile path".to_string(),
        p => format!("chrome://version shows {p}, which is not a profile on this machine"),
    });
    Err(HarvestError::NoProfile(tried.join("; ")))
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
    // The scratch page opens (tens of ms of Chromium's work) while the
    // cookies and the origins are gathered.
    let (page, found) = tokio::join!(ScratchPage::open(cdp.clone()), discover(opts, &cdp));
    // A page that failed to open has closed its own target.
    let page = page?;
    let (cookies, candidates) = match found {
        Ok(f) => f,
        Err(e) => {
            page.close().await;
            return Err(e);
        }
    };
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "cookies, origins and scratch page"
    );
    let list: Vec<String> = candidates.into_iter().collect();
    let mut read: HashMap<String, Result<Option<OriginState>, CdpError>> = HashMap::new();
    if !opts.navigate_each {
        read_grouped(&page, &list, opts.step_timeout, &mut read).await;
    }
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "grouped reads done"
    );
    let mut states = Vec::new();
    let mut skipped = Vec::new();
    for origin in &list {
        // Not read (or not readable) as a frame of a group: navigate to it.
        let result = match read.remove(origin) {
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) => {
                tracing::debug!(origin, "not read as a frame ({e}): navigating");
                read_origin(&page, origin, opts.step_timeout).await
            }
            None => read_origin(&page, origin, opts.step_timeout).await,
        };
        match result {
            Ok(Some(state)) => states.push(state),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(origin, "skipped: {e}");
                skipped.push((origin.clone(), e.to_string()));
            }
        }
    }
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "every origin read"
    );
    page.close().await;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "scratch page closed"
    );
    Ok(Harvest {
        state: StorageState {
            cookies,
            origins: states,
        },
        skipped,
        elapsed: started.elapsed(),
    })
}

/// The cookies, and the origins to read: the profile's, the open targets',
/// the cookie domains' (see [`crate::origins`]).
async fn discover(
    opts: &HarvestOptions,
    cdp: &Arc<Cdp>,
) -> Result<(Vec<Cookie>, BTreeSet<String>), HarvestError> {
    let raw = cdp.call(None, "Storage.getCookies", json!({})).await?;
    let cookies: Vec<Cookie> = raw["cookies"]
        .as_array()
        .map(|a| a.iter().filter_map(Cookie::from_cdp).collect())
        .unwrap_or_default();
    let mut candidates: BTreeSet<String> = BTreeSet::new();
    if let Some(profile) = resolve_profile(opts, cdp).await? {
        let found = tokio::task::spawn_blocking(move || origins::from_profile(&profile))
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
    Ok((cookies, candidates))
}

/// Reads every origin of `list` whose group (see [`frames::groups`]) loads:
/// one navigation per group, the rest as iframes, every frame's script run
/// at once. What fails here is left out of `read` or an `Err`, and is read
/// again by navigating to it.
async fn read_grouped(
    page: &ScratchPage,
    list: &[String],
    timeout: Duration,
    read: &mut HashMap<String, Result<Option<OriginState>, CdpError>>,
) {
    let collect = format!("({COLLECT_JS})()");
    for group in frames::groups(list) {
        if group.len() == 1 {
            continue; // one origin: the navigation path is the same work
        }
        let t = std::time::Instant::now();
        tracing::debug!("group of {} at {}", group.len(), group[0]);
        let frames = match frames::load_group(page, &group, timeout).await {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!("loading {} frames: {e}", group.len());
                continue;
            }
        };
        let reads = group.iter().map(|origin| {
            let frame = frames.get(origin);
            let collect = &collect;
            async move {
                let Some(frame) = frame else {
                    return Err(CdpError::Protocol {
                        method: "frames".into(),
                        message: format!("{origin}: no frame"),
                    });
                };
                let value = frames::eval_in_frame(page, frame, collect).await?;
                parse_collected(origin, &value)
            }
        });
        tracing::debug!(
            ms = t.elapsed().as_millis() as u64,
            "frames loaded: {}",
            frames.len()
        );
        let results = futures_util::future::join_all(reads).await;
        tracing::debug!(ms = t.elapsed().as_millis() as u64, "frames read");
        for (origin, r) in group.iter().zip(results) {
            read.insert(origin.clone(), r);
        }
    }
}

/// One origin's storage; `None` when it holds nothing.
async fn read_origin(
    page: &ScratchPage,
    origin: &str,
    timeout: Duration,
) -> Result<Option<OriginState>, CdpError> {
    page.goto(origin, timeout).await?;
    let text = page.eval(&format!("({COLLECT_JS})()")).await?;
    parse_collected(origin, &text)
}

/// `collect.js`'s answer (a JSON string) as an origin's state.
fn parse_collected(origin: &str, text: &Value) -> Result<Option<OriginState>, CdpError> {
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
