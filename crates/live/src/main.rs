//! `corral-live --listen 0.0.0.0:6080 --web /usr/share/novnc --upstream
//! 127.0.0.1:5900`: parses arguments, builds the request policy (a token is
//! always required for the screen) and serves until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
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
    /// A view-only VNC server (x11vnc -viewonly), for the view token.
    #[arg(long)]
    view_upstream: Option<String>,
    /// File holding the view-only token (created if missing; else
    /// CORRAL_LIVE_VIEW_TOKEN or CORRAL_LIVE_VIEW_TOKEN_FILE). Needs
    /// --view-upstream.
    #[arg(long, value_name = "PATH", requires = "view_upstream")]
    view_token_file: Option<PathBuf>,
    /// Who may watch and type (token, Origin, Host): docs/security.md.
    #[command(flatten)]
    policy: PolicyArgs,
}

fn main() -> ExitCode {
    let args = match corral_boot::args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    corral_boot::init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("corral-live: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let usage = |e: String| {
        eprintln!("corral-live: {e}");
        ExitCode::from(corral_boot::USAGE)
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
    let view = match &args.view_upstream {
        None => None,
        Some(upstream) => {
            let view_args = PolicyArgs {
                token_file: args.view_token_file.clone(),
                ..args.policy.clone()
            };
            let view_service = Service {
                name: "LIVE_VIEW",
                ..service
            };
            match view_args.build(&view_service) {
                Ok(mut p) => {
                    p.origins.same_origin = true;
                    Some((p, upstream.clone()))
                }
                Err(e) => return usage(format!("view-only: {e}")),
            }
        }
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
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %args.listen, upstream = %args.upstream, view_only = view.is_some(), "corral-live serving");
    let opts = Options {
        web: args.web,
        control: (control, args.upstream),
        view,
    };
    corral_live::serve(listener, opts, corral_serve::listen::stop_signal()).await;
    tracing::info!("corral-live stopped");
    ExitCode::SUCCESS
}
