//! Which origins to harvest.
//!
//! CDP has no call that lists the origins holding storage, and Playwright's
//! storageState only knows origins it navigated in its own connection — the
//! seeds' hourly harvester therefore missed every site whose tab was closed.
//! corral-snapshot takes the union of three sources:
//!
//! 1. **The profile on disk** (`--profile`, the `--user-data-dir`):
//!    `Default/Local Storage/leveldb` has a `META:<origin>` key for every
//!    origin with localStorage, and `Default/IndexedDB/` has a directory
//!    `<scheme>_<host>_<port>.indexeddb.leveldb` per origin with IndexedDB.
//!    This covers closed tabs and data from before a Chromium restart. The
//!    leveldb is read from a copy, so Chromium's lock is never touched.
//! 2. **Open targets**: the origins of every page and frame open now, which
//!    catches storage written in the last seconds (Chromium commits
//!    localStorage to disk about 5 s late).
//! 3. **Cookie domains**, as `https://domain` (or `http://` for non-secure
//!    cookies): a cheap guess that sometimes finds more.
//!
//! Origins whose storage turns out empty are left out of the snapshot.

use std::collections::BTreeSet;
use std::path::Path;

/// An origin as storageState spells it: `scheme://host[:port]`, no slash.
pub fn normalize(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(authority);
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// Origins with localStorage or IndexedDB in the profile at `user_data_dir`.
pub fn from_profile(user_data_dir: &Path) -> Result<BTreeSet<String>, String> {
    let profile = user_data_dir.join("Default");
    let mut found = BTreeSet::new();
    found.extend(indexeddb_origins(&profile.join("IndexedDB")));
    let leveldb = profile.join("Local Storage").join("leveldb");
    if leveldb.is_dir() {
        found.extend(local_storage_origins(&leveldb)?);
    }
    Ok(found)
}

/// `http_127.0.0.1_8080.indexeddb.leveldb` → `http://127.0.0.1:8080`.
fn indexeddb_origins(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let stem = name.strip_suffix(".indexeddb.leveldb")?;
            let (scheme, rest) = stem.split_once('_')?;
            let (host, port) = rest.rsplit_once('_')?;
            let port: u16 = port.parse().ok()?;
            // Port 0 is how Chromium writes "the scheme's default port".
            let url = match port {
                0 => format!("{scheme}://{host}"),
                p => format!("{scheme}://{host}:{p}"),
            };
            normalize(&url)
        })
        .collect()
}

/// Reads `META:` keys from a copy of the Local Storage leveldb.
fn local_storage_origins(leveldb: &Path) -> Result<BTreeSet<String>, String> {
    let copy = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let entries = std::fs::read_dir(leveldb).map_err(|e| format!("{}: {e}", leveldb.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == "LOCK" || !entry.path().is_file() {
            continue;
        }
        // A file Chromium deletes between listing and copying is fine to miss.
        let _ = std::fs::copy(entry.path(), copy.path().join(&name));
    }
    let opts = rusty_leveldb::Options {
        create_if_missing: false,
        ..Default::default()
    };
    let mut db = rusty_leveldb::DB::open(copy.path(), opts)
        .map_err(|e| format!("reading {}: {e}", leveldb.display()))?;
    let mut it = db
        .new_iter()
        .map_err(|e| format!("reading {}: {e}", leveldb.display()))?;
    let mut found = BTreeSet::new();
    use rusty_leveldb::LdbIterator;
    while let Some((key, _)) = it.next() {
        if let Some(origin) = key.strip_prefix(b"META:") {
            // Newer Chromium serialises a storage key, which may carry a
            // trailing slash or partition data after `^`; keep the origin.
            let text = String::from_utf8_lossy(origin);
            let first_party = text.split('^').next().unwrap_or(&text);
            if let Some(o) = normalize(first_party) {
                found.insert(o);
            }
        }
    }
    Ok(found)
}

/// The origin a cookie's domain most likely belongs to.
pub fn from_cookie_domain(domain: &str, secure: bool) -> Option<String> {
    let host = domain.trim_start_matches('.');
    let scheme = if secure { "https" } else { "http" };
    normalize(&format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_urls_to_origins() {
        assert_eq!(
            normalize("https://Example.com/a?b#c").unwrap(),
            "https://example.com"
        );
        assert_eq!(
            normalize("https://example.com:443/").unwrap(),
            "https://example.com"
        );
        assert_eq!(
            normalize("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalize("about:blank").is_none());
        assert!(normalize("chrome://version").is_none());
        assert!(normalize("file:///etc/passwd").is_none());
    }

    #[test]
    fn indexeddb_directory_names() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "http_127.0.0.1_18081.indexeddb.leveldb",
            "https_example.com_0.indexeddb.leveldb",
            "https_example.com_0.indexeddb.blob",
            "junk",
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        let mut got = indexeddb_origins(dir.path());
        got.sort();
        assert_eq!(got, ["http://127.0.0.1:18081", "https://example.com"]);
    }

    #[test]
    fn cookie_domains() {
        assert_eq!(
            from_cookie_domain(".example.com", true).unwrap(),
            "https://example.com"
        );
        assert_eq!(
            from_cookie_domain("localhost", false).unwrap(),
            "http://localhost"
        );
    }
}
