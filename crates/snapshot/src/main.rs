//! `corral-snapshot harvest|serve|restore`: argument parsing over the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use corral_snapshot::harvest::{harvest, HarvestOptions};

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

#[derive(Subcommand)]
enum Command {
    /// Harvest once and write the file.
    Harvest {
        /// Chromium's DevTools address (http://127.0.0.1:9223) or a ws:// browser URL.
        #[arg(long)]
        cdp: String,
        /// Where to write the storage state (atomically, mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// Chromium's --user-data-dir: finds origins with no open tab.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Bound on each step (a CDP call, one origin's page load).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        step_timeout: Duration,
    },
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let json = std::env::var("CORRAL_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        match args.command {
            Command::Harvest {
                cdp,
                out,
                profile,
                step_timeout,
            } => {
                let opts = HarvestOptions {
                    cdp,
                    profile,
                    step_timeout,
                };
                match harvest(&opts).await {
                    Ok(h) => {
                        let bytes = serde_json::to_vec_pretty(&h.state).expect("serialisable");
                        if let Err(e) = corral_snapshot::store::write_atomic(&out, &bytes) {
                            eprintln!("corral-snapshot: cannot write {}: {e}", out.display());
                            return ExitCode::FAILURE;
                        }
                        eprintln!(
                            "corral-snapshot: {} cookies, {} origins in {} ms -> {}",
                            h.state.cookies.len(),
                            h.state.origins.len(),
                            h.elapsed.as_millis(),
                            out.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("corral-snapshot: harvest failed: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    })
}
