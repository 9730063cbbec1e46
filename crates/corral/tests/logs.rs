//! Program output: `[name]` prefixed on corral's stdout/stderr, written to
//! log_dir/NAME.log, size-rotated; a flood of output neither stalls corral
//! nor grows its memory.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

#[test]
fn output_is_prefixed_and_written_to_the_log_file() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[supervisor]
log_dir = {dir}

[programs.talker]
command = {cmd}
"#,
        dir = q(&s.p("logs")),
        cmd = tp(&["print", "hello out", "eprint", "hello err", "wait"]),
    );
    let mut c = s.start(&cfg);
    c.wait_line(Stream::Stdout, r"^\[talker\] hello out$", TIMEOUT);
    c.wait_line(Stream::Stderr, r"^\[talker\] hello err$", TIMEOUT);
    let file = s.path("logs/talker.log");
    wait_until("both lines in talker.log", TIMEOUT, || {
        let text = read(&file);
        text.contains("hello out\n") && text.contains("hello err\n")
    });
    assert!(!read(&file).contains("[talker]"), "the file has raw lines");
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

#[test]
fn log_files_rotate_by_size() {
    let s = Scratch::new();
    let mut steps: Vec<String> = Vec::new();
    for i in 0..30 {
        steps.push("print".into());
        steps.push(format!("line {i:02} {}", "x".repeat(40)));
    }
    steps.push("wait".into());
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let cfg = format!(
        r#"
[supervisor]
log_dir = {dir}
log_max_bytes = 200
log_backups = 2

[programs.chatty]
command = {cmd}
"#,
        dir = q(&s.p("logs")),
        cmd = tp(&steps),
    );
    let mut c = s.start(&cfg);
    let last = format!("line 29 {}", "x".repeat(40));
    let log = s.path("logs/chatty.log");
    wait_until("the last line in chatty.log", TIMEOUT, || {
        read(&log).contains(&last)
    });
    let file = |n: &str| s.path(&format!("logs/chatty.log{n}"));
    for n in ["", ".1", ".2"] {
        let size = std::fs::metadata(file(n)).map(|m| m.len()).unwrap_or(0);
        assert!(size > 0 && size <= 200, "chatty.log{n}: {size} bytes");
    }
    assert!(!file(".3").exists(), "only log_backups = 2 are kept");
    // Rotation keeps lines whole and in order: .2, .1, current.
    let all: Vec<String> = [".2", ".1", ""]
        .iter()
        .flat_map(|n| lines(&file(n)))
        .collect();
    assert!(all.iter().all(|l| l.len() == 48), "{all:?}");
    let nums: Vec<u32> = all.iter().map(|l| l[5..7].parse().unwrap()).collect();
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
    assert_eq!(nums.last(), Some(&29));
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
}

/// 50 MB without a newline: corral keeps supervising (another program keeps
/// restarting), stores every byte, and its memory stays small.
fn flood(read_stdout: bool) {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[supervisor]
log_dir = {dir}
log_max_bytes = "100MiB"

[programs.spammer]
command = {spam}

[programs.ticker]
command = {tick}
restart = "always"
backoff = {{ initial = "20ms", max = "20ms" }}
"#,
        dir = q(&s.p("logs")),
        spam = tp(&["spam", "50000000", "touch", &s.p("done"), "wait"]),
        tick = tp(&["exit", "0"]),
    );
    let opts = Options {
        read_stdout,
        ..Options::default()
    };
    let mut c = s.start_with(&cfg, opts);
    let mut max_rss = 0;
    wait_until(
        "the spammer to finish writing",
        Duration::from_secs(60),
        || {
            max_rss = max_rss.max(rss_kib(c.pid).unwrap_or(0));
            s.path("done").exists()
        },
    );
    // The log file gets every byte, cut into 16 KiB lines (all but the last
    // partial piece, which waits for a newline or the end of the output).
    let file = s.path("logs/spammer.log");
    const N: u64 = 50_000_000;
    const CUT: u64 = 16 * 1024;
    wait_until(
        "all full 16 KiB pieces in spammer.log",
        Duration::from_secs(60),
        || {
            max_rss = max_rss.max(rss_kib(c.pid).unwrap_or(0));
            size(&file) == N / CUT * (CUT + 1)
        },
    );
    // corral did not stall: ticker keeps being restarted.
    let ticks = c.events_of("started", Some("ticker")).len();
    c.wait_events("started", Some("ticker"), ticks + 5, TIMEOUT);
    max_rss = max_rss.max(rss_kib(c.pid).unwrap_or(0));
    assert!(
        max_rss < 30 * 1024,
        "corral's RSS reached {max_rss} KiB while flooded"
    );
    c.term();
    assert_eq!(c.wait_exit(TIMEOUT), 0);
    // (The last partial piece reaches the file only once the program's pipe
    // closes; that such output is not lost at exit is tested by
    // `last_output_of_a_critical_program_is_not_lost`.)
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn output_flood_does_not_stall_or_bloat_corral() {
    flood(true);
}

/// The same while nobody reads corral's stdout (a stalled container log
/// reader): output for the console is dropped, never queued without bound.
#[test]
fn output_flood_with_a_stalled_console() {
    flood(false);
}

/// A critical program's last words before it takes corral down reach the
/// console and its log file: corral drains the output of a program that
/// ended before it exits.
#[test]
fn last_output_of_a_critical_program_is_not_lost() {
    let s = Scratch::new();
    let cfg = format!(
        r#"
[supervisor]
log_dir = {dir}

[programs.crit]
command = {cmd}
restart = "never"
critical = true
"#,
        dir = q(&s.p("logs")),
        cmd = tp(&[
            "print",
            "starting",
            "eprint",
            "fatal: disk on fire",
            "exit",
            "3"
        ]),
    );
    let mut c = s.start(&cfg);
    assert_eq!(c.wait_exit(TIMEOUT), 3);
    c.wait_output_closed(TIMEOUT);
    let seen = |stream: Stream, text: &str| {
        c.lines()
            .iter()
            .any(|l| l.stream == stream && l.text == text)
    };
    assert!(
        seen(Stream::Stderr, "[crit] fatal: disk on fire"),
        "the last line never reached the console\n{}",
        c.dump()
    );
    assert!(seen(Stream::Stdout, "[crit] starting"));
    assert_eq!(
        lines(&s.path("logs/crit.log")),
        ["starting", "fatal: disk on fire"]
    );
}
