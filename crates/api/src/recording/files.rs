//! `GET /recording/list`, `GET /recording/download`, `POST
//! /recording/delete`: the recordings on the volume, read and removed only
//! once finished.

use hyper::header;
use serde::Deserialize;

use super::{active_id, blocking, store};
use crate::http::{ok, param, query, streamed, ApiError, Req, Resp};
use crate::AppState;
use store::check_id;

/// `GET /recording/list`.
pub async fn list(state: &AppState) -> Result<Resp, ApiError> {
    let c = &state.recording.config;
    let active = active_id(c, &state.control).await?;
    let dir = c.dir.clone();
    let metas = blocking(&c.dir, move || store::all(&dir)).await?;
    let entries: Vec<_> = metas
        .iter()
        .map(|m| store::entry(&c.dir, m, active.as_deref() == Some(&m.id)))
        .collect();
    ok(&serde_json::json!({ "recordings": entries, "active": active }))
}

/// A finished recording's id from the query or body, checked: 404 when
/// unknown, 409 while it is being recorded.
async fn finished(state: &AppState, id: &str) -> Result<(), ApiError> {
    let c = &state.recording.config;
    check_id(id)?;
    if !store::meta_path(&c.dir, id).exists() && !store::mp4(&c.dir, id).exists() {
        return Err(ApiError::not_found(format!("no recording {id}")));
    }
    if active_id(c, &state.control).await?.as_deref() == Some(id) {
        return Err(ApiError::conflict(format!(
            "recording {id} is in progress; stop it first"
        )));
    }
    Ok(())
}

/// `GET /recording/download?id=ID`: the mp4, streamed.
pub async fn download(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    let q = query(&req);
    let id = param(&q, "id")?;
    finished(state, id).await?;
    let (dir, name) = (state.recording.config.dir.clone(), id.to_string());
    let (file, size) = tokio::task::spawn_blocking(move || store::open_mp4(&dir, &name))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| match e.raw_os_error() {
            // ELOOP: a symlink where the file or the directory should be.
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => ApiError::forbidden(format!(
                "recording {id}: not a plain file in the recordings directory"
            )),
            _ => ApiError::io(id, &e),
        })?;
    let file = tokio::fs::File::from_std(file);
    let mut r = Resp::new(streamed(crate::fs::FileStream::new(file, Some(size))));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("video/mp4"),
    );
    h.insert(header::CONTENT_LENGTH, size.into());
    if let Ok(v) = header::HeaderValue::from_str(&format!("attachment; filename=\"{id}.mp4\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    id: String,
}

/// `POST /recording/delete {"id"}`: removes a finished recording.
pub async fn delete(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    let body: DeleteBody = crate::http::body_json(req).await?;
    let _guard = state.recording.lock.lock().await;
    finished(state, &body.id).await?;
    let dir = state.recording.config.dir.clone();
    let id = body.id.clone();
    blocking(&state.recording.config.dir, move || {
        for p in [store::mp4(&dir, &id), store::meta_path(&dir, &id)] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    })
    .await?;
    ok(&serde_json::json!({ "deleted": body.id }))
}
