//! Talking to corral over its control socket, with the same protocol crate
//! as `corralctl`. Errors become HTTP statuses a client can act on.

use std::path::PathBuf;
use std::time::Duration;

use corral_proto::frame::{decode, nonblocking};
use corral_proto::{ErrorCode, Request, RequestFrame, Response, ResponseFrame, VERSION};
use hyper::StatusCode;
use tokio::net::UnixStream;

use crate::http::ApiError;

/// Bound on reaching corral and on a non-waiting answer.
const QUICK: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Client {
    pub socket: PathBuf,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> ApiError {
        ApiError::unavailable(format!(
            "cannot reach corral at {}: {e}",
            self.socket.display()
        ))
    }

    /// Connects and sends one request; the stream is left open for the answer(s).
    pub async fn open(&self, request: Request) -> Result<UnixStream, ApiError> {
        let mut stream = tokio::time::timeout(QUICK, UnixStream::connect(&self.socket))
            .await
            .map_err(|_| self.unreachable("timed out connecting"))?
            .map_err(|e| self.unreachable(e))?;
        let frame = RequestFrame {
            v: VERSION,
            request,
        };
        nonblocking::write(&mut stream, &frame)
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(stream)
    }

    /// Reads the next answer on `stream`; `None` when corral closed it.
    pub async fn next(&self, stream: &mut UnixStream) -> Result<Option<Response>, ApiError> {
        let body = nonblocking::read_body(stream)
            .await
            .map_err(|e| self.unreachable(e))?;
        match body {
            None => Ok(None),
            Some(b) => decode::<ResponseFrame>(&b)
                .map(|f| Some(f.response))
                .map_err(|e| self.unreachable(format!("unexpected answer: {e}"))),
        }
    }

    /// One request, one answer, within `timeout`. Protocol errors come back
    /// as `ApiError`s.
    pub async fn call(&self, request: Request, timeout: Duration) -> Result<Response, ApiError> {
        let exchange = async {
            let mut stream = self.open(request).await?;
            self.next(&mut stream)
                .await?
                .ok_or_else(|| self.unreachable("closed before answering"))
        };
        let response = tokio::time::timeout(timeout + QUICK, exchange)
            .await
            .map_err(|_| self.unreachable("no answer in time"))??;
        match response {
            Response::Error { code, message } => Err(from_code(code, message)),
            other => Ok(other),
        }
    }
}

/// corral's error codes as HTTP statuses.
pub fn from_code(code: ErrorCode, message: String) -> ApiError {
    match code {
        ErrorCode::UnknownProgram => ApiError::not_found(message),
        ErrorCode::BadRequest => ApiError::bad_request(message),
        ErrorCode::Failed => ApiError::new(StatusCode::CONFLICT, "action failed", message),
        ErrorCode::Timeout => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timed out", message),
        ErrorCode::ShuttingDown => ApiError::unavailable(message),
        ErrorCode::InvalidConfig => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid config", message)
        }
    }
}
