//! One table of signal names: supervisor.toml's `stop_signal`, `corralctl
//! signal` and corral-api's `/process/{id}/kill` accept and refuse the same
//! inputs, realtime signals included (they all end in
//! `corral_boot::signal`; this holds them to it).

use std::collections::BTreeMap;
use std::path::Path;

use corral_api::procs::{parse_signal as api_parse, SignalSpec};

/// What supervisor.toml makes of `stop_signal = <value>` (a TOML string or
/// integer, written as given).
fn config(value: &str) -> Result<i32, String> {
    let text = format!("[programs.p]\ncommand = [\"true\"]\nstop_signal = {value}\n");
    corral::config::load_str(Path::new("t.toml"), &text, &BTreeMap::new())
        .map(|c| c.programs["p"].stop_signal.number())
        .map_err(|e| e.to_string())
}

/// The signal corral runs a `corralctl signal` request with, if corralctl
/// lets it through at all.
fn corralctl(s: &str) -> Result<i32, String> {
    let sent = corralctl::cli::parse_signal(s)?;
    corral::config::parse_signal(&sent).map(|s| s.number())
}

#[test]
fn the_same_names_get_the_same_verdicts_everywhere() {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let cases: &[(&str, Option<i32>)] = &[
        ("TERM", Some(15)),
        ("SIGTERM", Some(15)),
        ("term", Some(15)),
        ("sigkill", Some(9)),
        ("hup", Some(1)),
        ("USR1", Some(libc::SIGUSR1)),
        ("15", Some(15)),
        ("1", Some(1)),
        ("31", Some(31)),
        ("RTMIN", Some(min)),
        ("rtmin", Some(min)),
        ("RTMIN+1", Some(min + 1)),
        ("SIGRTMIN+1", Some(min + 1)),
        ("SIGRTMAX-2", Some(max - 2)),
        ("RTMAX", Some(max)),
        ("64", Some(64)),
        ("0", None),
        ("32", None),
        ("65", None),
        ("999999999999", None),
        ("-9", None),
        ("HUB", None),
        ("TERMINATE", None),
        ("SIG", None),
        ("", None),
        ("RTMIN+", None),
        ("RTMIN-2", None),
        ("RTMAX+1", None),
        ("RTMIN+99", None),
    ];
    for (input, want) in cases {
        let from_config = config(&format!("{input:?}")).ok();
        let from_ctl = corralctl(input).ok();
        let from_api = api_parse(&SignalSpec::Name(input.to_string())).ok();
        assert_eq!(
            (from_config, from_ctl, from_api),
            (*want, *want, *want),
            "{input:?}: (config, corralctl, corral-api)"
        );
        // Numbers also come as numbers: a TOML integer, a JSON number.
        if let Ok(n) = input.parse::<i64>() {
            assert_eq!(config(input).ok(), *want, "{input} as a TOML integer");
            assert_eq!(
                api_parse(&SignalSpec::Number(n)).ok(),
                *want,
                "{input} as a JSON number"
            );
        }
    }
}
