//! The cookie journal: logins that survive a SIGKILL.
//!
//! Chromium writes its cookie store (`Default/Cookies`, SQLite) at most
//! every 30 s, so an OOM kill or a power cut loses the last half minute of
//! cookies — a login set just before comes back logged out, a logout comes
//! back logged in. CDP has no event for cookie changes (Set-Cookie headers
//! are per page session, `document.cookie` writes show nowhere), so
//! `corral-snapshot journal` polls `Storage.getCookies` (one cheap call; the
//! CPU cost is in docs/benchmarks.md) and, only when the persistent cookies
//! changed, writes them atomically to the journal file on the volume.
//!
//! When Chromium starts again, [`replay`] (Chromium's readiness check under
//! corral, so it runs before the program is ready and before whoever waits
//! on that) makes its persistent cookies those of the journal — set what is
//! missing or different, delete what the journal no longer has — **only if
//! the journal is newer than the cookie store**: the time the journal's
//! cookies were read (`taken_at`, taken before the call) against the newest
//! cookie time in the store ([`store_content_ms`]). A store committed after
//! that holds everything the journal holds and more, so nothing newer in
//! the profile is overwritten, and a cookie deleted before the kill (gone
//! from the journal while still in the older store) stays deleted. One case
//! it cannot see: a commit after the journal that only deleted cookies
//! leaves no newer time; that needs the journal to have stopped tracking
//! (the program down) while those deletions happened, since a running
//! journal is rewritten within `--interval` of any change. Session cookies are
//! neither journaled nor touched: Chromium drops them on a restart, and so
//! does the replay. Cookies that expired meanwhile are not set again.
//!
//! A replay happens **once per Chromium launch**: the first one (readiness
//! check or journal loop, whichever comes first) writes the launch's id (the
//! browser id of `/json/version`, new on every start) to `FILE.replayed`, and
//! later ones for that launch do nothing. Replaying later would be wrong:
//! the journal on disk can be up to `--interval` behind what clients did
//! since the start, and applying it would undo their changes (seen: the
//! journal loop reconnecting after a restart reverted a cookie a client had
//! just set, and the next kill lost it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::cdp::{Cdp, CdpError};

/// The journal file: the persistent cookies as `Storage.getCookies` gave
/// them, and when they were read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    /// Unix milliseconds, taken just before the `Storage.getCookies` call.
    pub taken_at_ms: u64,
    pub cookies: Vec<Value>,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// No journal file (a first start): nothing to do.
    NoJournal,
    /// The cookie store was written after the journal was taken.
    StoreNewer { journal_ms: u64, store_ms: u64 },
    /// Applied: cookies set (missing or different) and deleted.
    Applied { set: usize, deleted: usize },
    /// This Chromium launch was replayed already (see the module doc).
    AlreadyReplayed { launch: String },
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Persistent cookies only (sessions are Chromium's to drop), in a stable
/// order, so equal jars compare equal.
pub fn persistent(cookies: &[Value]) -> Vec<Value> {
    let mut v: Vec<Value> = cookies
        .iter()
        .filter(|c| !c["session"].as_bool().unwrap_or(false))
        .cloned()
        .collect();
    v.sort_by_key(key);
    v
}

/// A cookie's identity: name, domain, path, partition.
fn key(c: &Value) -> String {
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}",
        c["domain"].as_str().unwrap_or(""),
        c["path"].as_str().unwrap_or(""),
        c["name"].as_str().unwrap_or(""),
        c.get("partitionKey")
            .map(Value::to_string)
            .unwrap_or_default()
    )
}

/// A `Storage.getCookies` cookie as a `Storage.setCookies` parameter (only
/// the fields `CookieParam` has).
fn to_param(c: &Value) -> Value {
    let mut p = serde_json::Map::new();
    for f in [
        "name",
        "value",
        "domain",
        "path",
        "secure",
        "httpOnly",
        "sameSite",
        "expires",
        "priority",
        "sourceScheme",
        "sourcePort",
        "partitionKey",
    ] {
        if let Some(v) = c.get(f) {
            p.insert(f.to_string(), v.clone());
        }
    }
    Value::Object(p)
}

/// Microseconds between 1601-01-01 (Chromium's epoch) and 1970-01-01.
const CHROME_EPOCH_OFFSET_US: i64 = 11_644_473_600_000_000;

/// The newest cookie change the profile's cookie store holds, in Unix
/// milliseconds: the largest creation, update or access time of any row.
/// Chromium commits its pending cookie changes together (every 30 s, or on a
/// clean exit), so a row stamped after the journal was taken means a commit
/// that holds everything up to then. The file's mtime cannot tell: Chromium
/// also writes the file at start-up (its session cookies are deleted then)
/// without committing the changes it holds. Read from a copy: Chromium may
/// hold the database locked. `None` when there is no store or no row.
pub fn store_content_ms(profile: &Path) -> Result<Option<u64>, String> {
    let default = profile.join("Default");
    let Some(dir) = [default.join("Network"), default]
        .into_iter()
        .find(|d| d.join("Cookies").is_file())
    else {
        return Ok(None);
    };
    let copy = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    for name in ["Cookies", "Cookies-journal", "Cookies-wal"] {
        match std::fs::copy(dir.join(name), copy.path().join(name)) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name != "Cookies" => {}
            Err(e) => return Err(format!("{}: {e}", dir.join(name).display())),
        }
    }
    let db = rusqlite::Connection::open(copy.path().join("Cookies"))
        .map_err(|e| format!("cookie store: {e}"))?;
    // last_update_utc is newer than some stores (schema 18+).
    let newest: Option<i64> = db
        .query_row(
            "SELECT MAX(MAX(creation_utc, last_access_utc, last_update_utc)) FROM cookies",
            [],
            |r| r.get(0),
        )
        .or_else(|_| {
            db.query_row(
                "SELECT MAX(MAX(creation_utc, last_access_utc)) FROM cookies",
                [],
                |r| r.get(0),
            )
        })
        .map_err(|e| format!("cookie store: {e}"))?;
    Ok(newest
        .filter(|us| *us > CHROME_EPOCH_OFFSET_US)
        .map(|us| ((us - CHROME_EPOCH_OFFSET_US) / 1000) as u64))
}

pub fn read(file: &Path) -> Option<Journal> {
    let text = std::fs::read(file).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The id of the running Chromium launch: the browser id in the
/// `webSocketDebuggerUrl` of `/json/version` at `cdp_url` (an http:// URL,
/// or the host of a ws:// one), which Chromium picks anew on every start.
/// `None` when it cannot be read: the replay then runs without the
/// once-per-launch guard.
pub async fn launch_id(cdp_url: &str) -> Option<String> {
    let http = match cdp_url.strip_prefix("ws://") {
        Some(rest) => format!("http://{}", rest.split('/').next().unwrap_or(rest)),
        None => cdp_url.to_string(),
    };
    let ws = crate::cdp::browser_ws_url(&http).await.ok()?;
    let id = ws.rsplit_once("/devtools/browser/")?.1;
    (!id.is_empty()).then(|| id.to_string())
}

fn marker(file: &Path) -> PathBuf {
    let mut m = file.as_os_str().to_owned();
    m.push(".replayed");
    PathBuf::from(m)
}

/// Makes Chromium's persistent cookies the journal's, if the journal is
/// newer than the profile's cookie store and this Chromium launch (at
/// `cdp_url`, reached by `cdp`) was not replayed yet (see the module doc).
pub async fn replay(
    cdp: &Cdp,
    cdp_url: &str,
    file: &Path,
    profile: &Path,
) -> Result<Replayed, CdpError> {
    // Read before the replay: if Chromium restarted since `cdp` connected,
    // the replay's calls fail on the dead connection and no marker is written.
    let launch = launch_id(cdp_url).await;
    if let Some(id) = &launch {
        if std::fs::read_to_string(marker(file)).is_ok_and(|m| m.trim() == id) {
            return Ok(Replayed::AlreadyReplayed { launch: id.clone() });
        }
    }
    let done = replay_now(cdp, file, profile).await?;
    if let Some(id) = launch {
        if let Err(e) = crate::store::write_atomic(&marker(file), id.as_bytes()) {
            tracing::warn!(
                "cookie journal: cannot write {}: {e}",
                marker(file).display()
            );
        }
    }
    Ok(done)
}

async fn replay_now(cdp: &Cdp, file: &Path, profile: &Path) -> Result<Replayed, CdpError> {
    let Some(journal) = read(file) else {
        return Ok(Replayed::NoJournal);
    };
    let store = store_content_ms(profile).map_err(|message| CdpError::Protocol {
        method: "reading the cookie store".into(),
        message,
    })?;
    if let Some(store_ms) = store {
        if store_ms >= journal.taken_at_ms {
            return Ok(Replayed::StoreNewer {
                journal_ms: journal.taken_at_ms,
                store_ms,
            });
        }
    }
    let now_s = now_ms() as f64 / 1000.0;
    let want: BTreeMap<String, &Value> = journal
        .cookies
        .iter()
        .filter(|c| c["expires"].as_f64().is_none_or(|e| e > now_s))
        .map(|c| (key(c), c))
        .collect();
    let raw = cdp.call(None, "Storage.getCookies", json!({})).await?;
    let current: Vec<Value> = raw["cookies"].as_array().cloned().unwrap_or_default();
    let have: BTreeMap<String, &Value> = current
        .iter()
        .filter(|c| !c["session"].as_bool().unwrap_or(false))
        .map(|c| (key(c), c))
        .collect();
    let to_set: Vec<Value> = want
        .iter()
        .filter(|(k, c)| have.get(*k).is_none_or(|h| h != *c))
        .map(|(_, c)| to_param(c))
        .collect();
    // A cookie set already expired deletes the one of the same name, domain
    // and path (CDP deletes single cookies only per page, and clearing all
    // would also drop what the journal does not cover).
    let to_delete: Vec<Value> = have
        .iter()
        .filter(|(k, _)| !want.contains_key(*k))
        .map(|(_, c)| {
            let mut p = to_param(c);
            p["value"] = json!("");
            p["expires"] = json!(1);
            p
        })
        .collect();
    let deleted = to_delete.len();
    let all: Vec<Value> = to_delete
        .into_iter()
        .chain(to_set.iter().cloned())
        .collect();
    if !all.is_empty() {
        cdp.call(None, "Storage.setCookies", json!({ "cookies": all }))
            .await?;
    }
    Ok(Replayed::Applied {
        set: to_set.len(),
        deleted,
    })
}

/// Records what a replay did, for Prometheus' textfile collector and for
/// people: `FILE.prom` next to the journal, written atomically.
pub fn record(file: &Path, r: &Replayed, took: Duration) {
    // The replay that did the work keeps its record.
    if matches!(r, Replayed::AlreadyReplayed { .. }) {
        return;
    }
    let (applied, set, deleted) = match r {
        Replayed::Applied { set, deleted } => (1, *set, *deleted),
        _ => (0, 0, 0),
    };
    let text = format!(
        "# last replay: {r:?} in {} ms\n\
         # HELP corral_snapshot_journal_replay_applied 1 if the last start replayed the cookie journal.\n\
         # TYPE corral_snapshot_journal_replay_applied gauge\n\
         corral_snapshot_journal_replay_applied {applied}\n\
         # TYPE corral_snapshot_journal_replay_cookies_set gauge\n\
         corral_snapshot_journal_replay_cookies_set {set}\n\
         # TYPE corral_snapshot_journal_replay_cookies_deleted gauge\n\
         corral_snapshot_journal_replay_cookies_deleted {deleted}\n\
         # TYPE corral_snapshot_journal_replay_seconds gauge\n\
         corral_snapshot_journal_replay_seconds {:.6}\n\
         # TYPE corral_snapshot_journal_replay_timestamp_seconds gauge\n\
         corral_snapshot_journal_replay_timestamp_seconds {:.3}\n",
        took.as_millis(),
        took.as_secs_f64(),
        now_ms() as f64 / 1000.0
    );
    let mut prom = file.as_os_str().to_owned();
    prom.push(".prom");
    if let Err(e) = crate::store::write_atomic(&PathBuf::from(prom), text.as_bytes()) {
        tracing::warn!("cannot record the replay: {e}");
    }
}

/// Logs a replay the same way wherever it ran.
pub fn log(r: &Replayed, took: Duration) {
    match r {
        Replayed::NoJournal => tracing::info!("cookie journal: none yet, nothing to replay"),
        Replayed::StoreNewer {
            journal_ms,
            store_ms,
        } => tracing::info!(
            journal_ms,
            store_ms,
            "cookie journal older than the cookie store: not applied"
        ),
        Replayed::Applied { set, deleted } => tracing::info!(
            set,
            deleted,
            ms = took.as_millis() as u64,
            "replayed the cookie journal: {set} cookies set, {deleted} deleted"
        ),
        Replayed::AlreadyReplayed { launch } => tracing::info!(
            launch,
            "cookie journal: this Chromium launch was replayed already"
        ),
    }
}

/// The journal loop: connect (again after every Chromium restart), replay,
/// then read the cookies every `interval` and write the journal when the
/// persistent ones changed. Runs until the task is dropped.
pub async fn run(
    cdp_url: &str,
    file: &Path,
    profile: &Path,
    interval: Duration,
    timeout: Duration,
) {
    let mut last: Option<Vec<Value>> = read(file).map(|j| j.cookies);
    let mut retry = Duration::from_millis(100);
    loop {
        let cdp = match Cdp::connect(cdp_url, timeout).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("cookie journal: {e}; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        retry = Duration::from_millis(100);
        let t0 = std::time::Instant::now();
        match replay(&cdp, cdp_url, file, profile).await {
            Ok(r) => {
                // Usually Chromium's readiness check replayed already and
                // this finds nothing to do: keep its record then.
                if matches!(r, Replayed::Applied { set, deleted } if set + deleted > 0) {
                    log(&r, t0.elapsed());
                    record(file, &r, t0.elapsed());
                }
            }
            Err(e) => {
                tracing::warn!("cookie journal: replay failed: {e}");
                continue;
            }
        }
        if let Err(e) = watch(&cdp, file, interval, &mut last).await {
            tracing::info!("cookie journal: {e}; reconnecting");
        }
    }
}

/// Polls until the connection fails.
async fn watch(
    cdp: &Cdp,
    file: &Path,
    interval: Duration,
    last: &mut Option<Vec<Value>>,
) -> Result<(), CdpError> {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let taken_at_ms = now_ms();
        let raw = cdp.call(None, "Storage.getCookies", json!({})).await?;
        let cookies = persistent(raw["cookies"].as_array().map(Vec::as_slice).unwrap_or(&[]));
        if last.as_ref() == Some(&cookies) {
            continue;
        }
        let journal = Journal {
            version: 1,
            taken_at_ms,
            cookies,
        };
        let bytes = serde_json::to_vec(&journal).expect("serialisable");
        match crate::store::write_atomic(file, &bytes) {
            Ok(()) => {
                tracing::debug!(cookies = journal.cookies.len(), "cookie journal written");
                *last = Some(journal.cookies);
            }
            Err(e) => tracing::warn!("cookie journal: cannot write {}: {e}", file.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(name: &str, value: &str, session: bool) -> Value {
        json!({ "name": name, "value": value, "domain": "a.test", "path": "/",
                "expires": if session { -1.0 } else { 4e9 }, "size": 2,
                "httpOnly": false, "secure": false, "session": session, "priority": "Medium" })
    }

    #[test]
    fn only_persistent_cookies_in_a_stable_order() {
        let v = persistent(&[
            cookie("b", "1", false),
            cookie("s", "1", true),
            cookie("a", "1", false),
        ]);
        let names: Vec<&str> = v.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn params_carry_only_cookie_param_fields() {
        let p = to_param(&cookie("a", "1", false));
        assert!(p.get("size").is_none() && p.get("session").is_none());
        assert_eq!(p["value"], "1");
        assert_eq!(p["priority"], "Medium");
    }

    #[test]
    fn the_store_time_is_its_newest_row() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(store_content_ms(dir.path()).unwrap(), None);
        std::fs::create_dir_all(dir.path().join("Default")).unwrap();
        let db = rusqlite::Connection::open(dir.path().join("Default/Cookies")).unwrap();
        db.execute_batch(
            "CREATE TABLE cookies (creation_utc INTEGER, last_access_utc INTEGER, last_update_utc INTEGER);",
        )
        .unwrap();
        drop(db);
        assert_eq!(store_content_ms(dir.path()).unwrap(), None);
        let at = |unix_ms: i64| unix_ms * 1000 + CHROME_EPOCH_OFFSET_US;
        let db = rusqlite::Connection::open(dir.path().join("Default/Cookies")).unwrap();
        db.execute(
            "INSERT INTO cookies VALUES (?1, ?2, ?3), (?4, ?5, ?6)",
            [
                at(1_000),
                at(5_000),
                at(2_000),
                at(3_000),
                at(4_000),
                at(9_000),
            ],
        )
        .unwrap();
        drop(db);
        assert_eq!(store_content_ms(dir.path()).unwrap(), Some(9_000));
    }
}
