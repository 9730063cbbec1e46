//! Unpacked extensions on the volume: `<extensions-dir>/<name>/manifest.json`.
//!
//! An upload is multipart/form-data in kernel-images' shape: for each
//! extension an `extensions.name` text field and an `extensions.zip_file`
//! file field, consecutive, in either order. Each zip is spooled to a temp
//! file and extracted by the same code as `/fs/upload_zip` (no escape, the
//! same entry and size limits) into a hidden `.incoming-*` directory of the
//! extensions directory; it must hold a manifest.json at its top or in its
//! single top-level directory. Only when every extension of the request
//! has passed are they renamed into place (an existing one of the same
//! name is replaced); any failure removes the hidden directories, so a bad
//! upload writes nothing. The launcher (`launch`) skips dot-names, so a
//! half-done upload is never loaded.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde::Serialize;

use crate::fs::{random_suffix, ZipLimits};
use crate::http::{ApiError, Req};

/// Most extensions in one upload.
pub const MAX_PER_UPLOAD: usize = 20;
/// The whole multipart body.
pub const MAX_UPLOAD_BYTES: u64 = 1 << 30;

/// `^[A-Za-z0-9._-]{1,64}$`, not starting with "." (kernel-images' rule,
/// minus hidden names, which are this module's work in progress).
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid extension name {name:?}: 1 to 64 of A-Z a-z 0-9 . _ -, not starting with \".\""
        )))
    }
}

/// Makes `dir` (and with `parents` what is missing above it), mode 0755
/// whatever the umask: Chromium runs as another user and must read it.
pub(crate) fn readable_dir(dir: &Path, parents: bool) -> Result<(), ApiError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = dir.display().to_string();
    let made = if parents {
        std::fs::create_dir_all(dir)
    } else {
        std::fs::create_dir(dir)
    };
    made.and_then(|_| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| ApiError::io(&shown, &e))
}

/// A hidden directory removed on drop unless taken.
struct Hidden(Option<PathBuf>);

impl Hidden {
    fn path(&self) -> &Path {
        self.0.as_deref().expect("not taken")
    }
}

impl Drop for Hidden {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = std::fs::remove_dir_all(&p) {
                tracing::warn!(path = %p.display(), "cannot remove: {e}");
            }
        }
    }
}

/// One extension of an upload, extracted and checked, not yet in place.
struct Ready {
    tmp: Hidden,
    /// Where manifest.json is: `tmp` or its single subdirectory.
    top: PathBuf,
    entries: usize,
    bytes: u64,
}

#[derive(Default)]
struct Pair {
    name: Option<String>,
    zip: Option<Ready>,
}

#[derive(Serialize)]
pub struct Installed {
    pub name: String,
    pub path: String,
    pub entries: usize,
    pub bytes: u64,
}

/// Reads the multipart body, extracts and checks every extension, then
/// moves them into `dir`. Nothing is written in `dir` (beyond removed
/// hidden work directories) unless every extension passed.
pub async fn install(req: Req, dir: &Path) -> Result<Vec<Installed>, ApiError> {
    let mut mp = crate::http::multipart(
        req,
        multer::SizeLimit::new()
            .whole_stream(MAX_UPLOAD_BYTES)
            .for_field("extensions.name", 1024),
    )?;
    let d = dir.to_path_buf();
    crate::fs::blocking(move || readable_dir(&d, true)).await?;
    let mut done: Vec<(String, Ready)> = Vec::new();
    let mut cur = Pair::default();
    while let Some(field) = mp.next_field().await.map_err(multer_err)? {
        let n = done.len() + 1;
        match field.name().unwrap_or_default() {
            "extensions.name" => {
                if cur.name.is_some() {
                    return Err(pairing(n, "two extensions.name fields in a row"));
                }
                let text = field.text().await.map_err(multer_err)?;
                let name = text.trim().to_string();
                check_name(&name)?;
                cur.name = Some(name);
            }
            "extensions.zip_file" => {
                if cur.zip.is_some() {
                    return Err(pairing(n, "two extensions.zip_file fields in a row"));
                }
                if done.len() >= MAX_PER_UPLOAD {
                    return Err(ApiError::too_large(format!(
                        "at most {MAX_PER_UPLOAD} extensions per upload; nothing was installed"
                    )));
                }
                let stream = field.map(|r| r.map_err(multer_err));
                cur.zip = Some(extract(stream, dir).await.map_err(|e| {
                    let who = cur.name.as_deref().unwrap_or("(name not yet given)");
                    ApiError::new(
                        e.status,
                        e.error,
                        format!("extension #{n} {who:?}: {}", e.detail),
                    )
                })?);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unexpected form field {other:?}: each extension is an extensions.name \
                     and an extensions.zip_file field; nothing was installed"
                )))
            }
        }
        if let Pair {
            name: Some(_),
            zip: Some(_),
        } = &cur
        {
            let p = std::mem::take(&mut cur);
            let name = p.name.unwrap_or_default();
            if done.iter().any(|(d, _)| *d == name) {
                return Err(ApiError::bad_request(format!(
                    "extension {name:?} is given twice; nothing was installed"
                )));
            }
            done.push((name, p.zip.expect("checked")));
        }
    }
    if cur.name.is_some() || cur.zip.is_some() {
        return Err(pairing(
            done.len() + 1,
            "each extension needs both extensions.name and extensions.zip_file",
        ));
    }
    if done.is_empty() {
        return Err(ApiError::bad_request(
            "no extensions given: send extensions.name and extensions.zip_file fields",
        ));
    }
    let d = dir.to_path_buf();
    crate::fs::blocking(move || place_all(&d, done)).await
}

fn pairing(n: usize, why: &str) -> ApiError {
    ApiError::bad_request(format!("extension #{n}: {why}; nothing was installed"))
}

fn multer_err(e: multer::Error) -> ApiError {
    crate::http::multipart_error(e, "; nothing was installed")
}

/// Spools one zip and extracts it into a new hidden directory of `dir`.
async fn extract<S>(body: S, dir: &Path) -> Result<Ready, ApiError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, ApiError>> + Unpin,
{
    let limits = ZipLimits::DEFAULT;
    let d = dir.to_path_buf();
    let (tmp, spool) = crate::fs::blocking(move || {
        let tmp = d.join(format!(".incoming-{}", random_suffix()));
        std::fs::create_dir(&tmp).map_err(|e| ApiError::io(&tmp.display().to_string(), &e))?;
        let tmp = Hidden(Some(tmp));
        let spool = tempfile::tempfile_in(tmp.path())
            .map_err(|e| ApiError::internal(format!("spool: {e}")))?;
        Ok((tmp, spool))
    })
    .await?;
    let mut out = tokio::fs::File::from_std(spool);
    crate::fs::copy_limited(body, &mut out, limits.max_body).await?;
    let spool = out.into_std().await;
    crate::fs::blocking(move || {
        let tree = tmp.path().join("x");
        readable_dir(&tree, false)?;
        let summary = crate::fs::unzip_into(&tree, spool, &limits)?;
        let top = manifest_top(&tree)?;
        Ok(Ready {
            tmp,
            top,
            entries: summary.entries,
            bytes: summary.bytes,
        })
    })
    .await
}

/// Where the extension's manifest.json is: the tree's top, or its only
/// directory (a zip of the extension's folder).
fn manifest_top(tree: &Path) -> Result<PathBuf, ApiError> {
    let check = |d: &Path| -> Result<(), ApiError> {
        let m = d.join("manifest.json");
        let bytes = std::fs::read(&m).map_err(|e| ApiError::internal(format!("{e}")))?;
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) if v.is_object() => Ok(()),
            _ => Err(ApiError::bad_request(
                "manifest.json is not a JSON object; nothing was installed",
            )),
        }
    };
    let meta = std::fs::symlink_metadata(tree.join("manifest.json"));
    if meta.as_ref().is_ok_and(|m| m.is_file()) {
        check(tree)?;
        return Ok(tree.to_path_buf());
    }
    let entries: Vec<_> = std::fs::read_dir(tree)
        .map_err(|e| ApiError::internal(format!("{e}")))?
        .filter_map(Result::ok)
        .collect();
    if let [only] = entries.as_slice() {
        let p = only.path();
        let inner = std::fs::symlink_metadata(p.join("manifest.json"));
        if only.file_type().is_ok_and(|t| t.is_dir()) && inner.is_ok_and(|m| m.is_file()) {
            check(&p)?;
            return Ok(p);
        }
    }
    Err(ApiError::bad_request(
        "the zip holds no manifest.json (at its top or in its single top-level directory): \
         not an unpacked extension; nothing was installed",
    ))
}

/// Renames every extension into place, replacing any of the same name.
fn place_all(dir: &Path, ready: Vec<(String, Ready)>) -> Result<Vec<Installed>, ApiError> {
    let mut out = Vec::new();
    for (name, r) in ready {
        let fin = dir.join(&name);
        let shown = fin.display().to_string();
        // The old one out of the way first (a hidden name the launcher
        // skips), so the rename of the new one cannot meet a directory.
        let _old = match std::fs::symlink_metadata(&fin) {
            Ok(_) => {
                let old = dir.join(format!(".old-{}", random_suffix()));
                std::fs::rename(&fin, &old).map_err(|e| ApiError::io(&shown, &e))?;
                Some(Hidden(Some(old)))
            }
            Err(_) => None,
        };
        std::fs::rename(&r.top, &fin).map_err(|e| ApiError::io(&shown, &e))?;
        // What is left of the work directory (all of it, or the wrapper
        // of a zipped folder) goes now.
        drop(r.tmp);
        out.push(Installed {
            name,
            path: shown,
            entries: r.entries,
            bytes: r.bytes,
        });
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(out)
}

/// An installed extension, for the listing.
#[derive(Serialize)]
pub struct Listed {
    pub name: String,
    pub path: String,
    /// manifest.json's `name`, `version` and `manifest_version`, if any.
    pub manifest_name: Option<String>,
    pub version: Option<String>,
    pub manifest_version: Option<u64>,
}

/// Every installed extension, by name. Blocking.
pub fn list(dir: &Path) -> Vec<Listed> {
    super::launch::extension_dirs(dir)
        .into_iter()
        .map(|p| {
            let m: serde_json::Value = std::fs::read(p.join("manifest.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            Listed {
                name: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: p.display().to_string(),
                manifest_name: m["name"].as_str().map(str::to_string),
                version: m["version"].as_str().map(str::to_string),
                manifest_version: m["manifest_version"].as_u64(),
            }
        })
        .collect()
}

/// Removes one installed extension (renamed to a hidden name first, so
/// a start meanwhile never sees half of it). Blocking.
pub fn remove(dir: &Path, name: &str) -> Result<(), ApiError> {
    check_name(name)?;
    let p = dir.join(name);
    if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
        return Err(ApiError::not_found(format!(
            "no extension {name:?} is installed"
        )));
    }
    let gone = dir.join(format!(".removing-{}", random_suffix()));
    std::fs::rename(&p, &gone).map_err(|e| ApiError::io(&p.display().to_string(), &e))?;
    drop(Hidden(Some(gone)));
    Ok(())
}
