//! The command line: clap definitions and their translation into protocol
//! requests. Nothing here does I/O, so every mapping is a unit test.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use corral_proto::{Request, Targets, Wait, DEFAULT_SOCKET};

/// How long to wait for corral to accept us, and for the answer to a verb
/// that does not wait for programs. Long enough for a busy supervisor, short
/// enough that a stuck one is reported rather than hung on.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Added to a waiting verb's `--timeout` before we stop reading: corral
/// answers `timeout` itself when its wait runs out, and we want to hear that
/// answer rather than give up a moment before it arrives.
pub const WAIT_MARGIN: Duration = Duration::from_secs(5);

/// supervisorctl-like control of corral over its control socket.
#[derive(Debug, Parser)]
#[command(name = "corralctl", version, about, max_term_width = 100)]
pub struct Cli {
    /// Control socket of the corral to talk to.
    #[arg(
        long,
        global = true,
        env = "CORRAL_SOCKET",
        default_value = DEFAULT_SOCKET,
        value_name = "PATH"
    )]
    pub socket: PathBuf,

    /// Print corral's answers as JSON (status: an array of programs).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Show programs: NAME STATE PID UPTIME RESTARTS, and why when not running.
    Status {
        /// Programs to show (default: all).
        names: Vec<String>,
    },
    /// Start programs (and what they need); wait until ready.
    Start(Change),
    /// Stop programs (their dependents first); wait until down.
    Stop(Change),
    /// Stop then start programs (with their binds_to dependents); wait until ready.
    Restart(Change),
    /// Send a signal to each program's process group.
    Signal {
        /// Signal name or number: HUP, SIGHUP, 1, RTMIN+2.
        #[arg(value_parser = parse_signal)]
        signal: String,
        /// Programs to signal, or `all` (every running program).
        #[arg(required = true, value_name = "NAME|all")]
        names: Vec<String>,
    },
    /// Print a program's main pid.
    Pid { name: String },
    /// Print the last lines of a program's output, and follow it with -f.
    Tail {
        /// Keep printing new lines until Ctrl-C or corral closes.
        #[arg(short, long)]
        follow: bool,
        /// How many past lines to print first.
        #[arg(short = 'n', long = "lines", default_value_t = 20, value_name = "N")]
        lines: usize,
        name: String,
    },
    /// Exit 0 iff every critical program is ready (a kubelet exec probe).
    Health {
        /// Give up (exit 3) if corral has not answered within this long.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Re-read the config; start, stop or restart only what changed.
    Reload {
        /// How long to wait for corral's answer.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Shut everything down gracefully; wait until corral has exited.
    Shutdown {
        /// How long to wait for corral to exit.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

/// Options shared by start, stop and restart.
#[derive(Debug, Args)]
pub struct Change {
    /// Programs, or `all`.
    #[arg(required = true, value_name = "NAME|all")]
    pub names: Vec<String>,
    /// Return once corral has taken the request, without waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this long (the action itself goes on).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// `all`, or program names (not both).
fn targets(names: &[String]) -> Result<Targets, String> {
    if names.iter().any(|n| n == "all") {
        if names.len() > 1 {
            return Err("`all` cannot be combined with program names".into());
        }
        return Ok(Targets::All);
    }
    Ok(Targets::Names(names.to_vec()))
}

impl Change {
    fn targets(&self) -> Result<Targets, String> {
        targets(&self.names)
    }

    fn wait(&self) -> Wait {
        Wait {
            wait: !self.no_wait,
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// How long to read before deciding corral is stuck.
    fn reply_timeout(&self) -> Duration {
        if self.no_wait {
            REPLY_TIMEOUT
        } else {
            self.timeout.saturating_add(WAIT_MARGIN)
        }
    }
}

impl Verb {
    /// The request this verb sends; an error is a usage error (exit 2).
    pub fn request(&self) -> Result<Request, String> {
        Ok(match self {
            Verb::Status { names } => Request::Status {
                names: names.clone(),
            },
            Verb::Start(c) => Request::Start {
                targets: c.targets()?,
                wait: c.wait(),
            },
            Verb::Stop(c) => Request::Stop {
                targets: c.targets()?,
                wait: c.wait(),
            },
            Verb::Restart(c) => Request::Restart {
                targets: c.targets()?,
                wait: c.wait(),
            },
            Verb::Signal { signal, names } => Request::Signal {
                signal: signal.clone(),
                targets: targets(names)?,
            },
            Verb::Pid { name } => Request::Pid { name: name.clone() },
            Verb::Tail {
                follow,
                lines,
                name,
            } => Request::Tail {
                name: name.clone(),
                lines: *lines,
                follow: *follow,
            },
            Verb::Health { .. } => Request::Health,
            Verb::Reload { .. } => Request::Reload,
            Verb::Shutdown { .. } => Request::Shutdown,
        })
    }

    /// How long to wait for the (first) answer; `None` is forever.
    pub fn reply_timeout(&self) -> Option<Duration> {
        match self {
            Verb::Start(c) | Verb::Stop(c) | Verb::Restart(c) => Some(c.reply_timeout()),
            Verb::Tail { follow: true, .. } => None,
            Verb::Health { timeout } | Verb::Reload { timeout } => Some(*timeout),
            // shutdown's --timeout bounds the wait for corral to exit, which
            // comes after the first answer.
            _ => Some(REPLY_TIMEOUT),
        }
    }

    /// How long to wait for the connection to be accepted.
    pub fn connect_timeout(&self) -> Duration {
        match self {
            // A probe's whole budget is its --timeout.
            Verb::Health { timeout } => *timeout,
            _ => REPLY_TIMEOUT,
        }
    }
}

/// Checks a signal against the one table (`corral_boot::signal`, the
/// same corral applies) and upper-cases it; corral decides what it means.
/// Catching `corralctl signal HUB x` here gives a usage error naming the
/// mistake instead of a round trip.
pub fn parse_signal(s: &str) -> Result<String, String> {
    corral_boot::signal::parse(s)?;
    Ok(s.trim().to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("corralctl").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn request(args: &[&str]) -> Request {
        parse(args).verb.request().unwrap()
    }

    #[test]
    fn status_with_and_without_names() {
        assert_eq!(request(&["status"]), Request::Status { names: vec![] });
        assert_eq!(
            request(&["status", "xvfb", "chromium"]),
            Request::Status {
                names: vec!["xvfb".into(), "chromium".into()]
            }
        );
    }

    #[test]
    fn all_is_the_all_target() {
        assert_eq!(
            request(&["start", "all"]),
            Request::Start {
                targets: Targets::All,
                wait: Wait::default()
            }
        );
        let err = parse(&["stop", "all", "xvfb"]).verb.request().unwrap_err();
        assert!(err.contains("`all` cannot be combined"));
    }

    #[test]
    fn wait_options_reach_the_request_and_the_read_timeout() {
        let cli = parse(&["restart", "--no-wait", "--timeout", "90s", "chromium"]);
        assert_eq!(
            cli.verb.request().unwrap(),
            Request::Restart {
                targets: Targets::Names(vec!["chromium".into()]),
                wait: Wait {
                    wait: false,
                    timeout_ms: 90_000
                }
            }
        );
        assert_eq!(cli.verb.reply_timeout(), Some(REPLY_TIMEOUT));
        let cli = parse(&["stop", "--timeout", "2m", "xvfb"]);
        assert_eq!(
            cli.verb.reply_timeout(),
            Some(Duration::from_secs(120) + WAIT_MARGIN)
        );
    }

    #[test]
    fn tail_defaults_and_follow() {
        assert_eq!(
            request(&["tail", "xvfb"]),
            Request::Tail {
                name: "xvfb".into(),
                lines: 20,
                follow: false
            }
        );
        let cli = parse(&["tail", "-f", "-n", "5", "chromium"]);
        assert_eq!(
            cli.verb.request().unwrap(),
            Request::Tail {
                name: "chromium".into(),
                lines: 5,
                follow: true
            }
        );
        assert_eq!(cli.verb.reply_timeout(), None);
    }

    #[test]
    fn other_verbs() {
        assert_eq!(request(&["pid", "x"]), Request::Pid { name: "x".into() });
        assert_eq!(request(&["health"]), Request::Health);
        assert_eq!(request(&["reload"]), Request::Reload);
        assert_eq!(request(&["shutdown"]), Request::Shutdown);
        assert_eq!(
            request(&["signal", "hup", "chromium"]),
            Request::Signal {
                signal: "HUP".into(),
                targets: Targets::Names(vec!["chromium".into()])
            }
        );
        let health = parse(&["health", "--timeout", "300ms"]).verb;
        assert_eq!(health.connect_timeout(), Duration::from_millis(300));
        assert_eq!(health.reply_timeout(), Some(Duration::from_millis(300)));
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = parse(&["status", "--json", "--socket", "/tmp/c.sock"]);
        assert!(cli.json);
        assert_eq!(cli.socket, PathBuf::from("/tmp/c.sock"));
    }

    #[test]
    fn usage_errors_are_clap_errors() {
        for args in [
            &["start"][..],
            &["signal", "HUP"],
            &["signal", "HUB", "x"],
            &["stop", "--timeout", "soon", "x"],
            &["frobnicate"],
            &[],
        ] {
            let argv = std::iter::once("corralctl").chain(args.iter().copied());
            let err = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(err.exit_code(), crate::exit::USAGE, "{args:?}");
        }
    }

    #[test]
    fn signal_spellings() {
        for ok in [
            "HUP",
            "SIGHUP",
            "sigterm",
            "9",
            "64",
            "RTMIN",
            "SIGRTMIN+3",
            "RTMAX-1",
        ] {
            assert!(parse_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["", "0", "65", "HUB", "SIG", "RTMIN+", "RTMIN-2", "-9"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_signal("sigusr1").unwrap(), "SIGUSR1");
    }
}
