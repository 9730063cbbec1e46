//! The one route table ([`ROUTES`]: method, path, endpoint) and the request
//! policy (token, Origin, Host: `corral-serve`) in front of it. The table
//! serves requests, answers 405 with `Allow` for a known path asked with
//! another method, and is what the tests call. Every error leaves as
//! `{"error": …, "detail": …}`.

use corral_serve::Need;
use hyper::header;
use hyper::{Method, StatusCode};

use crate::http::{full, ApiError, Req, Resp};
use crate::{chromium, computer, display, fs, live, logs, procs, programs, recording, AppState};

/// The OpenAPI document, compiled in so it always matches this binary.
pub const SPEC: &str = include_str!("../api/openapi.yaml");

/// What a request is for, once its method and path are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Spec,
    Healthz,
    ProcExec,
    ProcSpawn,
    ProcStatus,
    ProcStream,
    ProcStdin,
    ProcKill,
    FsReadFile,
    FsWriteFile,
    FsUpload,
    FsUploadZip,
    FsDownloadDirZip,
    FsListFiles,
    FsFileInfo,
    FsCreateDirectory,
    FsDeleteFile,
    FsMove,
    FsChmod,
    LogsStream,
    Programs,
    ProgramStart,
    ProgramStop,
    ProgramRestart,
    ChromiumRestart,
    LiveStatus,
    LiveTakeover,
    LiveRelease,
    ChromiumFlagsGet,
    ChromiumFlagsPatch,
    ChromiumExtUpload,
    ChromiumExtList,
    ChromiumExtDelete,
    FsWatchStart,
    FsWatchStream,
    FsWatchEvents,
    FsWatchStop,
    FsDeleteDirectory,
    FsSetFilePermissions,
    ProcResize,
    RecordingStart,
    RecordingStop,
    RecordingList,
    RecordingDownload,
    RecordingDelete,
    ComputerScreenshot,
    ComputerClickMouse,
    ComputerMoveMouse,
    ComputerDragMouse,
    ComputerScroll,
    ComputerType,
    ComputerPressKey,
    ComputerCursor,
    DisplayGet,
    DisplayPatch,
}

use Endpoint::*;

/// Every endpoint: method, path (`{}` matches one segment, handed to the
/// handler), what it is. Answers without the credential: [`PUBLIC`].
static ROUTES: &[(Method, &str, Endpoint)] = &[
    (Method::GET, "/spec.yaml", Spec),
    (Method::GET, "/healthz", Healthz),
    (Method::POST, "/process/exec", ProcExec),
    (Method::POST, "/process/spawn", ProcSpawn),
    (Method::GET, "/process/{}/status", ProcStatus),
    (Method::GET, "/process/{}/stdout/stream", ProcStream),
    (Method::POST, "/process/{}/stdin", ProcStdin),
    (Method::POST, "/process/{}/kill", ProcKill),
    (Method::GET, "/fs/read_file", FsReadFile),
    (Method::PUT, "/fs/write_file", FsWriteFile),
    (Method::POST, "/fs/upload", FsUpload),
    (Method::POST, "/fs/upload_zip", FsUploadZip),
    (Method::GET, "/fs/download_dir_zip", FsDownloadDirZip),
    (Method::GET, "/fs/list_files", FsListFiles),
    (Method::GET, "/fs/file_info", FsFileInfo),
    (Method::PUT, "/fs/create_directory", FsCreateDirectory),
    (Method::PUT, "/fs/delete_file", FsDeleteFile),
    (Method::PUT, "/fs/move", FsMove),
    (Method::PUT, "/fs/chmod", FsChmod),
    (Method::GET, "/logs/stream", LogsStream),
    (Method::GET, "/programs", Programs),
    (Method::POST, "/programs/{}/start", ProgramStart),
    (Method::POST, "/programs/{}/stop", ProgramStop),
    (Method::POST, "/programs/{}/restart", ProgramRestart),
    (Method::POST, "/chromium/restart", ChromiumRestart),
    // issue 15 part 5: the live view's hand-over (crates/api/src/live.rs).
    (Method::GET, "/live", LiveStatus),
    (Method::POST, "/live/takeover", LiveTakeover),
    (Method::POST, "/live/release", LiveRelease),
    // Chromium's kept flags and extensions (issue 15, parts 1 and 2).
    (Method::GET, "/chromium/flags", ChromiumFlagsGet),
    (Method::PATCH, "/chromium/flags", ChromiumFlagsPatch),
    (
        Method::POST,
        "/chromium/upload-extensions-and-restart",
        ChromiumExtUpload,
    ),
    (Method::GET, "/chromium/extensions", ChromiumExtList),
    (Method::DELETE, "/chromium/extensions/{}", ChromiumExtDelete),
    // Issue 15, files and PTYs (kernel-images' names).
    (Method::POST, "/fs/watch", FsWatchStart),
    (Method::GET, "/fs/watch", FsWatchStream),
    (Method::GET, "/fs/watch/{}/events", FsWatchEvents),
    (Method::DELETE, "/fs/watch/{}", FsWatchStop),
    (Method::PUT, "/fs/delete_directory", FsDeleteDirectory),
    (
        Method::PUT,
        "/fs/set_file_permissions",
        FsSetFilePermissions,
    ),
    (Method::POST, "/process/{}/resize", ProcResize),
    // Screen recording (recording/mod.rs).
    (Method::POST, "/recording/start", RecordingStart),
    (Method::POST, "/recording/stop", RecordingStop),
    (Method::GET, "/recording/list", RecordingList),
    (Method::GET, "/recording/download", RecordingDownload),
    (Method::POST, "/recording/delete", RecordingDelete),
    // issue 14: computer use and the display.
    (Method::GET, "/computer/screenshot", ComputerScreenshot),
    (Method::POST, "/computer/click_mouse", ComputerClickMouse),
    (Method::POST, "/computer/move_mouse", ComputerMoveMouse),
    (Method::POST, "/computer/drag_mouse", ComputerDragMouse),
    (Method::POST, "/computer/scroll", ComputerScroll),
    (Method::POST, "/computer/type", ComputerType),
    (Method::POST, "/computer/press_key", ComputerPressKey),
    (Method::GET, "/computer/cursor", ComputerCursor),
    (Method::GET, "/display", DisplayGet),
    (Method::PATCH, "/display", DisplayPatch),
];

/// Endpoints served without the credential (the spec and the health check).
const PUBLIC: &[Endpoint] = &[Spec, Healthz];

/// What the table says about a method and path.
#[derive(Debug, PartialEq, Eq)]
enum Found<'p> {
    /// The endpoint and the path's `{}` segment, if it has one.
    Route(Endpoint, Option<&'p str>),
    /// The path exists with these other methods.
    WrongMethod(Vec<&'static Method>),
    /// No such path.
    Nothing,
}

/// `path` against a pattern: `Some(captured segment)` on a match.
fn matches<'p>(pattern: &str, path: &'p str) -> Option<Option<&'p str>> {
    let mut want = pattern.split('/');
    let mut have = path.split('/');
    let mut captured = None;
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(captured),
            (Some("{}"), Some(seg)) if !seg.is_empty() => captured = Some(seg),
            (Some(w), Some(h)) if w == h => {}
            _ => return None,
        }
    }
}

fn find<'p>(method: &Method, path: &'p str) -> Found<'p> {
    let mut allow = Vec::new();
    for (m, pattern, endpoint) in ROUTES {
        if let Some(captured) = matches(pattern, path) {
            if m == method {
                return Found::Route(*endpoint, captured);
            }
            allow.push(m);
        }
    }
    if allow.is_empty() {
        Found::Nothing
    } else {
        Found::WrongMethod(allow)
    }
}

/// Serves one request: the policy, then the table.
pub async fn route(req: Req, state: &AppState) -> Resp {
    let path = req.uri().path().to_string();
    let found = find(req.method(), &path);
    let need = match found {
        Found::Route(e, _) if PUBLIC.contains(&e) => Need::Public,
        _ => Need::Credential,
    };
    let peer = req.extensions().get::<std::net::SocketAddr>().copied();
    if let Err(refused) = state.policy.admit(&req, peer, need) {
        return refused.response().map(crate::http::full_body);
    }
    match found {
        Found::Route(endpoint, captured) => handle(endpoint, captured.unwrap_or(""), req, state)
            .await
            .unwrap_or_else(ApiError::into_response),
        Found::WrongMethod(allow) => {
            let allow: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
            let allow = allow.join(", ");
            let mut r = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                format!(
                    "{} is not allowed on {path} (allowed: {allow})",
                    req.method()
                ),
            )
            .into_response();
            if let Ok(v) = header::HeaderValue::from_str(&allow) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            r
        }
        Found::Nothing => {
            ApiError::not_found(format!("no endpoint {path}; see /spec.yaml")).into_response()
        }
    }
}

/// Runs the endpoint's handler; `seg` is the path's `{}` segment.
async fn handle(
    endpoint: Endpoint,
    seg: &str,
    req: Req,
    state: &AppState,
) -> Result<Resp, ApiError> {
    match endpoint {
        Spec => {
            let mut r = Resp::new(full(SPEC));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/yaml"),
            );
            Ok(r)
        }
        Healthz => crate::http::ok(&serde_json::json!({ "ok": true })),

        ProcExec => procs::exec(req, &state.procs).await,
        ProcSpawn => procs::spawn(req, &state.procs).await,
        ProcStatus => procs::status(seg, &state.procs).await,
        ProcStream => procs::stream(seg, &state.procs).await,
        ProcStdin => procs::stdin(req, seg, &state.procs).await,
        ProcKill => procs::kill(req, seg, &state.procs).await,

        FsReadFile => fs::read_file(req, &state.fs).await,
        FsWriteFile => fs::write_file(req, &state.fs).await,
        FsUpload => fs::upload(req, &state.fs).await,
        FsUploadZip => fs::upload_zip(req, &state.fs).await,
        FsDownloadDirZip => fs::download_dir_zip(req, &state.fs).await,
        FsListFiles => fs::list_files(req, &state.fs).await,
        FsFileInfo => fs::file_info(req, &state.fs).await,
        FsCreateDirectory => fs::create_directory(req, &state.fs).await,
        FsDeleteFile => fs::delete_file(req, &state.fs).await,
        FsMove => fs::move_file(req, &state.fs).await,
        FsChmod => fs::chmod(req, &state.fs).await,

        LogsStream => logs::stream(req, state).await,

        Programs => programs::list(&state.control).await,
        ProgramStart => programs::act(seg, "start", &state.control).await,
        ProgramStop => programs::act(seg, "stop", &state.control).await,
        ProgramRestart => programs::act(seg, "restart", &state.control).await,
        ChromiumRestart => programs::restart_chromium(state).await,

        LiveStatus => live::status(state).await,
        LiveTakeover => live::takeover(req, state).await,
        LiveRelease => live::release(req, state).await,
        ChromiumFlagsGet => chromium::get_flags(state).await,
        ChromiumFlagsPatch => chromium::patch_flags(req, state).await,
        ChromiumExtUpload => chromium::upload_extensions(req, state).await,
        ChromiumExtList => chromium::list_extensions(state).await,
        ChromiumExtDelete => chromium::delete_extension(req, seg, state).await,
        FsWatchStart => fs::watch::start(req, &state.fs).await,
        FsWatchStream => fs::watch::start_and_stream(req, &state.fs).await,
        FsWatchEvents => fs::watch::events(seg, &state.fs).await,
        FsWatchStop => fs::watch::stop(seg, &state.fs).await,
        FsDeleteDirectory => fs::delete_directory(req, &state.fs).await,
        FsSetFilePermissions => fs::set_file_permissions(req, &state.fs).await,
        ProcResize => procs::resize(req, seg, &state.procs).await,
        RecordingStart => recording::start(req, state).await,
        RecordingStop => recording::stop(req, state).await,
        RecordingList => recording::list(state).await,
        RecordingDownload => recording::download(req, state).await,
        RecordingDelete => recording::delete(req, state).await,
        ComputerScreenshot => computer::screenshot(req, state).await,
        ComputerClickMouse => computer::click_mouse(req, state).await,
        ComputerMoveMouse => computer::move_mouse(req, state).await,
        ComputerDragMouse => computer::drag_mouse(req, state).await,
        ComputerScroll => computer::scroll(req, state).await,
        ComputerType => computer::type_text(req, state).await,
        ComputerPressKey => computer::press_key(req, state).await,
        ComputerCursor => computer::cursor(state).await,
        DisplayGet => display::get(state).await,
        DisplayPatch => display::patch(req, state).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_finds_routes_methods_and_segments() {
        assert_eq!(
            find(&Method::GET, "/process/p-1-2/status"),
            Found::Route(ProcStatus, Some("p-1-2"))
        );
        assert_eq!(find(&Method::GET, "/healthz"), Found::Route(Healthz, None));
        assert_eq!(
            find(&Method::GET, "/fs/write_file"),
            Found::WrongMethod(vec![&Method::PUT])
        );
        assert_eq!(
            find(&Method::DELETE, "/programs/x/stop"),
            Found::WrongMethod(vec![&Method::POST])
        );
        // No longer "any /fs/<x> is a known path": an unknown one is 404.
        assert_eq!(find(&Method::GET, "/fs/nope"), Found::Nothing);
        assert_eq!(find(&Method::GET, "/process//status"), Found::Nothing);
        assert_eq!(find(&Method::GET, "/healthz/"), Found::Nothing);
        assert_eq!(find(&Method::POST, "/programs/x/reload"), Found::Nothing);
    }

    #[test]
    fn every_pattern_is_well_formed_and_unique() {
        for (i, (m, p, _)) in ROUTES.iter().enumerate() {
            assert!(p.starts_with('/') && !p.ends_with('/'), "{p}");
            assert!(
                ROUTES[i + 1..].iter().all(|(m2, p2, _)| (m2, p2) != (m, p)),
                "{m} {p} twice"
            );
        }
    }
}
