//! `/chromium/flags` and `/chromium/…extensions…`: how Chromium starts,
//! kept on the volume and applied by the launcher (`launch`) on every
//! start. Each change restarts Chromium through corral (the graceful stop
//! of `/chromium/restart`) and answers once DevTools answers again.
//!
//! `flags` holds the refusal rules, the merge and the file; `extensions`
//! the uploads; `launch` the `corral-api chromium-launch` subcommand.
//! Changes are serialised by one lock: two PATCHes never interleave their
//! read-merge-write, and two restarts never overlap.

pub mod extensions;
pub mod flags;
pub mod launch;

use std::path::PathBuf;

use hyper::StatusCode;
use serde::Deserialize;

use crate::http::{body_json, json, ok, query, ApiError, Req, Resp};
use crate::AppState;

/// Where the kept flags and the extensions live (corral-api's
/// `--chromium-flags-file` and `--chromium-extensions-dir`, the same paths
/// as the launcher's).
#[derive(Default)]
pub struct Config {
    pub flags_file: Option<PathBuf>,
    pub extensions_dir: Option<PathBuf>,
    /// Held for a whole change, restart included.
    pub lock: tokio::sync::Mutex<()>,
}

fn configured(p: &Option<PathBuf>, arg: &str) -> Result<PathBuf, ApiError> {
    p.clone().ok_or_else(|| {
        ApiError::unavailable(format!(
            "corral-api was started without {arg}: this endpoint is not available"
        ))
    })
}

/// Chromium's command line as running now (from /proc), if it runs.
async fn command_line(state: &AppState) -> Option<Vec<String>> {
    use corral_proto::{Request, Response};
    let names = vec![state.chromium_program.clone()];
    let wait = std::time::Duration::from_secs(5);
    let pid = match state.control.call(Request::Status { names }, wait).await {
        Ok(Response::Status { programs, .. }) => programs.first()?.pid?,
        _ => return None,
    };
    let raw = tokio::fs::read(format!("/proc/{pid}/cmdline")).await.ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!args.is_empty()).then_some(args)
}

/// `GET /chromium/flags`: the kept set and Chromium's command line.
pub async fn get_flags(state: &AppState) -> Result<Resp, ApiError> {
    let file = configured(&state.chromium.flags_file, "--chromium-flags-file")?;
    let f2 = file.clone();
    let kept =
        crate::fs::blocking(move || flags::read(&f2).map_err(|e| unreadable(&f2, &e))).await?;
    ok(&serde_json::json!({
        "flags": kept,
        "file": file.display().to_string(),
        "command_line": command_line(state).await,
    }))
}

fn unreadable(file: &std::path::Path, e: &std::io::Error) -> ApiError {
    ApiError::internal(format!(
        "the kept flags file {} is unreadable ({e}); fix or delete it",
        file.display()
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

/// `PATCH /chromium/flags {flags?, remove?}`: merges, keeps, restarts.
pub async fn patch_flags(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    let file = configured(&state.chromium.flags_file, "--chromium-flags-file")?;
    let p: Patch = body_json(req).await?;
    if p.flags.is_empty() && p.remove.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to change: give \"flags\" to set and/or \"remove\" (flag names) to drop",
        ));
    }
    for f in &p.flags {
        if let Some(why) = flags::refusal(f) {
            return Err(ApiError::bad_request(format!("{why}; nothing was changed")));
        }
    }
    for r in &p.remove {
        if !r.starts_with("--") || r.len() > flags::MAX_FLAG_LEN {
            return Err(ApiError::bad_request(format!(
                "remove: {r:?} is not a flag name like --name; nothing was changed"
            )));
        }
    }
    let _held = state.chromium.lock.lock().await;
    let f2 = file.clone();
    let before =
        crate::fs::blocking(move || flags::read(&f2).map_err(|e| unreadable(&f2, &e))).await?;
    let after = flags::merge(&before, &p.flags, &p.remove);
    if after.len() > flags::MAX_FLAGS {
        return Err(ApiError::bad_request(format!(
            "at most {} flags are kept; nothing was changed",
            flags::MAX_FLAGS
        )));
    }
    save(&file, &after).await?;
    let restart = match crate::programs::restart_and_wait(state).await {
        Ok(r) => r,
        Err(e) => {
            // Back to how it was, so a flag that keeps Chromium from
            // starting does not stay kept.
            save(&file, &before).await?;
            let again = crate::programs::restart_and_wait(state).await;
            let how = match again {
                Ok(_) => "Chromium runs again with them",
                Err(_) => "Chromium did not come back with them either",
            };
            return Err(ApiError::new(
                e.status,
                e.error,
                format!("{}; the previous flags were restored and {how}", e.detail),
            ));
        }
    };
    ok(&serde_json::json!({
        "flags": after,
        "restart": restart,
        "command_line": command_line(state).await,
    }))
}

async fn save(file: &std::path::Path, kept: &[String]) -> Result<(), ApiError> {
    let (f, k) = (file.to_path_buf(), kept.to_vec());
    crate::fs::blocking(move || {
        flags::write(&f, &k).map_err(|e| ApiError::io(&f.display().to_string(), &e))
    })
    .await
}

/// `POST /chromium/upload-extensions-and-restart` (multipart).
pub async fn upload_extensions(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    let dir = configured(&state.chromium.extensions_dir, "--chromium-extensions-dir")?;
    let _held = state.chromium.lock.lock().await;
    let installed = extensions::install(req, &dir).await?;
    let restart = crate::programs::restart_and_wait(state)
        .await
        .map_err(|e| after_change(e, "installed"))?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({ "installed": installed, "restart": restart }),
    ))
}

/// The extensions are on the volume whatever the restart did: say so.
fn after_change(e: ApiError, what: &str) -> ApiError {
    ApiError::new(
        e.status,
        e.error,
        format!(
            "the extensions were {what}, but restarting Chromium failed: {}",
            e.detail
        ),
    )
}

/// `GET /chromium/extensions`.
pub async fn list_extensions(state: &AppState) -> Result<Resp, ApiError> {
    let dir = configured(&state.chromium.extensions_dir, "--chromium-extensions-dir")?;
    let d = dir.clone();
    let list = crate::fs::blocking(move || Ok(extensions::list(&d))).await?;
    ok(&serde_json::json!({ "extensions": list, "dir": dir.display().to_string() }))
}

/// `DELETE /chromium/extensions/{name}[?restart=false]`.
pub async fn delete_extension(req: Req, name: &str, state: &AppState) -> Result<Resp, ApiError> {
    let dir = configured(&state.chromium.extensions_dir, "--chromium-extensions-dir")?;
    let restart = match query(&req).get("restart").map(String::as_str) {
        None | Some("true" | "1") => true,
        Some("false" | "0") => false,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "restart must be true or false, not {v:?}"
            )))
        }
    };
    extensions::check_name(name)?;
    let _held = state.chromium.lock.lock().await;
    let n = name.to_string();
    crate::fs::blocking(move || extensions::remove(&dir, &n)).await?;
    let restarted = if restart {
        Some(
            crate::programs::restart_and_wait(state)
                .await
                .map_err(|e| after_change(e, "removed"))?,
        )
    } else {
        None
    };
    ok(&serde_json::json!({ "deleted": name, "restart": restarted }))
}
