//! `corral [--config PATH] [--check]`: the PID-1 init. Parses arguments,
//! loads the config, and hands over to the library. `corral prep-profile
//! DIR` and `corral prep-x11 :N` are small helpers for `pre_start` (see
//! `prep_profile`, `prep_x11`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use corral::{config, exit_code, runtime};

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
            Ok(corral::prep_profile::Outcome::Clean) => ExitCode::SUCCESS,
            Ok(corral::prep_profile::Outcome::Cleared(files)) => {
                eprintln!("corral prep-profile: removed stale {}", files.join(", "));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("corral prep-profile: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Helper::PrepX11 { display, tmp }) = &args.helper {
        use corral::prep_x11::{prep_x11, Outcome};
        return match prep_x11(display, tmp) {
            Ok(Outcome::Clean) => ExitCode::SUCCESS,
            Ok(Outcome::Cleared(files)) => {
                let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                eprintln!("corral prep-x11: removed stale {}", names.join(", "));
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
            return ExitCode::from(exit_code::USAGE as u8);
        }
    };
    if args.check {
        // A closed stdout (`| head`) is not an error worth a panic.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}: ok", args.config.display());
        let _ = writeln!(out, "{}", config::start_order(&cfg));
        return ExitCode::SUCCESS;
    }
    corral_boot::init_logging();
    let code = runtime::run(cfg);
    ExitCode::from(code.clamp(0, 255) as u8)
}
