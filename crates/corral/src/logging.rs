//! corral's own log lines, through `tracing`: human-readable by default,
//! JSON lines with `CORRAL_LOG_FORMAT=json`, level from `CORRAL_LOG`
//! (`error`, `warn`, `info` (default), `debug`, `trace`). They go to stderr
//! so they interleave sensibly with programs' prefixed output in `kubectl logs`.
//!
//! A plain level rather than `EnvFilter` directives: PID 1 has one target,
//! and the directive parser would be resident in every container for nothing.

use tracing_subscriber::filter::LevelFilter;

pub fn init() {
    let filter = std::env::var("CORRAL_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let json = std::env::var("CORRAL_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_max_level(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("corral: cannot set up logging: {e}");
    }
}
