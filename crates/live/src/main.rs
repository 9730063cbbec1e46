//! `corral-live --listen 0.0.0.0:6080 --web /usr/share/novnc --upstream
//! 127.0.0.1:5900 --vnc-password-file PATH`: parses arguments, builds the
//! request policy (a token is always required for the screen) and serves
//! until SIGTERM/SIGINT. `corral-live vnc-passwords PATH` writes x11vnc's
//! random passwords (its pre_start).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use corral_boot::exit;
use corral_live::Options;
use corral_serve::args::{Service, WithoutToken};
use corral_serve::PolicyArgs;

#[derive(Parser)]
#[command(
    name = "corral-live",
    version,
    about = "The live view: noVNC and its WebSocket to x11vnc, behind a token and Origin/Host checks"
)]
struct Args {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:6080")]
    listen: SocketAddr,
    /// noVNC's files (Debian's novnc package).
    #[arg(long, default_value = "/usr/share/novnc")]
    web: PathBuf,
    /// The VNC server that takes keyboard and mouse (x11vnc).
    #[arg(long, default_value = "127.0.0.1:5900")]
    upstream: String,
    /// x11vnc's -passwdfile (a password, __BEGIN_VIEWONLY__, a view-only
    /// password): corral-live logs in with it on the viewer's behalf.
    #[arg(long, value_name = "PATH")]
    vnc_password_file: Option<PathBuf>,
    /// File holding the view-only token (created if missing; else
    /// CORRAL_LIVE_VIEW_TOKEN or CORRAL_LIVE_VIEW_TOKEN_FILE). A view-only
    /// door needs --vnc-password-file (x11vnc enforces it).
    #[arg(long, value_name = "PATH")]
    view_token_file: Option<PathBuf>,
    /// The control lease file corral-api writes (POST /live/takeover):
    /// keyboard and mouse reach the screen only while it holds a current
    /// lease. Default: $CORRAL_RUN_DIR/live-lease.json (/run/corral).
    #[arg(long, value_name = "PATH")]
    live_lease_file: Option<PathBuf>,
    /// Who may watch and type (token, Origin, Host): docs/security.md.
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(subcommand)]
    helper: Option<Helper>,
}

#[derive(clap::Subcommand)]
enum Helper {
    /// Write fresh random passwords for x11vnc's -passwdfile (mode 0600):
    /// x11vnc's pre_start, so every x11vnc start gets new ones.
    VncPasswords { path: PathBuf },
}

fn main() -> ExitCode {
    let args = match corral_boot::args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    corral_boot::init_logging();
    if let Some(Helper::VncPasswords { path }) = &args.helper {
        return match corral_live::rfb::write_passwords(path) {
            Ok(()) => exit::code(exit::SUCCESS),
            Err(e) => {
                eprintln!("corral-live vnc-passwords: {e}");
                exit::code(exit::FAILURE)
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("corral-live: cannot start the runtime: {e}");
            return exit::code(exit::FAILURE);
        }
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let usage = |e: String| {
        eprintln!("corral-live: {e}");
        exit::code(exit::USAGE)
    };
    let service = Service {
        program: "corral-live",
        name: "LIVE",
        listen: args.listen,
        without_token: WithoutToken::Refuse,
    };
    let mut control = match args.policy.build(&service) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    // noVNC's page opens its WebSocket from the page's own origin.
    control.origins.same_origin = true;
    // The view-only door exists when a view token is configured, and only
    // with x11vnc's view-only password behind it.
    let view_args = PolicyArgs {
        token_file: args.view_token_file.clone(),
        ..args.policy.clone()
    };
    let view_service = Service {
        name: "LIVE_VIEW",
        ..service
    };
    let view = match view_args.build(&view_service) {
        Ok(mut p) if matches!(p.auth, corral_serve::Auth::Token(_)) => {
            if args.vnc_password_file.is_none() {
                return usage(
                    "a view-only token needs --vnc-password-file (x11vnc's view-only password)"
                        .into(),
                );
            }
            p.origins.same_origin = true;
            Some(p)
        }
        Ok(_) => None,
        Err(e) if args.view_token_file.is_some() => return usage(format!("view-only: {e}")),
        Err(_) => None,
    };
    if !args.web.join("vnc.html").is_file() {
        return usage(format!(
            "--web {}: no vnc.html there (install Debian's novnc, or point --web at noVNC's files)",
            args.web.display()
        ));
    }
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("corral-live: cannot listen on {}: {e}", args.listen);
            return exit::code(exit::FAILURE);
        }
    };
    let lease_path = args
        .live_lease_file
        .unwrap_or_else(corral_serve::live_lease::default_path);
    tracing::info!(listen = %args.listen, upstream = %args.upstream, view_only = view.is_some(), lease = %lease_path.display(), "corral-live serving");
    let opts = Options {
        web: args.web,
        control,
        view,
        upstream: args.upstream,
        passwords: args.vnc_password_file,
        lease: std::sync::Arc::new(corral_live::lease::LeaseFile::new(lease_path)),
    };
    corral_live::serve(listener, opts, corral_serve::listen::stop_signal()).await;
    tracing::info!("corral-live stopped");
    exit::code(exit::SUCCESS)
}
