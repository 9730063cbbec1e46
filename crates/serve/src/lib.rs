//! What corral's HTTP listeners share (`corral-cdp`, `corral-snapshot`,
//! `corral-api`, `corral-live`): the request policy that decides on every
//! request by its credential, Origin and Host ([`policy`]), the command-line
//! flags that configure it ([`args`]), bearer tokens loaded from a file or
//! the environment, compared in constant time, never logged, re-read when
//! the file changes ([`token`], [`watch`]), the one JSON error shape, and
//! the accept loop, connection cap, drain on stop and stop signal
//! ([`listen`]), and the `/json/version` client two of them share
//! ([`devtools`]), the server side of a WebSocket handshake ([`upgrade`]),
//! files written whole ([`private`]: token files, x11vnc's passwords,
//! corral-api's kept state, corral-snapshot's files) and the live view's lease file that corral-api writes and
//! corral-live enforces ([`live_lease`]).

pub mod args;
pub mod devtools;
pub mod listen;
pub mod live_lease;
pub mod policy;
pub mod private;
mod token;
pub mod upgrade;
mod watch;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

pub use args::PolicyArgs;
pub use policy::{Admitted, Auth, Need, Policy, Refusal};
pub use token::{strip_token, Token};
pub use watch::TokenSource;

/// The body of the answers this crate builds.
pub type JsonBody = Full<Bytes>;

/// The one error shape of every corral listener:
/// `{"error": "short reason", "detail": "what to do about it"}`.
pub fn json_error(status: StatusCode, error: &str, detail: &str) -> Response<JsonBody> {
    let body = serde_json::json!({ "error": error, "detail": detail });
    let mut r = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
