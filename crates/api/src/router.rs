//! One table from method and path to handler, and the request policy
//! (token, Origin, Host: `corral-serve`) in front of it. Every error leaves as `{"error": …, "detail": …}`.

use corral_serve::Need;
use hyper::header;
use hyper::{Method, StatusCode};

use crate::http::{full, ApiError, Req, Resp};
use crate::{fs, logs, procs, programs, AppState};

/// The OpenAPI document, compiled in so it always matches this binary.
pub const SPEC: &str = include_str!("../api/openapi.yaml");

pub async fn route(req: Req, state: &AppState) -> Resp {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    // The spec and the health check are public; everything else needs the
    // token when one is configured.
    let public = method == Method::GET && (path == "/spec.yaml" || path == "/healthz");
    let need = if public {
        Need::Public
    } else {
        Need::Credential
    };
    let peer = req.extensions().get::<std::net::SocketAddr>().copied();
    if let Err(refused) = state.policy.admit(&req, peer, need) {
        return refused.response().map(crate::http::full_body);
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let result = match (&method, segments.as_slice()) {
        (&Method::GET, ["spec.yaml"]) => {
            let mut r = Resp::new(full(SPEC));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/yaml"),
            );
            Ok(r)
        }
        (&Method::GET, ["healthz"]) => crate::http::ok(&serde_json::json!({ "ok": true })),

        (&Method::POST, ["process", "exec"]) => procs::exec(req, &state.procs).await,
        (&Method::POST, ["process", "spawn"]) => procs::spawn(req, &state.procs).await,
        (&Method::GET, ["process", id, "status"]) => procs::status(id, &state.procs).await,
        (&Method::GET, ["process", id, "stdout", "stream"]) => {
            procs::stream(id, &state.procs).await
        }
        (&Method::POST, ["process", id, "stdin"]) => procs::stdin(req, id, &state.procs).await,
        (&Method::POST, ["process", id, "kill"]) => procs::kill(req, id, &state.procs).await,

        (&Method::GET, ["fs", "read_file"]) => fs::read_file(req, &state.fs).await,
        (&Method::PUT, ["fs", "write_file"]) => fs::write_file(req, &state.fs).await,
        (&Method::POST, ["fs", "upload"]) => fs::upload(req, &state.fs).await,
        (&Method::POST, ["fs", "upload_zip"]) => fs::upload_zip(req, &state.fs).await,
        (&Method::GET, ["fs", "download_dir_zip"]) => fs::download_dir_zip(req, &state.fs).await,
        (&Method::GET, ["fs", "list_files"]) => fs::list_files(req, &state.fs).await,
        (&Method::GET, ["fs", "file_info"]) => fs::file_info(req, &state.fs).await,
        (&Method::PUT, ["fs", "create_directory"]) => fs::create_directory(req, &state.fs).await,
        (&Method::PUT, ["fs", "delete_file"]) => fs::delete_file(req, &state.fs).await,
        (&Method::PUT, ["fs", "move"]) => fs::move_file(req, &state.fs).await,
        (&Method::PUT, ["fs", "chmod"]) => fs::chmod(req, &state.fs).await,

        (&Method::GET, ["logs", "stream"]) => logs::stream(req, state).await,

        (&Method::GET, ["programs"]) => programs::list(&state.control).await,
        (&Method::POST, ["programs", name, verb @ ("start" | "stop" | "restart")]) => {
            programs::act(name, verb, &state.control).await
        }
        (&Method::POST, ["chromium", "restart"]) => programs::restart_chromium(state).await,

        _ if known_path(&segments) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            format!("{method} is not allowed on {path}"),
        )),
        _ => Err(ApiError::not_found(format!(
            "no endpoint {path}; see /spec.yaml"
        ))),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// A path that exists with some other method (for 405 rather than 404).
fn known_path(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["spec.yaml"]
            | ["healthz"]
            | ["process", "exec" | "spawn"]
            | ["process", _, "status" | "stdin" | "kill"]
            | ["process", _, "stdout", "stream"]
            | ["fs", _]
            | ["logs", "stream"]
            | ["programs"]
            | ["programs", _, "start" | "stop" | "restart"]
            | ["chromium", "restart"]
    )
}
