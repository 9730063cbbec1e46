//! HTTP plumbing every handler shares: the body type (full or streamed),
//! JSON answers, the one error shape `{"error": …, "detail": …}`, bounded
//! request bodies, multipart bodies, and query-string parsing.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Req = Request<Incoming>;
pub type Resp = Response<Body>;

/// JSON request bodies are small; uploads have their own, larger limits.
pub const MAX_JSON_BODY: usize = 4 * 1024 * 1024;

/// An error answer. Handlers return `Result<Resp, ApiError>`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            detail: detail.into(),
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad request", detail)
    }
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not found", detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", detail)
    }
    pub fn too_large(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
            detail,
        )
    }
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", detail)
    }
    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// An I/O error on `path`, mapped to the status a client can act on.
    pub fn io(path: &str, e: &std::io::Error) -> ApiError {
        use std::io::ErrorKind::*;
        let status = match e.kind() {
            NotFound => StatusCode::NOT_FOUND,
            PermissionDenied => StatusCode::FORBIDDEN,
            AlreadyExists | DirectoryNotEmpty => StatusCode::CONFLICT,
            NotADirectory | IsADirectory | InvalidInput | InvalidFilename => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let error = match status {
            StatusCode::NOT_FOUND => "not found",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::CONFLICT => "conflict",
            StatusCode::BAD_REQUEST => "bad request",
            _ => "internal error",
        };
        ApiError::new(status, error, format!("{path}: {e}"))
    }

    pub fn into_response(self) -> Resp {
        json(
            self.status,
            &serde_json::json!({ "error": self.error, "detail": self.detail }),
        )
    }
}

/// A whole body as this crate's streaming-capable [`Body`].
pub fn full_body(body: Full<Bytes>) -> Body {
    body.map_err(|e: Infallible| match e {}).boxed()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

/// A body fed by a stream of chunks (SSE, zip downloads).
pub fn streamed<S>(stream: S) -> Body
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
{
    use futures_util::StreamExt;
    BodyExt::boxed(StreamBody::new(stream.map(|r| r.map(Frame::data))))
}

/// A `200 text/event-stream` answer whose events are the chunks sent on
/// `rx` (already framed as SSE); it ends when every sender is gone.
pub fn sse(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Resp {
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    let mut r = Response::new(streamed(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx and friends would otherwise hold events back.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Resp {
    let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn ok<T: Serialize + ?Sized>(value: &T) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, value))
}

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn body_bytes(req: Req, limit: usize) -> Result<Bytes, ApiError> {
    Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::too_large(format!("at most {limit} bytes"))
            } else {
                ApiError::bad_request(format!("reading the body: {e}"))
            }
        })
}

/// Parses a JSON body into `T`, saying which field was wrong.
pub async fn body_json<T: DeserializeOwned>(req: Req) -> Result<T, ApiError> {
    let bytes = body_bytes(req, MAX_JSON_BODY).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// The query string as a map (form-decoded; later keys win).
pub fn query(req: &Req) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// A required query parameter.
pub fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Result<&'a str, ApiError> {
    q.get(name)
        .map(String::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("missing query parameter {name:?}")))
}

/// A `multipart/form-data` body read as a stream of parts within `limit`
/// (415 without a boundary in the Content-Type).
pub fn multipart(
    req: Req,
    limit: multer::SizeLimit,
) -> Result<multer::Multipart<'static>, ApiError> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(ctype).map_err(|_| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type",
            "Content-Type must be multipart/form-data with a boundary",
        )
    })?;
    Ok(multer::Multipart::with_constraints(
        req.into_body().into_data_stream(),
        boundary,
        multer::Constraints::new().size_limit(limit),
    ))
}

/// A multipart read error: 413 past a size limit, else 400. `outcome`
/// (e.g. "nothing was installed") is added to the 413's detail.
pub fn multipart_error(e: multer::Error, outcome: &str) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { limit }
        | multer::Error::FieldSizeExceeded { limit, .. } => {
            ApiError::too_large(format!("the upload exceeds {limit} bytes{outcome}"))
        }
        e => ApiError::bad_request(format!("malformed multipart body: {e}")),
    }
}
