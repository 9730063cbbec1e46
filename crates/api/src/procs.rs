//! `/process/*`: running commands. (Being written.)

use crate::http::{ApiError, Req, Resp};

/// Spawned processes and their recorded output.
#[derive(Default)]
pub struct Processes {}

fn todo_() -> Result<Resp, ApiError> {
    Err(ApiError::new(
        hyper::StatusCode::NOT_IMPLEMENTED,
        "not implemented",
        "being written",
    ))
}

pub async fn exec(_req: Req, _p: &Processes) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn spawn(_req: Req, _p: &Processes) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn status(_id: &str, _p: &Processes) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn stream(_id: &str, _p: &Processes) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn stdin(_req: Req, _id: &str, _p: &Processes) -> Result<Resp, ApiError> {
    todo_()
}
pub async fn kill(_req: Req, _id: &str, _p: &Processes) -> Result<Resp, ApiError> {
    todo_()
}
