//! Reading many origins with few navigations.
//!
//! CDP's DOMStorage and IndexedDB domains take an origin or storage key but
//! still answer "Frame not found" / "No document for given frame" unless a
//! frame of that origin is live in the attached page (Chromium 156,
//! measured), so every origin needs a document. A top-level navigation per
//! origin costs ~20 ms; most of a harvest. But origins of one **site** can
//! share one: the scratch page is navigated to the first origin of a group,
//! whose (locally fulfilled) document holds an iframe for each of the
//! others, so they all load at once and one load event says so (every
//! request is still fulfilled locally, none reaches a server). A same-site iframe keeps first-party storage
//! (storage partitioning keys only cross-site frames), so it reads exactly
//! what a top-level page of that origin would, with the same script
//! (`collect.js`), run in an isolated world of each frame.
//!
//! Same-site needs the public suffix list in general (`a.github.io` and
//! `b.github.io` are different sites); without it, only what is certainly
//! one site is grouped: the same scheme and host, any port (the site
//! ignores ports). Each other host gets its own navigation, as before.
//! A frame that cannot be read this way is read again by navigating to it.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cdp::CdpError;
use crate::origins;
use crate::page::ScratchPage;

/// Iframes loaded at once (a bound on one document's work).
const BATCH: usize = 16;

/// `scheme://host` of an origin: origins with the same one are same-site.
fn site_of(origin: &str) -> &str {
    let (scheme, rest) = origin.split_once("://").unwrap_or(("", origin));
    let host_end = if rest.starts_with('[') {
        rest.find(']').map(|i| i + 1).unwrap_or(rest.len())
    } else {
        rest.find(':').unwrap_or(rest.len())
    };
    &origin[..scheme.len() + 3 + host_end]
}

/// `origins` in groups (order kept) of at most `BATCH + 1` same-site origins.
pub fn groups(origins: &[String]) -> Vec<Vec<String>> {
    let mut by_site: Vec<(String, Vec<String>)> = Vec::new();
    for o in origins {
        let site = site_of(o);
        match by_site
            .iter_mut()
            .find(|(s, g)| s == site && g.len() <= BATCH)
        {
            Some((_, g)) => g.push(o.clone()),
            None => by_site.push((site.to_string(), vec![o.clone()])),
        }
    }
    by_site.into_iter().map(|(_, g)| g).collect()
}

/// Navigates the page to `group[0]` with a document holding an iframe for
/// each other origin of the group, so that one load event covers them all,
/// and returns each origin's frame id (the top frame's for `group[0]`).
pub async fn load_group(
    page: &ScratchPage,
    group: &[String],
    timeout: Duration,
) -> Result<HashMap<String, String>, CdpError> {
    let url = format!("{}/", group[0]);
    let iframes: String = group[1..]
        .iter()
        .map(|o| format!("<iframe src=\"{o}/\"></iframe>"))
        .collect();
    page.serve(
        &url,
        format!("<!doctype html><html><head></head><body>{iframes}</body></html>"),
    );
    let loaded = page.goto_url(&url, timeout).await;
    page.forget(&url);
    loaded?;
    let tree = page
        .cdp()
        .call(Some(page.session()), "Page.getFrameTree", json!({}))
        .await?;
    let mut frames = HashMap::new();
    collect_frames(&tree["frameTree"], &mut frames);
    Ok(frames)
}

fn collect_frames(node: &Value, out: &mut HashMap<String, String>) {
    let frame = &node["frame"];
    if let (Some(url), Some(id)) = (frame["url"].as_str(), frame["id"].as_str()) {
        if let Some(o) = origins::normalize(url) {
            out.entry(o).or_insert_with(|| id.to_string());
        }
    }
    for child in node["childFrames"].as_array().into_iter().flatten() {
        collect_frames(child, out);
    }
}

/// Evaluates `expression` (awaiting a promise) in a fresh isolated world of
/// `frame`, which shares the frame's origin and so its storage.
pub async fn eval_in_frame(
    page: &ScratchPage,
    frame: &str,
    expression: &str,
) -> Result<Value, CdpError> {
    let world = page
        .cdp()
        .call(
            Some(page.session()),
            "Page.createIsolatedWorld",
            json!({ "frameId": frame, "worldName": "corral-snapshot" }),
        )
        .await?;
    let context = world["executionContextId"].clone();
    page.eval_with(expression, Some(context)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_ignore_ports_only() {
        assert_eq!(site_of("http://127.0.0.1:8080"), "http://127.0.0.1");
        assert_eq!(site_of("https://example.com"), "https://example.com");
        assert_eq!(site_of("http://[::1]:80"), "http://[::1]");
    }

    #[test]
    fn groups_same_host_keep_order_and_split_big_ones() {
        let o = |s: &str| s.to_string();
        let g = groups(&[
            o("http://127.0.0.1:1"),
            o("https://a.test"),
            o("http://127.0.0.1:2"),
            o("http://localhost:3"),
            o("https://127.0.0.1:4"),
        ]);
        assert_eq!(
            g,
            vec![
                vec![o("http://127.0.0.1:1"), o("http://127.0.0.1:2")],
                vec![o("https://a.test")],
                vec![o("http://localhost:3")],
                vec![o("https://127.0.0.1:4")],
            ]
        );
        let many: Vec<String> = (0..40).map(|p| format!("http://h:{p}")).collect();
        let g = groups(&many);
        assert_eq!(
            g.iter().map(Vec::len).collect::<Vec<_>>(),
            [BATCH + 1, BATCH + 1, 40 - 2 * (BATCH + 1)]
        );
        assert_eq!(g.concat(), many);
    }
}
