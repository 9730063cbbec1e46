//! `/logs/stream`: a program's output (through corral's control socket) or
//! a file, as Server-Sent Events. (Being written.)

use crate::http::{ApiError, Req, Resp};
use crate::AppState;

pub async fn stream(_req: Req, _state: &AppState) -> Result<Resp, ApiError> {
    Err(ApiError::new(
        hyper::StatusCode::NOT_IMPLEMENTED,
        "not implemented",
        "being written",
    ))
}
