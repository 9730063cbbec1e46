//! `upload`: multipart/form-data, one file per part. A part's filename is
//! a relative path under the target directory (subdirectories are
//! created); it is cleaned and checked (no absolute path, no "..") before
//! anything is written, and resolved beneath the target directory by the
//! kernel, so a symlink inside it cannot redirect a part elsewhere. Each
//! part is written atomically (temp file + rename). Parts are processed in
//! order and the upload is not all-or-nothing: a rejected part stops the
//! upload with a 4xx naming the part and listing the files already
//! written, and leaves no file (partial or temporary) for itself.
//! Parts without a filename (plain form fields) are ignored.

use futures_util::StreamExt;
use serde::Serialize;

use super::confine::Root;
use super::path::RelPath;
use super::write::TempFile;
use super::{blocking, Fs, MAX_UPLOAD_BYTES, MAX_UPLOAD_PARTS};
use crate::http::{ApiError, Req, Resp};

#[derive(Debug, Serialize)]
pub struct Written {
    pub path: String,
    pub size: u64,
}

pub async fn upload(req: Req, fs: &Fs, dir: RelPath) -> Result<Resp, ApiError> {
    super::write::check_length(&req, MAX_UPLOAD_BYTES)?;
    let mut mp =
        crate::http::multipart(req, multer::SizeLimit::new().whole_stream(MAX_UPLOAD_BYTES))?;
    let root = fs.root.clone();
    let d = dir.clone();
    blocking(move || Root::new(&root)?.mkdir_all(&d, 0o755).map(drop)).await?;

    let mut written: Vec<Written> = Vec::new();
    let mut parts = 0usize;
    let mut used: u64 = 0;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(part_err(multer_err(e), parts, "", &written)),
        };
        let Some(fname) = field.file_name().map(str::to_string) else {
            continue;
        };
        parts += 1;
        if parts > MAX_UPLOAD_PARTS {
            return Err(part_err(
                ApiError::too_large(format!("at most {MAX_UPLOAD_PARTS} files per upload")),
                parts,
                &fname,
                &written,
            ));
        }
        let rel = match RelPath::parse_member(&fname) {
            Ok(r) if !r.is_root() => r,
            Ok(_) => {
                return Err(part_err(
                    ApiError::bad_request("empty filename"),
                    parts,
                    &fname,
                    &written,
                ))
            }
            Err(why) => {
                return Err(part_err(
                    ApiError::bad_request(why),
                    parts,
                    &fname,
                    &written,
                ))
            }
        };
        let (root, d, r2) = (fs.root.clone(), dir.clone(), rel.clone());
        let prepared = blocking(move || {
            let top = Root::new(&root)?;
            let under = top.sub(&d, false)?;
            let created = under.mkdir_all(&r2.parent().unwrap_or_default(), 0o755)?;
            let shown = under.show(&r2);
            let (pdir, name) = under.parent(&r2, "write")?;
            match TempFile::create(pdir, &name, &shown) {
                Ok(tf) => Ok((tf, created)),
                Err(e) => {
                    under.rmdir_created(&created);
                    Err(e)
                }
            }
        })
        .await;
        let (mut tf, created) = prepared.map_err(|e| part_err(e, parts, &fname, &written))?;
        let body = field.map(|r| r.map_err(multer_err));
        let filled = tf.fill(body, MAX_UPLOAD_BYTES - used).await;
        let size = match filled {
            Ok(n) => n,
            Err(e) => {
                drop(tf);
                cleanup(fs, &dir, created).await;
                return Err(part_err(e, parts, &fname, &written));
            }
        };
        used += size;
        let shown = dir.join(&rel).display();
        let s2 = shown.clone();
        blocking(move || tf.commit(None, &s2))
            .await
            .map_err(|e| part_err(e, parts, &fname, &written))?;
        written.push(Written { path: shown, size });
    }
    crate::http::ok(&serde_json::json!({ "files": written }))
}

async fn cleanup(fs: &Fs, dir: &RelPath, created: Vec<RelPath>) {
    let (root, d) = (fs.root.clone(), dir.clone());
    let _ = blocking(move || {
        Root::new(&root)?.sub(&d, false)?.rmdir_created(&created);
        Ok(())
    })
    .await;
}

fn multer_err(e: multer::Error) -> ApiError {
    crate::http::multipart_error(e, "")
}

/// Names the failing part and what was already written.
fn part_err(e: ApiError, n: usize, fname: &str, written: &[Written]) -> ApiError {
    let done = if written.is_empty() {
        "no files were written".to_string()
    } else {
        let paths: Vec<&str> = written.iter().map(|w| w.path.as_str()).collect();
        format!(
            "{} earlier file(s) were written: {}",
            paths.len(),
            paths.join(", ")
        )
    };
    let what = if fname.is_empty() {
        format!("after part {n}")
    } else {
        format!("part {n} ({fname:?})")
    };
    ApiError::new(e.status, e.error, format!("{what}: {}; {done}", e.detail))
}
