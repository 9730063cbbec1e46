//! What every corral binary (`corral`, `corralctl`, `corral-cdp`,
//! `corral-snapshot`, `corral-api`, `corral-live`) shares at the process
//! level, the same way in each:
//!
//! - [`exit`]: the exit codes, named once.
//! - [`signal`]: the one table of signal names (realtime ones included).
//! - [`user`]: resolving a user and dropping to it between fork and exec.
//! - [`args`]: parse the command line; a usage error prints clap's message
//!   and exits [`exit::USAGE`], `--help`/`--version` exit 0.
//! - [`init_logging`]: log lines on stderr, human-readable by default, JSON
//!   lines with `CORRAL_LOG_FORMAT=json`, level from `CORRAL_LOG` (`error`,
//!   `warn`, `info` (default), `debug`, `trace`). stderr so they interleave
//!   sensibly with programs' prefixed output in `kubectl logs`.
//!
//! A plain level rather than `EnvFilter` directives: each binary has one
//! target, and the directive parser would be resident in every container
//! for nothing.

pub mod exit;
pub mod signal;
pub mod user;

use std::process::ExitCode;

use tracing_subscriber::filter::LevelFilter;

/// Parses the command line into `A`, or gives the exit code to end with
/// after clap has printed why (usage error: [`exit::USAGE`]; help or
/// version: [`exit::SUCCESS`]).
pub fn args<A: clap::Parser>() -> Result<A, ExitCode> {
    A::try_parse().map_err(|e| {
        let _ = e.print();
        match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                exit::code(exit::SUCCESS)
            }
            _ => exit::code(exit::USAGE),
        }
    })
}

/// The level `CORRAL_LOG` asks for (`info` when unset or not a level).
fn level(var: Option<String>) -> LevelFilter {
    var.and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO)
}

/// Sets up the log lines as the module documentation says. Reports (on
/// stderr) but does not fail if a subscriber is already installed.
pub fn init_logging() {
    let json = std::env::var("CORRAL_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_max_level(level(std::env::var("CORRAL_LOG").ok()))
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("cannot set up logging: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_default_to_info() {
        assert_eq!(level(None), LevelFilter::INFO);
        assert_eq!(level(Some("nonsense".into())), LevelFilter::INFO);
        assert_eq!(level(Some("debug".into())), LevelFilter::DEBUG);
        assert_eq!(level(Some("WARN".into())), LevelFilter::WARN);
    }
}
