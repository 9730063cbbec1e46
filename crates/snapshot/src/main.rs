//! `corral-snapshot harvest|serve|journal|replay|restore`: argument parsing
//! over the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use corral_boot::exit;
use corral_serve::args::{Service, WithoutToken};
use corral_serve::PolicyArgs;
use corral_snapshot::harvest::{harvest, HarvestOptions};
use corral_snapshot::serve::{ServeOptions, Server};
use corral_snapshot::state::StorageState;

#[derive(Parser)]
#[command(
    name = "corral-snapshot",
    version,
    about = "Storage-state snapshots of a Chromium profile over CDP"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

/// What a harvest reads and where it writes: the same for `harvest` and `serve`.
#[derive(clap::Args)]
struct Source {
    /// Chromium's DevTools address (http://127.0.0.1:9223) or a ws:// browser URL.
    #[arg(long)]
    cdp: String,
    /// Where to write the storage state (atomically, mode 0600).
    #[arg(long)]
    out: PathBuf,
    /// Chromium's --user-data-dir: finds origins with no open tab. Found by
    /// itself when not given (/proc of the process on the DevTools port, or
    /// chrome://version); if it cannot be, the command fails.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Without a profile: harvest only open tabs' origins and cookie domains.
    #[arg(long, conflicts_with = "profile")]
    open_tabs_only: bool,
    /// Navigate the scratch page to each origin (the original, slower path)
    /// instead of loading same-site origins as iframes of one document.
    #[arg(long, hide = true)]
    navigate_each_origin: bool,
    /// Bound on each step (a CDP call, one origin's page load).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    step_timeout: Duration,
}

impl Source {
    fn options(&self) -> HarvestOptions {
        HarvestOptions {
            cdp: self.cdp.clone(),
            profile: self.profile.clone(),
            open_tabs_only: self.open_tabs_only,
            navigate_each: self.navigate_each_origin,
            step_timeout: self.step_timeout,
        }
    }
}

/// The cookie journal's file and the profile whose cookie store it backs.
#[derive(clap::Args)]
struct JournalArgs {
    #[arg(long)]
    cdp: String,
    /// The journal file (on the volume, beside the snapshots).
    #[arg(long = "file")]
    file: PathBuf,
    /// Chromium's --user-data-dir (its cookie store's time decides).
    #[arg(long)]
    profile: PathBuf,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    step_timeout: Duration,
}

#[derive(Subcommand)]
enum Command {
    /// Harvest once and write the file.
    Harvest {
        #[command(flatten)]
        source: Source,
    },
    /// Harvest every --interval and serve GET /api/snapshot behind a bearer token.
    Serve {
        #[arg(long, default_value = "0.0.0.0:8088")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        source: Source,
        /// Time between periodic harvests (?fresh=1 harvests at once).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Who may read snapshots (token, Origin, Host): docs/security.md.
        /// With no token, /api/snapshot answers 503.
        #[command(flatten)]
        policy: PolicyArgs,
        /// Bound on a ?fresh=1 request's wait.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        fresh_timeout: Duration,
    },
    /// Keep the cookie journal: read the cookies every --interval, write
    /// FILE (atomically) when the persistent ones changed; replay it after
    /// every Chromium restart when it is newer than the cookie store.
    Journal {
        #[command(flatten)]
        journal: JournalArgs,
        /// Time between reads of the cookies.
        #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
        interval: Duration,
    },
    /// Replay the cookie journal once, if it is newer than the cookie store
    /// (Chromium's readiness check): exit 0 when done or not needed, 1 while
    /// Chromium does not answer.
    Replay {
        #[command(flatten)]
        journal: JournalArgs,
    },
    /// Load a storage state into the running browser's persistent profile.
    Restore {
        #[arg(long)]
        cdp: String,
        /// The storageState file (as written by harvest or by Playwright).
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        step_timeout: Duration,
    },
}

fn main() -> ExitCode {
    let args = match corral_boot::args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    corral_boot::init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        match args.command {
            Command::Harvest { source } => {
                let out = &source.out;
                match harvest(&source.options()).await {
                    Ok(h) => {
                        let bytes = serde_json::to_vec_pretty(&h.state).expect("serialisable");
                        if let Err(e) = corral_snapshot::store::write_atomic(out, &bytes) {
                            eprintln!("corral-snapshot: cannot write {}: {e}", out.display());
                            return exit::code(exit::FAILURE);
                        }
                        eprintln!(
                            "corral-snapshot: {} cookies, {} origins in {} ms -> {}",
                            h.state.cookies.len(),
                            h.state.origins.len(),
                            h.elapsed.as_millis(),
                            out.display()
                        );
                        exit::code(exit::SUCCESS)
                    }
                    Err(e) => {
                        eprintln!("corral-snapshot: harvest failed: {e}");
                        exit::code(exit::FAILURE)
                    }
                }
            }
            Command::Serve { listen, source, interval, policy, fresh_timeout } => {
                let service = Service {
                    program: "corral-snapshot",
                    name: "SNAPSHOT",
                    listen,
                    without_token: WithoutToken::Unavailable,
                };
                let policy = match policy.build(&service) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("corral-snapshot: {e}");
                        return exit::code(exit::USAGE);
                    }
                };
                if matches!(policy.auth, corral_serve::Auth::Unconfigured { .. }) {
                    tracing::warn!("no token configured: /api/snapshot answers 503 until one is");
                }
                let listener = match tokio::net::TcpListener::bind(listen).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("corral-snapshot: cannot listen on {listen}: {e}");
                        return exit::code(exit::FAILURE);
                    }
                };
                let harvest_opts = source.options();
                // Without --profile, looked for at once (each harvest looks
                // too): a serve that cannot find it fails the way harvest
                // does, rather than missing origins. Chromium not answering
                // yet is no answer; meanwhile /healthz and the file on disk
                // are served.
                let no_profile = {
                    let opts = harvest_opts.clone();
                    async move {
                        match corral_snapshot::harvest::locate_profile(&opts).await {
                            Err(e @ corral_snapshot::harvest::HarvestError::NoProfile(_)) => e,
                            Err(e) => {
                                tracing::warn!("profile not found yet ({e}): each harvest looks for it");
                                std::future::pending().await
                            }
                            Ok(_) => std::future::pending().await,
                        }
                    }
                };
                let server = Server::new(ServeOptions {
                    harvest: harvest_opts,
                    out: source.out,
                    interval,
                    fresh_timeout,
                    policy,
                });
                tracing::info!(%listen, interval = %humantime::format_duration(interval), "corral-snapshot serving");
                tokio::spawn(server.clone().periodic());
                tokio::select! {
                    _ = server.serve(listener, corral_serve::listen::stop_signal()) => {
                        tracing::info!("corral-snapshot stopped");
                    }
                    e = no_profile => {
                        eprintln!("corral-snapshot: {e}");
                        return exit::code(exit::FAILURE);
                    }
                }
                exit::code(exit::SUCCESS)
            }
            Command::Journal { journal: j, interval } => {
                tracing::info!(file = %j.file.display(), interval = %humantime::format_duration(interval), "cookie journal");
                let stop = async {
                    use tokio::signal::unix::{signal, SignalKind};
                    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                        return std::future::pending().await;
                    };
                    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                };
                tokio::select! {
                    _ = corral_snapshot::journal::run(&j.cdp, &j.file, &j.profile, interval, j.step_timeout) => {}
                    _ = stop => {}
                }
                exit::code(exit::SUCCESS)
            }
            Command::Replay { journal: j } => {
                let t0 = std::time::Instant::now();
                let cdp = match corral_snapshot::cdp::Cdp::connect(&j.cdp, j.step_timeout).await {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("corral-snapshot replay: {e}");
                        return exit::code(exit::FAILURE);
                    }
                };
                match corral_snapshot::journal::replay(&cdp, &j.cdp, &j.file, &j.profile).await {
                    Ok(r) => {
                        corral_snapshot::journal::log(&r, t0.elapsed());
                        corral_snapshot::journal::record(&j.file, &r, t0.elapsed());
                        exit::code(exit::SUCCESS)
                    }
                    Err(e) => {
                        eprintln!("corral-snapshot replay: {e}");
                        exit::code(exit::FAILURE)
                    }
                }
            }
            Command::Restore { cdp, input, step_timeout } => {
                let text = match std::fs::read_to_string(&input) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("corral-snapshot: cannot read {}: {e}", input.display());
                        return exit::code(exit::USAGE);
                    }
                };
                let state = match StorageState::parse(&text) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("corral-snapshot: {}: {e}; nothing was restored", input.display());
                        return exit::code(exit::USAGE);
                    }
                };
                match corral_snapshot::restore::restore(&cdp, &state, step_timeout).await {
                    Ok(r) if r.failed.is_empty() => {
                        eprintln!("corral-snapshot: restored {} cookies and {} origins", r.cookies, r.origins);
                        exit::code(exit::SUCCESS)
                    }
                    Ok(r) => {
                        for (origin, why) in &r.failed {
                            eprintln!("corral-snapshot: {origin}: {why}");
                        }
                        eprintln!("corral-snapshot: restored {} cookies and {} origins; {} origins failed", r.cookies, r.origins, r.failed.len());
                        exit::code(exit::FAILURE)
                    }
                    Err(e) => {
                        eprintln!("corral-snapshot: restore failed: {e}");
                        exit::code(exit::FAILURE)
                    }
                }
            }
        }
    })
}
