//! `corral-api --listen 127.0.0.1:10001`: arguments, the secure-by-default
//! check, and the server. Two subcommands are not the server:
//! `corral-api chromium-launch … -- chromium …` is Chromium's launcher
//! (`chromium::launch`), and `corral-api record --params FILE` is what
//! corral's `recording` program runs: it becomes ffmpeg (recording/ffmpeg.rs).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use corral_api::{
    computer::Screen, control::Client, display, fs::Fs, procs::Processes, recording, AppState,
};
use corral_boot::exit;
use corral_serve::args::{Service, WithoutToken};
use corral_serve::PolicyArgs;

#[derive(Parser)]
#[command(
    name = "corral-api",
    version,
    about = "HTTP control API: processes, files, logs, programs, screen recordings",
    after_help = "`corral-api record --params FILE` runs ffmpeg with the parameters corral-api \
                  wrote for a recording (the command of corral's `recording` program)."
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:10001")]
    listen: SocketAddr,
    /// Who may call (token, Origin, Host): docs/security.md.
    #[command(flatten)]
    policy: PolicyArgs,
    /// Confine every file path to this directory.
    #[arg(long)]
    fs_root: Option<PathBuf>,
    /// corral's control socket.
    #[arg(long, env = "CORRAL_SOCKET", default_value = corral_proto::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Chromium's DevTools address, for /chromium/restart.
    #[arg(long, default_value = "http://127.0.0.1:9223")]
    cdp: String,
    /// The corral program name of Chromium.
    #[arg(long, default_value = "chromium")]
    chromium_program: String,
    /// The live view's control lease, shared with corral-live (which lets
    /// viewers' keyboard and mouse through only while it is current).
    /// Default: $CORRAL_RUN_DIR/live-lease.json (/run/corral).
    #[arg(long, value_name = "PATH")]
    live_lease_file: Option<PathBuf>,
    /// Where PATCH /chromium/flags keeps the flags (the launcher's
    /// --flags-file); without it /chromium/flags answers 503.
    #[arg(long)]
    chromium_flags_file: Option<PathBuf>,
    /// Where uploaded extensions are kept (the launcher's
    /// --extensions-dir); without it the extension endpoints answer 503.
    #[arg(long)]
    chromium_extensions_dir: Option<PathBuf>,
    /// Most /fs/watch watches running at once, altogether.
    #[arg(long, default_value_t = corral_api::fs::watch::MAX_WATCHES)]
    max_fs_watches: usize,
    /// Most /fs/watch watches running at once per client (peer IP address).
    #[arg(long, default_value_t = corral_api::fs::watch::MAX_WATCHES_PER_CLIENT)]
    max_fs_watches_per_client: usize,
    /// Where recordings are kept (default: <fs-root>/recordings).
    #[arg(long)]
    recordings_dir: Option<PathBuf>,
    /// The corral program that records (`corral-api record --params FILE`).
    #[arg(long, default_value = "recording")]
    recording_program: String,
    /// The parameters file that program reads (written by corral-api).
    #[arg(long, default_value = "/run/corral/recording.json")]
    recording_params: PathBuf,
    /// MiB always left free on the recordings' volume: a start is refused
    /// below it, a recording stops before it.
    #[arg(long, default_value_t = 512)]
    recording_min_free_mib: u64,
    /// A recording's length when the request gives none, in seconds.
    #[arg(long, default_value_t = 600)]
    recording_default_duration: u64,
    /// The longest recording a request may ask for, in seconds.
    #[arg(long, default_value_t = 3600)]
    recording_max_duration: u64,
    /// The X display for /computer/*, /display and recordings.
    #[arg(long, env = "DISPLAY", default_value = ":99")]
    display: String,
    /// Where PATCH /display keeps the screen size (JSON), applied again at
    /// every start by --apply-display; not kept without it.
    #[arg(long)]
    display_state: Option<PathBuf>,
    /// With --apply-display: the size when none is kept, WIDTHxHEIGHT.
    #[arg(long, value_parser = parse_size)]
    default_size: Option<display::Size>,
    /// Set the kept (or default) size on the display and exit: Xvfb's
    /// readiness check. Fails while the X server does not answer.
    #[arg(long)]
    apply_display: bool,
    /// Keep Chromium's windows filling the screen (there is no window
    /// manager): on every new window and every resize.
    #[arg(long)]
    fit_windows: bool,
}

fn parse_size(s: &str) -> Result<display::Size, String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT"))?;
    let n = |v: &str| {
        v.parse::<u16>()
            .map_err(|_| format!("{s:?} is not WIDTHxHEIGHT"))
    };
    Ok(display::Size {
        width: n(w)?,
        height: n(h)?,
    })
}

fn main() -> ExitCode {
    // `corral-api chromium-launch …`: Chromium's launcher (execs Chromium
    // with the kept flags and extensions), not the server.
    let mut argv = std::env::args_os().skip(1);
    match argv.next() {
        Some(a) if a == "chromium-launch" => {
            return corral_api::chromium::launch::main(argv.collect());
        }
        // `corral-api record --params FILE`: becomes ffmpeg.
        Some(a) if a == "record" => {
            let rest: Vec<String> = argv.map(|a| a.to_string_lossy().into_owned()).collect();
            let (code, message) = corral_api::recording::ffmpeg::record_main(&rest);
            eprintln!("corral-api record: {message}");
            return ExitCode::from(code as u8);
        }
        _ => {}
    }
    let args = match corral_boot::args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    corral_boot::init_logging();
    if args.apply_display {
        let saved = display::Saved {
            path: args.display_state.clone(),
        };
        return match display::apply_saved(&args.display, &saved, args.default_size) {
            Ok(()) => exit::code(exit::SUCCESS),
            Err(e) => {
                eprintln!("corral-api: --apply-display: {e}");
                exit::code(exit::FAILURE)
            }
        };
    }
    // Read the token now and drop every corral token from the environment
    // while the process is still single-threaded: commands run through
    // /process/* would otherwise inherit them (the container's environment
    // may hold the snapshot and CDP tokens too), whoever they run as.
    let env_token = std::env::var("CORRAL_API_TOKEN").ok();
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("CORRAL_") && name.ends_with("_TOKEN") {
            std::env::remove_var(&name);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(args, env_token))
}

async fn run(args: Args, env_token: Option<String>) -> ExitCode {
    let service = Service {
        program: "corral-api",
        name: "API",
        listen: args.listen,
        without_token: WithoutToken::LoopbackOnly,
    };
    let policy = match args.policy.build_with_env_token(&service, env_token) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("corral-api: {e}");
            return exit::code(exit::USAGE);
        }
    };
    let root = match &args.fs_root {
        Some(r) => match std::fs::canonicalize(r) {
            Ok(p) if p.is_dir() => p,
            _ => {
                eprintln!("corral-api: --fs-root {} is not a directory", r.display());
                return exit::code(exit::USAGE);
            }
        },
        None => PathBuf::from("/"),
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("corral-api: cannot listen on {}: {e}", args.listen);
            return exit::code(exit::FAILURE);
        }
    };
    tracing::info!(listen = %args.listen, auth = matches!(policy.auth, corral_serve::Auth::Token(_)), fs_root = %root.display(), "corral-api serving");
    if args.recording_default_duration == 0
        || args.recording_default_duration > args.recording_max_duration
    {
        eprintln!("corral-api: --recording-default-duration must be between 1 and --recording-max-duration");
        return exit::code(exit::USAGE);
    }
    let recording = recording::Config {
        dir: args
            .recordings_dir
            .clone()
            .unwrap_or_else(|| root.join("recordings")),
        program: args.recording_program,
        params: args.recording_params,
        display: args.display.clone(),
        min_free: args.recording_min_free_mib.saturating_mul(1024 * 1024),
        default_duration_s: args.recording_default_duration,
        max_duration_s: args.recording_max_duration,
    };
    let control = Client::new(args.socket);
    let recorder = recording::Recorder::new(recording.clone());
    tokio::spawn(recording::adopt(
        recording,
        control.clone(),
        recorder.lock.clone(),
    ));
    let state = Arc::new(AppState {
        policy,
        fs: Fs {
            root,
            watches: corral_api::fs::watch::Watches::new(
                args.max_fs_watches,
                args.max_fs_watches_per_client,
            ),
        },
        procs: Processes::default(),
        control,
        cdp: args.cdp,
        chromium_program: args.chromium_program,
        live: corral_api::live::Live::new(
            args.live_lease_file
                .unwrap_or_else(corral_serve::live_lease::default_path),
        ),
        chromium: corral_api::chromium::Config {
            flags_file: args.chromium_flags_file,
            extensions_dir: args.chromium_extensions_dir,
            ..Default::default()
        },
        recording: recorder,
        screen: Screen::new(args.display),
        display_state: display::Saved {
            path: args.display_state,
        },
    });
    if args.fit_windows {
        display::keep_windows_fitted(&state.screen);
    }
    corral_api::serve(listener, state, corral_serve::listen::stop_signal()).await;
    tracing::info!("corral-api stopped");
    exit::code(exit::SUCCESS)
}
