//! `/programs` and `/chromium/restart`: corral's programs, through the
//! control socket.

use std::time::{Duration, Instant};

use corral_proto::{Request, Response, Targets, Wait};

use crate::control::Client;
use crate::http::{ok, ApiError, Resp};
use crate::AppState;

/// How long start/stop/restart wait for the target state.
const WAIT: Duration = Duration::from_secs(60);
/// After Chromium is RUNNING, how long its DevTools port may take to answer.
const CDP_WAIT: Duration = Duration::from_secs(30);

pub async fn list(control: &Client) -> Result<Resp, ApiError> {
    match control
        .call(Request::Status { names: vec![] }, WAIT)
        .await?
    {
        Response::Status {
            programs,
            shutting_down,
        } => ok(&serde_json::json!({ "programs": programs, "shutting_down": shutting_down })),
        other => Err(ApiError::internal(format!("unexpected answer: {other:?}"))),
    }
}

pub async fn act(name: &str, verb: &str, control: &Client) -> Result<Resp, ApiError> {
    let targets = Targets::Names(vec![name.to_string()]);
    let wait = Wait {
        wait: true,
        timeout_ms: WAIT.as_millis() as u64,
    };
    let request = match verb {
        "start" => Request::Start { targets, wait },
        "stop" => Request::Stop { targets, wait },
        _ => Request::Restart { targets, wait },
    };
    match control.call(request, WAIT).await? {
        Response::Done { programs } => ok(&serde_json::json!({ "programs": programs })),
        other => Err(ApiError::internal(format!("unexpected answer: {other:?}"))),
    }
}

/// Restarts Chromium through corral (its stop runs the configured pre_stop,
/// which closes the browser over CDP so cookies are written) and answers
/// once its DevTools port answers again.
pub async fn restart_chromium(state: &AppState) -> Result<Resp, ApiError> {
    ok(&restart_and_wait(state).await?)
}

/// The restart behind `/chromium/restart`, for the endpoints that change
/// how Chromium starts (flags, extensions): `{restarted, elapsed_ms,
/// running_after_ms, browser}` once DevTools answers again.
pub async fn restart_and_wait(state: &AppState) -> Result<serde_json::Value, ApiError> {
    let started = Instant::now();
    act(&state.chromium_program, "restart", &state.control).await?;
    let running_ms = started.elapsed().as_millis() as u64;
    let deadline = Instant::now() + CDP_WAIT;
    let browser = loop {
        // Each attempt bounded by what is left: a port that accepts and
        // never answers must not outlast the deadline.
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = tokio::time::timeout(left, version(&state.cdp))
            .await
            .unwrap_or_else(|_| Err("no answer".into()));
        match attempt {
            Ok(v) => break v,
            Err(e) if Instant::now() >= deadline => {
                return Err(ApiError::new(
                    hyper::StatusCode::GATEWAY_TIMEOUT,
                    "timed out",
                    format!(
                        "chromium restarted but DevTools at {} did not answer within {}s: {e}",
                        state.cdp,
                        CDP_WAIT.as_secs()
                    ),
                ))
            }
            // DevTools opens a moment after the readiness check's port:
            // try again shortly, within the deadline.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    Ok(serde_json::json!({
        "restarted": state.chromium_program,
        "elapsed_ms": started.elapsed().as_millis() as u64,
        "running_after_ms": running_ms,
        "browser": browser,
    }))
}

/// `Browser` from `/json/version`.
async fn version(cdp: &str) -> Result<String, String> {
    let authority = cdp.trim_start_matches("http://").trim_end_matches('/');
    let v = corral_serve::devtools::json_version(authority).await?;
    v["Browser"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no Browser field".into())
}
