//! `corral [--config PATH] [--check]`: the PID-1 init. Parses arguments,
//! loads the config, and hands over to the library. `corral prep-profile
//! DIR` and `corral prep-x11 :N` are small helpers for `pre_start` (see
//! `prep_profile`, `prep_x11`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use corral::{config, runtime};
use corral_boot::exit;

#[derive(Parser)]
#[command(
    name = "corral",
    version,
    about = "PID-1 init and supervisor for a headed-Chromium container"
)]
struct Args {
    /// Path of supervisor.toml.
    #[arg(long, short = 'c', env = "CORRAL_CONFIG", default_value = config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Validate the config, print the start order, and exit.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    helper: Option<Helper>,
}

#[derive(clap::Subcommand)]
enum Helper {
    /// Clear a Chromium profile's stale Singleton locks (for pre_start); fails,
    /// touching nothing, if a running Chromium holds the profile.
    PrepProfile {
        /// Chromium's --user-data-dir.
        dir: PathBuf,
    },
    /// Clear an X display's stale lock and socket (for Xvfb's pre_start);
    /// fails, touching nothing, if an X server answers on that display.
    PrepX11 {
        /// The display, `:99`.
        display: String,
        /// Where the X server keeps its lock and socket directory.
        #[arg(long, default_value = "/tmp", hide = true)]
        tmp: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = match corral_boot::args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Some(Helper::PrepProfile { dir }) = &args.helper {
        return match corral::prep_profile::prep_profile(dir) {
            Ok(corral::prep_profile::Outcome::Clean) => exit::code(exit::SUCCESS),
            Ok(corral::prep_profile::Outcome::Cleared(files)) => {
                eprintln!("corral prep-profile: removed stale {}", files.join(", "));
                exit::code(exit::SUCCESS)
            }
            Err(e) => {
                eprintln!("corral prep-profile: {e}");
                exit::code(exit::FAILURE)
            }
        };
    }
    if let Some(Helper::PrepX11 { display, tmp }) = &args.helper {
        use corral::prep_x11::{prep_x11, Outcome};
        match prep_x11(display, tmp) {
            Ok(Outcome::Clean) => {}
            Ok(Outcome::Cleared(files)) => {
                let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                eprintln!("corral prep-x11: removed stale {}", names.join(", "));
            }
            Err(e) => {
                eprintln!("corral prep-x11: {e}");
                return ExitCode::FAILURE;
            }
        }
        // The display is free: what its killed clients left in shared
        // memory can go too (prep_shm).
        return match corral::prep_shm::clear_orphans(std::path::Path::new("/proc/sysvipc/shm")) {
            Ok(gone) if gone.is_empty() => ExitCode::SUCCESS,
            Ok(gone) => {
                let bytes: u64 = gone.iter().map(|s| s.size).sum();
                eprintln!(
                    "corral prep-x11: removed {} orphaned shared-memory segments ({:.1} MiB) of killed X clients",
                    gone.len(),
                    bytes as f64 / (1024.0 * 1024.0)
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("corral prep-x11: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cfg = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corral: {e}");
            return exit::code(exit::USAGE);
        }
    };
    if args.check {
        // A closed stdout (`| head`) is not an error worth a panic.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}: ok", args.config.display());
        let _ = writeln!(out, "{}", config::start_order(&cfg));
        return exit::code(exit::SUCCESS);
    }
    corral_boot::init_logging();
    // 0 after a clean shutdown, else the critical program's code (or
    // `exit::signaled`), or `exit::FAILURE` if corral itself could not run.
    exit::code(runtime::run(cfg))
}
