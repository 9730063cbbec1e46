//! corral's own log lines, through `tracing`: human-readable by default,
//! JSON lines with `CORRAL_LOG_FORMAT=json`, level from `CORRAL_LOG`
//! (an `EnvFilter` directive, default `info`). They go to stderr so they
//! interleave sensibly with programs' prefixed output in `kubectl logs`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("CORRAL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("CORRAL_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    if let Err(e) = result {
        eprintln!("corral: cannot set up logging: {e}");
    }
}
