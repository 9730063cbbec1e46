//! Turning corral's answers into text for people: the status table, one
//! line per program for start/stop/restart, the reload summary. Pure
//! functions from protocol types to strings, so the layout is unit-tested.

use std::fmt::Write as _;
use std::time::Duration;

use corral_proto::{ProgramStatus, State};

/// `3m12s`, `2h5m`, `1d3h`, `45s`: the two largest units, like `docker ps`
/// uptimes, short enough for a column and exact enough to spot a restart.
pub fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{mins}m")
    } else if mins > 0 {
        format!("{mins}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// The reason worth showing: why a program is not running. A RUNNING
/// program's last failure is history, so it is left out.
fn reason(p: &ProgramStatus) -> Option<&str> {
    match p.state {
        State::Running => None,
        _ => p.reason.as_deref().filter(|r| !r.is_empty()),
    }
}

/// The `status` table, header included, each line newline-terminated.
pub fn status_table(programs: &[ProgramStatus]) -> String {
    let rows: Vec<[String; 6]> = programs
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.state.to_string(),
                p.pid.map_or_else(|| "-".into(), |pid| pid.to_string()),
                p.uptime_ms
                    .map_or_else(|| "-".into(), |ms| humanize(Duration::from_millis(ms))),
                p.restarts.to_string(),
                reason(p).unwrap_or_default().to_owned(),
            ]
        })
        .collect();
    let header = ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "REASON"].map(String::from);
    // The reason column (and its header) only when some row has one.
    let columns = if rows.iter().any(|r| !r[5].is_empty()) {
        6
    } else {
        5
    };
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().take(columns).enumerate() {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        // A blank last cell would leave padding at the end of the line.
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Which state-changing verb an answer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Start,
    Stop,
    Restart,
}

/// One line per program of a `done` answer, like supervisorctl:
/// `xvfb: started`, or the state when it is not the one asked for
/// (`chromium: BACKOFF (exited: exit status 1)`), which is what `--no-wait`
/// usually shows.
pub fn done_line(change: Change, p: &ProgramStatus) -> String {
    let reached = match change {
        Change::Start | Change::Restart => p.ready,
        // Down and staying down; EXITED/DONE/FATAL are down too, but a stop
        // leaves a program STOPPED, so anything else is worth showing.
        Change::Stop => p.state == State::Stopped,
    };
    if reached {
        let word = match change {
            Change::Start => "started",
            Change::Stop => "stopped",
            Change::Restart => "restarted",
        };
        return format!("{}: {word}", p.name);
    }
    match reason(p) {
        Some(r) => format!("{}: {} ({r})", p.name, p.state),
        None => format!("{}: {}", p.name, p.state),
    }
}

/// `reload`'s answer: one line per kind of change that happened.
pub fn reload_summary(added: &[String], removed: &[String], changed: &[String]) -> String {
    let mut out = String::new();
    for (what, names) in [("added", added), ("removed", removed), ("changed", changed)] {
        if !names.is_empty() {
            let _ = writeln!(out, "{what}: {}", names.join(", "));
        }
    }
    if out.is_empty() {
        out.push_str("no changes\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(name: &str, state: State) -> ProgramStatus {
        let running = state == State::Running;
        ProgramStatus {
            name: name.into(),
            state,
            pid: running.then_some(42),
            uptime_ms: running.then_some(192_000),
            start_time_unix: None,
            restarts: 0,
            ready: running,
            critical: false,
            autostart: true,
            reason: None,
        }
    }

    #[test]
    fn durations_read_like_uptimes() {
        let d = |s| humanize(Duration::from_secs(s));
        assert_eq!(humanize(Duration::from_millis(999)), "0s");
        assert_eq!(d(45), "45s");
        assert_eq!(d(192), "3m12s");
        assert_eq!(d(180), "3m0s");
        assert_eq!(d(2 * 3600 + 5 * 60 + 7), "2h5m");
        assert_eq!(d(86_400 + 3 * 3600 + 59), "1d3h");
        assert_eq!(d(400 * 86_400), "400d0h");
    }

    #[test]
    fn table_aligns_and_shows_reasons_for_the_not_running() {
        let mut chromium = program("chromium", State::Backoff);
        chromium.restarts = 3;
        chromium.reason = Some("exited: exit status 1".into());
        let mut xvfb = program("xvfb", State::Running);
        xvfb.reason = Some("old news".into());
        let table = status_table(&[xvfb, chromium, program("websockify", State::Stopped)]);
        assert_eq!(
            table,
            "NAME        STATE    PID  UPTIME  RESTARTS  REASON\n\
             xvfb        RUNNING  42   3m12s   0\n\
             chromium    BACKOFF  -    -       3         exited: exit status 1\n\
             websockify  STOPPED  -    -       0\n"
        );
    }

    #[test]
    fn table_without_reasons_has_no_reason_column() {
        let table = status_table(&[program("xvfb", State::Running)]);
        assert_eq!(
            table,
            "NAME  STATE    PID  UPTIME  RESTARTS\nxvfb  RUNNING  42   3m12s   0\n"
        );
        assert_eq!(status_table(&[]), "NAME  STATE  PID  UPTIME  RESTARTS\n");
    }

    #[test]
    fn done_lines_say_what_happened() {
        let up = program("xvfb", State::Running);
        assert_eq!(done_line(Change::Start, &up), "xvfb: started");
        assert_eq!(done_line(Change::Restart, &up), "xvfb: restarted");
        let down = program("xvfb", State::Stopped);
        assert_eq!(done_line(Change::Stop, &down), "xvfb: stopped");
        let mut oneshot = program("prep", State::Done);
        oneshot.ready = true;
        assert_eq!(done_line(Change::Start, &oneshot), "prep: started");
        let mut failing = program("chromium", State::Backoff);
        failing.reason = Some("exited: exit status 1".into());
        assert_eq!(
            done_line(Change::Start, &failing),
            "chromium: BACKOFF (exited: exit status 1)"
        );
        assert_eq!(
            done_line(Change::Start, &program("x", State::Starting)),
            "x: STARTING"
        );
    }

    #[test]
    fn reload_lists_each_kind() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            reload_summary(&s(&["a", "b"]), &[], &s(&["c"])),
            "added: a, b\nchanged: c\n"
        );
        assert_eq!(reload_summary(&[], &[], &[]), "no changes\n");
    }
}
