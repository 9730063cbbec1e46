//! `/fs/*`: file operations confined to `--fs-root`. (Being written.)

use std::path::PathBuf;

use crate::http::{ApiError, Req, Resp};

/// File operations, every path confined to `root` ("/" when unset).
pub struct Fs {
    pub root: PathBuf,
}

fn todo_() -> Result<Resp, ApiError> {
    Err(ApiError::new(
        hyper::StatusCode::NOT_IMPLEMENTED,
        "not implemented",
        "being written",
    ))
}

pub async fn read_file(_req: Req, _fs: &Fs) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn write_file(_req: Req, _fs: &Fs) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn upload(_req: Req, _fs: &Fs) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn upload_zip(_req: Req, _fs: &Fs) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn download_dir_zip(_req: Req, _fs: &Fs) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn list_files(_req: Req, _fs: &Fs) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn file_info(_req: Req, _fs: &Fs) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn create_directory(_req: Req, _fs: &Fs) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn delete_file(_req: Req, _fs: &Fs) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn move_file(_req: Req, _fs: &Fs) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn chmod(_req: Req, _fs: &Fs) -> Result<Resp, ApiError> {
    todo_()
}
