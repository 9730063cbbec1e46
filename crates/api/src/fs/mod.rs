//! `/fs/*`: file operations confined to `--fs-root` ("/" when unset).
//!
//! Request paths are relative to the root whether or not they start with
//! "/" (with `--fs-root=/srv`, "/a/b" is /srv/a/b) and answers report
//! paths the same way. Confinement is the kernel's job (`confine`): every
//! lookup is an `openat2(RESOLVE_BENEATH)` from the root, so neither ".."
//! nor a symlink can lead outside; an attempt is 403 "… escapes the root".
//! Blocking filesystem work runs in `spawn_blocking`; large bodies stream
//! to and from disk.
//!
//! Module map: `path` (request paths), `confine` (the root and errno
//! mapping), `meta` (entries, modes, times), `ops` (mkdir, delete, move,
//! chmod), `read` (ranges, file streams), `write` (atomic writes),
//! `upload` (multipart), `unzip_plan` + `unzip` (archive validation and
//! extraction), `zipdl` (streamed directory zips), `watch` + `watch_tree`
//! (`/fs/watch`: inotify over SSE), `delete_perms` (`delete_directory`,
//! `set_file_permissions`).

mod confine;
mod delete_perms;
mod meta;
mod ops;
mod path;
mod read;
#[cfg(test)]
mod tests_http;
#[cfg(test)]
mod tests_transfer;
#[cfg(test)]
mod tests_unzip;
mod unzip;
mod unzip_plan;
mod upload;
pub mod watch;
mod watch_tree;
mod write;
mod zipdl;

use std::io::SeekFrom;
use std::path::PathBuf;

use hyper::header::{self, HeaderValue};
use hyper::StatusCode;
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;
use serde::Deserialize;
use tokio::io::AsyncSeekExt;

use crate::http::{body_json, json, ok, param, query, streamed, ApiError, Req, Resp};
use confine::{errno_err, kind, Root};
pub use delete_perms::{delete_directory, set_file_permissions};
use path::RelPath;
pub use read::FileStream;
use read::{opt_u64, span, Span};
pub use unzip::{Summary as ZipSummary, ZipLimits};
pub(crate) use write::{copy_limited, random_suffix};

/// `write_file`: largest body.
pub const MAX_WRITE_BYTES: u64 = 1 << 30;
/// `upload`: largest multipart body (all parts together).
pub const MAX_UPLOAD_BYTES: u64 = 1 << 30;
/// `upload`: most file parts in one request.
pub const MAX_UPLOAD_PARTS: usize = 1000;
/// `upload_zip`: the archive itself.
pub const MAX_ZIP_BYTES: u64 = 1 << 30;
/// `upload_zip`: most entries (files, directories, symlinks).
pub const MAX_ZIP_ENTRIES: usize = 10_000;
/// `upload_zip`: most uncompressed bytes, declared and actual.
pub const MAX_ZIP_UNCOMPRESSED: u64 = 4 << 30;

impl ZipLimits {
    pub const DEFAULT: ZipLimits = ZipLimits {
        max_body: MAX_ZIP_BYTES,
        max_entries: MAX_ZIP_ENTRIES,
        max_uncompressed: MAX_ZIP_UNCOMPRESSED,
    };
}

/// File operations, every path confined to `root` ("/" when unset).
pub struct Fs {
    pub root: PathBuf,
    /// The live `/fs/watch` watches and their bounds.
    pub watches: watch::Watches,
}

/// Runs blocking filesystem work off the async threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("filesystem task failed: {e}")))?
}

fn path_param(req: &Req, name: &str) -> Result<RelPath, ApiError> {
    RelPath::parse(param(&query(req), name)?)
}

fn bool_param(req: &Req, name: &str) -> Result<bool, ApiError> {
    match query(req).get(name).map(String::as_str) {
        None | Some("false" | "0") => Ok(false),
        Some("" | "true" | "1") => Ok(true),
        Some(v) => Err(ApiError::bad_request(format!(
            "{name} must be true or false, not {v:?}"
        ))),
    }
}

fn header(r: &mut Resp, k: header::HeaderName, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        r.headers_mut().insert(k, v);
    }
}

/// Opens a regular file under the root for reading, confined like every
/// other path here; also returns where it is on the real filesystem, which
/// `/logs/stream` watches with inotify. Blocking; call off the runtime.
pub fn open_for_reading(
    root: &std::path::Path,
    raw: &str,
) -> Result<(std::fs::File, PathBuf), ApiError> {
    let p = RelPath::parse(raw)?;
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let fd = Root::new(root)?.open(&p, flags)?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| errno_err(&p.display(), e))?;
    if kind(&st) != SFlag::S_IFREG {
        return Err(ApiError::bad_request(format!("{p} is not a regular file")));
    }
    Ok((
        std::fs::File::from(fd),
        root.join(p.display().trim_start_matches('/')),
    ))
}

/// `GET /fs/read_file?path=P[&offset=N&length=N]`, or a `Range` header.
pub async fn read_file(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let p = path_param(&req, "path")?;
    let q = query(&req);
    let (offset, length) = (opt_u64(&q, "offset")?, opt_u64(&q, "length")?);
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let root = fs.root.clone();
    let (file, st) = blocking(move || {
        // O_NONBLOCK: opening a FIFO must not hang the thread.
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
        let fd = Root::new(&root)?.open(&p, flags)?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| errno_err(&p.display(), e))?;
        match kind(&st) {
            SFlag::S_IFREG => Ok((std::fs::File::from(fd), st)),
            SFlag::S_IFDIR => Err(ApiError::bad_request(format!(
                "{p} is a directory; use list_files or download_dir_zip"
            ))),
            _ => Err(ApiError::bad_request(format!("{p} is not a regular file"))),
        }
    })
    .await?;
    let size = st.st_size.max(0) as u64;
    let (status, start, len) = match span(size, offset, length, range.as_deref()) {
        Span::Whole { start, len } => (StatusCode::OK, start, len),
        Span::Partial { start, end, .. } => {
            (StatusCode::PARTIAL_CONTENT, start, Some(end - start + 1))
        }
        Span::Unsatisfiable { size } => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range not satisfiable",
                format!("the file is {size} bytes"),
            )
            .into_response();
            header(&mut r, header::CONTENT_RANGE, &format!("bytes */{size}"));
            return Ok(r);
        }
    };
    let mut file = tokio::fs::File::from_std(file);
    let mut len = len;
    if start > 0 {
        match file.seek(SeekFrom::Start(start)).await {
            Ok(_) => {}
            // Past what the filesystem can even address (only reachable for
            // size-0 files, whose offset is not clamped): nothing to read.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => len = Some(0),
            Err(e) => return Err(ApiError::internal(format!("seek: {e}"))),
        }
    }
    let mut r = Resp::new(streamed(FileStream::new(file, len)));
    *r.status_mut() = status;
    header(&mut r, header::CONTENT_TYPE, "application/octet-stream");
    // A size-0 file may be a /proc file whose length is unknown until read
    // (or simply empty): promise no length, or a client waits for bytes
    // that never come.
    if let (Some(len), true) = (len, size > 0) {
        header(&mut r, header::CONTENT_LENGTH, &len.to_string());
    }
    if size > 0 {
        header(&mut r, header::ACCEPT_RANGES, "bytes");
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let end = start + len.unwrap_or(0) - 1;
        header(
            &mut r,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{end}/{size}"),
        );
    }
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(st.st_mtime.max(0) as u64);
    header(
        &mut r,
        header::LAST_MODIFIED,
        &httpdate::fmt_http_date(mtime),
    );
    Ok(r)
}

/// `PUT /fs/write_file?path=P[&mode=0644][&parents=true]`, body = bytes.
pub async fn write_file(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let p = path_param(&req, "path")?;
    let mode = query(&req)
        .get("mode")
        .map(|m| meta::parse_mode_str(m))
        .transpose()?;
    let parents = bool_param(&req, "parents")?;
    write::check_length(&req, MAX_WRITE_BYTES)?;
    let (root, p2) = (fs.root.clone(), p.clone());
    let (mut tf, created) = blocking(move || {
        let r = Root::new(&root)?;
        let created = match p2.parent() {
            Some(parent) if parents => r.mkdir_all(&parent, 0o755)?,
            _ => Vec::new(),
        };
        let tf = r
            .parent(&p2, "write")
            .and_then(|(dir, name)| write::TempFile::create(dir, &name, &p2.display()));
        match tf {
            Ok(tf) => Ok((tf, created)),
            Err(e) => {
                r.rmdir_created(&created);
                Err(e)
            }
        }
    })
    .await?;
    let size = match tf.fill(write::body_stream(req), MAX_WRITE_BYTES).await {
        Ok(n) => n,
        Err(e) => {
            // The temp file goes with `tf`; parents made for it go too.
            drop(tf);
            let root = fs.root.clone();
            let _ = blocking(move || Root::new(&root).map(|r| r.rmdir_created(&created))).await;
            return Err(e);
        }
    };
    let created = !tf.replaces();
    let shown = p.display();
    blocking(move || tf.commit(mode, &shown)).await?;
    let status = created_or_ok(created);
    Ok(json(
        status,
        &serde_json::json!({ "path": p.display(), "size": size }),
    ))
}

/// `POST /fs/upload?dir=D`, multipart/form-data.
pub async fn upload(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let dir = path_param(&req, "dir")?;
    upload::upload(req, fs, dir).await
}

/// `POST /fs/upload_zip?dest=D`, body = a zip.
pub async fn upload_zip(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let dest = path_param(&req, "dest")?;
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if let Some(ct) = ctype.filter(|c| !c.is_empty()) {
        if !matches!(
            ct.as_str(),
            "application/zip" | "application/x-zip-compressed" | "application/octet-stream"
        ) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported media type",
                format!("Content-Type {ct} is not application/zip or application/octet-stream"),
            ));
        }
    }
    let limits = ZipLimits::DEFAULT;
    write::check_length(&req, limits.max_body)?;
    let (root, d) = (fs.root.clone(), dest.clone());
    let (staging, spool, created) = blocking(move || {
        let top = Root::new(&root)?;
        let created = top.mkdir_all(&d, 0o755)?;
        let prepared = top
            .sub(&d, false)
            .and_then(|dest| unzip::Staging::create(&dest))
            .and_then(|s| s.spool().map(|f| (s, f)));
        match prepared {
            Ok((s, f)) => Ok((s, f, created)),
            Err(e) => {
                top.rmdir_created(&created);
                Err(e)
            }
        }
    })
    .await?;
    let mut spool = tokio::fs::File::from_std(spool);
    let filled = write::copy_limited(write::body_stream(req), &mut spool, limits.max_body).await;
    let spool = spool.into_std().await;
    let root = fs.root.clone();
    let summary = blocking(move || {
        let top = Root::new(&root)?;
        let r =
            filled.and_then(|_| unzip::unpack(&top.sub(&dest, false)?, &staging, spool, &limits));
        drop(staging); // removes the staging directory, whatever happened
        if r.is_err() {
            top.rmdir_created(&created);
        }
        r
    })
    .await?;
    ok(&summary)
}

/// Validates and extracts the zip `archive` into the existing directory
/// `dest` exactly as `upload_zip` does (same checks and limits; on any
/// error nothing is left in `dest`). For `/chromium/upload-extensions-and-restart`.
/// Blocking.
pub(crate) fn unzip_into(
    dest: &std::path::Path,
    archive: std::fs::File,
    limits: &ZipLimits,
) -> Result<unzip::Summary, ApiError> {
    let root = Root::new(dest)?;
    let staging = unzip::Staging::create(&root)?;
    unzip::unpack(&root, &staging, archive, limits)
}

/// `GET /fs/download_dir_zip?path=D`: a streamed zip.
pub async fn download_dir_zip(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let p = path_param(&req, "path")?;
    let (root, p2) = (fs.root.clone(), p.clone());
    let dir =
        blocking(move || Root::new(&root)?.open(&p2, OFlag::O_RDONLY | OFlag::O_DIRECTORY)).await?;
    let mut r = Resp::new(streamed(zipdl::stream_dir(dir)));
    header(&mut r, header::CONTENT_TYPE, "application/zip");
    let base = p.name().unwrap_or("root");
    let safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    header(
        &mut r,
        header::CONTENT_DISPOSITION,
        &format!("attachment; filename=\"{safe}.zip\""),
    );
    Ok(r)
}

/// `GET /fs/list_files?path=D`.
pub async fn list_files(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let p = path_param(&req, "path")?;
    let (root, p2) = (fs.root.clone(), p.clone());
    let entries = blocking(move || meta::list(&Root::new(&root)?, &p2)).await?;
    ok(&serde_json::json!({ "path": p.display(), "entries": entries }))
}

/// `GET /fs/file_info?path=P` (lstat).
pub async fn file_info(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let p = path_param(&req, "path")?;
    let root = fs.root.clone();
    let entry = blocking(move || meta::file_info(&Root::new(&root)?, &p)).await?;
    ok(&entry)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateDir {
    path: String,
    mode: Option<serde_json::Value>,
    #[serde(default)]
    parents: bool,
}

/// `PUT /fs/create_directory {path, mode?, parents?}`: 201 created, 200
/// already a directory.
pub async fn create_directory(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let b: CreateDir = body_json(req).await?;
    let p = RelPath::parse(&b.path)?;
    let m = b
        .mode
        .as_ref()
        .map(meta::parse_mode)
        .transpose()?
        .unwrap_or(0o755);
    let (root, p2) = (fs.root.clone(), p.clone());
    let created =
        blocking(move || ops::create_directory(&Root::new(&root)?, &p2, m, b.parents)).await?;
    let status = created_or_ok(created);
    Ok(json(
        status,
        &serde_json::json!({ "path": p.display(), "created": created }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delete {
    path: String,
    #[serde(default)]
    recursive: bool,
}

/// `PUT /fs/delete_file {path, recursive?}`.
pub async fn delete_file(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let b: Delete = body_json(req).await?;
    let p = RelPath::parse(&b.path)?;
    let (root, p2) = (fs.root.clone(), p.clone());
    blocking(move || ops::delete(&Root::new(&root)?, &p2, b.recursive)).await?;
    ok(&serde_json::json!({ "path": p.display(), "deleted": true }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    from: String,
    to: String,
    #[serde(default)]
    overwrite: bool,
}

/// `PUT /fs/move {from, to, overwrite?}`.
pub async fn move_file(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let b: Move = body_json(req).await?;
    let (from, to) = (RelPath::parse(&b.from)?, RelPath::parse(&b.to)?);
    let (root, f2, t2) = (fs.root.clone(), from.clone(), to.clone());
    blocking(move || ops::rename(&Root::new(&root)?, &f2, &t2, b.overwrite)).await?;
    ok(&serde_json::json!({ "from": from.display(), "to": to.display() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Chmod {
    path: String,
    mode: serde_json::Value,
}

/// `PUT /fs/chmod {path, mode}`.
pub async fn chmod(req: Req, fs: &Fs) -> Result<Resp, ApiError> {
    let b: Chmod = body_json(req).await?;
    let p = RelPath::parse(&b.path)?;
    let m = meta::parse_mode(&b.mode)?;
    let (root, p2) = (fs.root.clone(), p.clone());
    let st = blocking(move || ops::chmod(&Root::new(&root)?, &p2, m)).await?;
    ok(&serde_json::json!({ "path": p.display(), "mode": format!("{:04o}", st.st_mode & 0o7777) }))
}

/// 201 when the request made the thing, 200 when it was already there (or
/// was replaced).
fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}
