//! `corral-cdp --listen 0.0.0.0:9222 --upstream 127.0.0.1:9223`: parses
//! arguments and runs the bridge until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use corral_boot::exit;
use corral_cdp::Options;
use corral_serve::args::{Service, WithoutToken};
use corral_serve::PolicyArgs;

#[derive(Parser)]
#[command(
    name = "corral-cdp",
    version,
    about = "CDP bridge in front of Chromium's loopback-only DevTools port"
)]
struct Args {
    /// Address to serve on.
    #[arg(long, default_value = "0.0.0.0:9222")]
    listen: SocketAddr,
    /// Chromium's --remote-debugging-port address.
    #[arg(long, global = true, default_value = "127.0.0.1:9223")]
    upstream: String,
    /// While Chromium is down, hold requests up to this long instead of
    /// answering 503 at once (e.g. "10s").
    #[arg(long, value_parser = humantime::parse_duration)]
    wait_ready: Option<Duration>,
    /// Let clients reach Chromium only while corral reports this program
    /// ready (e.g. "chromium", whose readiness check restores the cookie
    /// journal); 503 (or held, with --wait-ready) otherwise.
    #[arg(long, value_name = "PROGRAM")]
    ready_program: Option<String>,
    /// corral's control socket, asked by --ready-program.
    #[arg(long, default_value = corral_proto::DEFAULT_SOCKET)]
    control_socket: std::path::PathBuf,
    /// Who may connect (token, Origin, Host): docs/security.md.
    #[command(flatten)]
    policy: PolicyArgs,
    /// Open connections at most; past it the oldest idle one is closed.
    #[arg(long, default_value_t = 2048)]
    max_connections: usize,
    /// Threads relaying (1: everything on the main thread).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// WebSocket ping interval towards clients.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    ping_interval: Duration,
    #[command(subcommand)]
    helper: Option<Helper>,
}

#[derive(clap::Subcommand)]
enum Helper {
    /// Ask the browser at --upstream to close itself over CDP (Browser.close),
    /// which writes its cookies, and wait until it has: Chromium's pre_stop.
    CloseBrowser {
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

fn main() -> ExitCode {
    let args = match corral_boot::args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    init_logging();
    if let Some(Helper::CloseBrowser { timeout }) = args.helper {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        return match rt.block_on(corral_cdp::close_browser(&args.upstream, timeout)) {
            Ok(()) => exit::code(exit::SUCCESS),
            Err(e) => {
                eprintln!("corral-cdp close-browser: {e}");
                exit::code(exit::FAILURE)
            }
        };
    }
    // One thread by default: a relayed message is one read and one write,
    // and running the woken task on the thread that polled the socket (no
    // hand-over to another worker, no waking an idle one) is what keeps the
    // added latency at a byte relay's (docs/benchmarks.md).
    let built = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(args.threads))
            .enable_all()
            .build()
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("corral-cdp: cannot start the runtime: {e}");
            return exit::code(exit::FAILURE);
        }
    };
    rt.block_on(async move {
        let service = Service {
            program: "corral-cdp",
            name: "CDP",
            listen: args.listen,
            without_token: WithoutToken::LoopbackOnly,
        };
        let policy = match args.policy.build(&service) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("corral-cdp: {e}");
                return exit::code(exit::USAGE);
            }
        };
        let opts = Options {
            upstream: args.upstream,
            wait_ready: args.wait_ready,
            ready: args.ready_program.map(|program| corral_cdp::ready::ReadyCheck {
                socket: args.control_socket,
                program,
            }),
            policy,
            max_connections: args.max_connections,
            ping_interval: args.ping_interval,
        };
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("corral-cdp: cannot listen on {}: {e}", args.listen);
                return exit::code(exit::FAILURE);
            }
        };
        tracing::info!(listen = %args.listen, upstream = %opts.upstream, token = matches!(opts.policy.auth, corral_serve::Auth::Token(_)), "corral-cdp serving");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            corral_serve::listen::stop_signal().await;
            let _ = stop_tx.send(true);
        });
        corral_cdp::run(listener, opts, stop_rx).await;
        tracing::info!("corral-cdp stopped");
        exit::code(exit::SUCCESS)
    })
}

/// Text logs on stderr, JSON with CORRAL_LOG_FORMAT=json, like corral's.
fn init_logging() {
    corral_boot::init_logging();
}
