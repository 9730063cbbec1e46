//! `/recording/*`: screen recordings of the X display, made by Debian's
//! ffmpeg running as corral's program `recording` (autostart off, restart
//! never, stop signal INT so ffmpeg finalises the file). corral-api writes
//! the parameters file the program reads ([`ffmpeg`]), starts and stops
//! the program over the control socket, and keeps the files and their
//! metadata in `--recordings-dir` ([`store`]); `files.rs` lists, serves and
//! deletes finished ones; `watch.rs` follows the one in progress.
//!
//! One recording at a time. Bounds: a duration (request field, default
//! and cap from the flags) and the volume: a start is refused (507) when
//! less than the budget `--recording-min-free-mib` plus [`MIN_ROOM`] is
//! free, ffmpeg's `-fs` stops it before it eats into the budget, and a
//! watcher stops it if other writers bring the free space under half the
//! budget. [`active`] names the recording in progress (`PATCH /display`
//! refuses to resize under it).

pub mod ffmpeg;
mod files;
pub mod store;
mod watch;

pub use files::{delete, download, list};
pub use watch::{adopt, watch};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_proto::{ProgramStatus, Request, Response, State, Targets, Wait};
use hyper::StatusCode;
use serde::Deserialize;

use crate::control::Client;
use crate::http::{body_bytes, ok, ApiError, Req, Resp, MAX_JSON_BODY};
use crate::AppState;
use store::{check_id, Meta};

/// Free space a recording needs on top of the budget to start at all.
pub const MIN_ROOM: u64 = 16 * 1024 * 1024;
/// Frame rates accepted.
pub const FRAMERATES: std::ops::RangeInclusive<u32> = 1..=30;
pub const DEFAULT_FRAMERATE: u32 = 10;
/// How long a start waits for ffmpeg's first bytes.
const FIRST_BYTES: Duration = Duration::from_secs(10);
/// Bound on the program's start and stop (its stop_timeout is below this).
const WAIT: Duration = Duration::from_secs(30);
/// How often the watcher looks at the program and the free space.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// The recorder's settings (from the flags).
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    /// corral's program that runs `corral-api record --params <params>`.
    pub program: String,
    pub params: PathBuf,
    pub display: String,
    /// Bytes always left free on the volume.
    pub min_free: u64,
    pub default_duration_s: u64,
    pub max_duration_s: u64,
}

/// Start, stop, delete and the watcher's stops one at a time: a watcher
/// deciding to stop recording A must not stop B started meanwhile.
pub type Lock = Arc<tokio::sync::Mutex<()>>;

pub struct Recorder {
    pub config: Config,
    pub lock: Lock,
}

impl Recorder {
    pub fn new(config: Config) -> Recorder {
        Recorder {
            config,
            lock: Lock::default(),
        }
    }
}

/// The id of the recording in progress, if any (`None` also when corral
/// cannot be asked). `PATCH /display` answers 409 naming it.
pub async fn active(state: &AppState) -> Option<String> {
    active_id(&state.recording.config, &state.control)
        .await
        .ok()
        .flatten()
}

/// The program's status; `None` when corral has no such program.
async fn program(c: &Config, control: &Client) -> Result<Option<ProgramStatus>, ApiError> {
    let names = vec![c.program.clone()];
    match control.call(Request::Status { names }, WAIT).await {
        Ok(Response::Status { programs, .. }) => Ok(programs.into_iter().next()),
        Ok(other) => Err(ApiError::internal(format!("unexpected answer: {other:?}"))),
        Err(e) if e.status == StatusCode::NOT_FOUND => Ok(None),
        Err(e) => Err(e),
    }
}

fn running(s: &ProgramStatus) -> bool {
    matches!(s.state, State::Starting | State::Running | State::Stopping)
}

async fn active_id(c: &Config, control: &Client) -> Result<Option<String>, ApiError> {
    Ok(match program(c, control).await? {
        Some(s) if running(&s) => ffmpeg::read_params(&c.params).ok().map(|p| p.id),
        _ => None,
    })
}

async fn act(c: &Config, control: &Client, start: bool) -> Result<(), ApiError> {
    let targets = Targets::Names(vec![c.program.clone()]);
    let wait = Wait {
        wait: true,
        timeout_ms: WAIT.as_millis() as u64,
    };
    let request = if start {
        Request::Start { targets, wait }
    } else {
        Request::Stop { targets, wait }
    };
    control.call(request, WAIT).await.map(drop)
}

fn not_configured(c: &Config) -> ApiError {
    ApiError::unavailable(format!(
        "recording is not configured: corral has no program {:?} (see docs/api.md)",
        c.program
    ))
}

/// A JSON body that may be empty (then `T::default()`).
async fn opt_body<T: Default + serde::de::DeserializeOwned>(req: Req) -> Result<T, ApiError> {
    let bytes = body_bytes(req, MAX_JSON_BODY).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Runs file work on `dir` off the async threads. The directory is under
/// `--fs-root` in the image, so a client may have put a file in its place
/// (or a directory where a recording's file goes): that is a 409 naming
/// it, not a server error.
async fn blocking<T: Send + 'static>(
    dir: &std::path::Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    use std::io::ErrorKind::{AlreadyExists, IsADirectory, NotADirectory};
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| {
            let what = format!("the recordings directory {}: {e}", dir.display());
            match e.kind() {
                NotADirectory | AlreadyExists | IsADirectory => {
                    ApiError::conflict(format!("{what} (something else is in its place)"))
                }
                _ => ApiError::internal(what),
            }
        })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    framerate: Option<u32>,
    max_duration_s: Option<u64>,
}

/// `POST /recording/start {"framerate"?, "max_duration_s"?}`.
pub async fn start(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    let c = &state.recording.config;
    let body: StartBody = opt_body(req).await?;
    let framerate = body.framerate.unwrap_or(DEFAULT_FRAMERATE);
    if !FRAMERATES.contains(&framerate) {
        return Err(ApiError::bad_request(format!(
            "framerate {framerate} is out of range ({}..={})",
            FRAMERATES.start(),
            FRAMERATES.end()
        )));
    }
    let max_duration_s = body.max_duration_s.unwrap_or(c.default_duration_s);
    if !(1..=c.max_duration_s).contains(&max_duration_s) {
        return Err(ApiError::bad_request(format!(
            "max_duration_s {max_duration_s} is out of range (1..={})",
            c.max_duration_s
        )));
    }
    let _guard = state.recording.lock.lock().await;
    let status = program(c, &state.control)
        .await?
        .ok_or_else(|| not_configured(c))?;
    if running(&status) {
        let id = ffmpeg::read_params(&c.params)
            .map(|p| p.id)
            .unwrap_or_else(|_| "(unknown)".into());
        return Err(ApiError::conflict(format!(
            "recording {id} is in progress; stop it first"
        )));
    }
    let dir = c.dir.clone();
    let free = blocking(&c.dir, move || {
        std::fs::create_dir_all(&dir)?;
        store::free_bytes(&dir)
    })
    .await?;
    if free < c.min_free.saturating_add(MIN_ROOM) {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient storage",
            format!(
                "{} has {} MiB free; recordings leave {} MiB free (--recording-min-free-mib) and need {} MiB more to start",
                c.dir.display(),
                free >> 20,
                c.min_free >> 20,
                MIN_ROOM >> 20
            ),
        ));
    }
    let id = store::new_id(&c.dir);
    let meta = Meta {
        id: id.clone(),
        started_at_unix: store::now_unix(),
        framerate,
        max_duration_s,
        max_bytes: free - c.min_free,
        stopped_at_unix: None,
        video_duration_s: None,
    };
    let params = ffmpeg::Params {
        id: id.clone(),
        display: c.display.clone(),
        output: store::mp4(&c.dir, &id),
        framerate,
        max_duration_s,
        max_bytes: meta.max_bytes,
    };
    let (dir, m, pfile, p) = (c.dir.clone(), meta.clone(), c.params.clone(), params);
    blocking(&c.dir, move || {
        store::write_json(&store::meta_path(&dir, &m.id), &m)?;
        store::write_json(&pfile, &p)
    })
    .await?;
    if let Err(e) = first_bytes(c, &state.control, &id).await {
        // Nothing half-made stays behind: the program is stopped (its
        // `want` cleared) and the files go.
        let _ = act(c, &state.control, false).await;
        let _ = std::fs::remove_file(store::mp4(&c.dir, &id));
        let _ = std::fs::remove_file(store::meta_path(&c.dir, &id));
        return Err(e);
    }
    let lock = state.recording.lock.clone();
    tokio::spawn(watch(c.clone(), state.control.clone(), id.clone(), lock));
    tracing::info!(%id, framerate, max_duration_s, max_bytes = meta.max_bytes, "recording started");
    ok(&store::entry(&c.dir, &meta, true))
}

/// Starts the program and waits until ffmpeg wrote the file's header (the
/// `moov` box comes once the first frame is encoded: from then on the file
/// plays), or says why it did not.
async fn first_bytes(c: &Config, control: &Client, id: &str) -> Result<(), ApiError> {
    act(c, control, true).await?;
    let file = store::mp4(&c.dir, id);
    let deadline = Instant::now() + FIRST_BYTES;
    loop {
        if has_header(&file) {
            return Ok(());
        }
        let s = program(c, control)
            .await?
            .ok_or_else(|| not_configured(c))?;
        if !running(&s) || Instant::now() >= deadline {
            let why = s
                .reason
                .unwrap_or_else(|| format!("no video after {FIRST_BYTES:?}"));
            return Err(ApiError::internal(format!(
                "the recorder did not start ({why}); its output: {}",
                tail(c, control).await
            )));
        }
        // Poll gap while ffmpeg opens the display and encodes a frame.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Does the mp4 begin with its `moov` box yet?
fn has_header(file: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(file)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map(|_| head.windows(4).any(|w| w == b"moov"))
        .unwrap_or(false)
}

/// The program's last output lines, for an error's detail.
async fn tail(c: &Config, control: &Client) -> String {
    let request = Request::Tail {
        name: c.program.clone(),
        lines: 5,
        follow: false,
    };
    match control.call(request, WAIT).await {
        Ok(Response::Lines { lines, .. }) => lines.join(" | "),
        _ => "(unavailable)".into(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdBody {
    id: Option<String>,
}

/// `POST /recording/stop {"id"?}`: stops the recording in progress (SIGINT:
/// ffmpeg writes its last fragment) and answers its entry.
pub async fn stop(req: Req, state: &AppState) -> Result<Resp, ApiError> {
    let c = &state.recording.config;
    let body: IdBody = opt_body(req).await?;
    if let Some(id) = &body.id {
        check_id(id)?;
    }
    let _guard = state.recording.lock.lock().await;
    let active = active_id(c, &state.control).await?;
    let id = match (active, body.id) {
        (None, Some(id)) if store::read_meta(&c.dir, &id).is_none() => {
            return Err(ApiError::not_found(format!("no recording {id}")))
        }
        (None, _) => return Err(ApiError::conflict("no recording is in progress")),
        (Some(a), Some(id)) if a != id => {
            return Err(ApiError::conflict(format!(
                "recording {id} is not in progress ({a} is)"
            )))
        }
        (Some(a), _) => a,
    };
    act(c, &state.control, false).await?;
    let meta = finish(c, &id, true)
        .await
        .ok_or_else(|| ApiError::internal(format!("the metadata of {id} is gone")))?;
    tracing::info!(%id, video_duration_s = ?meta.video_duration_s, "recording stopped");
    ok(&store::entry(&c.dir, &meta, false))
}

/// Completes a finished recording's metadata: when it was stopped (by the
/// API), and the video's own duration as ffprobe reads it (the wall clock
/// between request and stop also counts ffmpeg opening the display and
/// the encoder). `None` when the metadata is gone.
async fn finish(c: &Config, id: &str, stopped: bool) -> Option<Meta> {
    let mut meta = store::read_meta(&c.dir, id)?;
    if stopped {
        meta.stopped_at_unix = Some(store::now_unix());
    }
    meta.video_duration_s = video_duration(&store::mp4(&c.dir, id)).await;
    let (dir, m) = (c.dir.clone(), meta.clone());
    let _ = blocking(&c.dir, move || {
        store::write_json(&store::meta_path(&dir, &m.id), &m)
    })
    .await;
    Some(meta)
}

/// The mp4's duration by ffprobe (`CORRAL_FFPROBE` or `ffprobe`), bounded.
async fn video_duration(file: &std::path::Path) -> Option<f64> {
    let ffprobe = std::env::var("CORRAL_FFPROBE").unwrap_or_else(|_| "ffprobe".into());
    let run = tokio::process::Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}
