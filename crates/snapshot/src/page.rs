//! A scratch page for reading and writing one origin's storage without
//! disturbing the user: a hidden background target in the profile's own
//! browser context, every request it makes answered locally with an empty
//! document (CDP Fetch interception, as Playwright does), so navigating it
//! to an origin never contacts that origin's server. It is closed again on
//! every path out, so no target is ever left behind.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::cdp::{Cdp, CdpError};

/// The document every intercepted request gets.
const EMPTY_PAGE: &str = "<!doctype html><html><head></head><body></body></html>";

/// How long `close` waits for a closed target to leave Chromium's target
/// list, and how often it asks.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
const CLOSE_POLL: Duration = Duration::from_millis(10);

pub struct ScratchPage {
    cdp: Arc<Cdp>,
    target: String,
    session: String,
    fulfiller: JoinHandle<()>,
    /// Documents other than the empty one, by exact URL (see `serve`).
    documents: Documents,
}

type Documents = Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>;

impl ScratchPage {
    pub async fn open(cdp: Arc<Cdp>) -> Result<ScratchPage, CdpError> {
        // Hidden (no tab strip entry) and in the background (no focus change).
        let created = cdp
            .call(
                None,
                "Target.createTarget",
                json!({ "url": "about:blank", "background": true, "hidden": true }),
            )
            .await?;
        let target = created["targetId"].as_str().unwrap_or_default().to_string();
        let page = ScratchPage::attach(cdp.clone(), target.clone()).await;
        if page.is_err() {
            close_target(&cdp, &target).await;
        }
        page
    }

    async fn attach(cdp: Arc<Cdp>, target: String) -> Result<ScratchPage, CdpError> {
        let attached = cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut events = cdp.events();
        let (c, s) = (cdp.clone(), session.clone());
        let empty = base64::engine::general_purpose::STANDARD.encode(EMPTY_PAGE);
        let documents: Documents = Arc::default();
        let docs = documents.clone();
        let fulfiller = tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                if ev.method == "Fetch.requestPaused" && ev.session.as_deref() == Some(&s) {
                    let url = ev.params["request"]["url"].as_str().unwrap_or_default();
                    let doc = docs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(url)
                        .cloned();
                    let body = match doc {
                        Some(d) => base64::engine::general_purpose::STANDARD.encode(d),
                        None => empty.clone(),
                    };
                    c.send(
                        Some(&s),
                        "Fetch.fulfillRequest",
                        json!({
                            "requestId": ev.params["requestId"],
                            "responseCode": 200,
                            "responseHeaders": [{ "name": "Content-Type", "value": "text/html" }],
                            "body": body,
                        }),
                    );
                }
            }
        });
        let page = ScratchPage {
            cdp,
            target,
            session,
            fulfiller,
            documents,
        };
        let s = Some(page.session.as_str());
        page.cdp
            .call(
                s,
                "Fetch.enable",
                json!({ "patterns": [{ "urlPattern": "*" }] }),
            )
            .await?;
        page.cdp.call(s, "Page.enable", json!({})).await?;
        Ok(page)
    }

    /// Answers requests for exactly `url` with `html` instead of the empty
    /// document, until `forget`.
    pub fn serve(&self, url: &str, html: String) {
        self.documents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(url.to_string(), html);
    }

    pub fn forget(&self, url: &str) {
        self.documents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(url);
    }

    /// Navigates to `origin` and waits until its (empty) document has loaded.
    pub async fn goto(&self, origin: &str, timeout: Duration) -> Result<(), CdpError> {
        self.goto_url(&format!("{origin}/"), timeout).await
    }

    /// Navigates to `url` and waits for its load event.
    pub async fn goto_url(&self, url: &str, timeout: Duration) -> Result<(), CdpError> {
        let origin = url;
        let mut events = self.cdp.events();
        let nav = self
            .cdp
            .call(Some(&self.session), "Page.navigate", json!({ "url": url }))
            .await?;
        if let Some(err) = nav["errorText"].as_str() {
            return Err(CdpError::Protocol {
                method: "Page.navigate".into(),
                message: format!("{origin}: {err}"),
            });
        }
        let loaded = async {
            while let Ok(ev) = events.recv().await {
                if ev.method == "Page.loadEventFired"
                    && ev.session.as_deref() == Some(&self.session)
                {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, loaded)
            .await
            .map_err(|_| CdpError::Timeout(format!("loading {origin}")))
    }

    pub fn cdp(&self) -> &Cdp {
        &self.cdp
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    /// Evaluates an expression (awaiting a promise) and returns its value.
    pub async fn eval(&self, expression: &str) -> Result<Value, CdpError> {
        self.eval_with(expression, None).await
    }

    /// As `eval`, in execution context `context` (else the top frame's).
    pub async fn eval_with(
        &self,
        expression: &str,
        context: Option<Value>,
    ) -> Result<Value, CdpError> {
        let mut params =
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true });
        if let Some(c) = context {
            params["contextId"] = c;
        }
        let r = self
            .cdp
            .call(Some(&self.session), "Runtime.evaluate", params)
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            let message = ex["exception"]["description"]
                .as_str()
                .or(ex["text"].as_str())
                .unwrap_or("exception")
                .to_string();
            return Err(CdpError::Protocol {
                method: "Runtime.evaluate".into(),
                message,
            });
        }
        Ok(r["result"]["value"].clone())
    }

    /// Closes the target. Call it on every path; dropping without it leaks
    /// the target until the connection closes.
    pub async fn close(self) {
        self.fulfiller.abort();
        close_target(&self.cdp, &self.target).await;
    }
}

/// Closes `target` and waits (up to a deadline) until Chromium no longer
/// knows it. `Target.closeTarget` answers before the target has left
/// `Target.getTargets` and `/json/list`; without the wait a harvest that has
/// returned could still be seen with its scratch target by the next client.
async fn close_target(cdp: &Cdp, target: &str) {
    let params = json!({ "targetId": target });
    if cdp
        .call(None, "Target.closeTarget", params.clone())
        .await
        .is_err()
    {
        return; // already gone, or the connection is: nothing to wait for
    }
    let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
    while tokio::time::Instant::now() < deadline {
        // An error is "no such target" (gone) or a lost connection (Chromium
        // closes the connection's targets itself): either way, done.
        if cdp
            .call(None, "Target.getTargetInfo", params.clone())
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(CLOSE_POLL).await;
    }
    tracing::debug!(target, "scratch target still listed after closeTarget");
}
