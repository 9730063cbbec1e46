//! The one table of signal names, for everything that reads a signal from a
//! person: `stop_signal` in supervisor.toml, `corralctl signal`, corral's
//! signal request and corral-api's `/process/{id}/kill`. They accept and
//! refuse the same inputs because they all call [`parse`].
//!
//! Accepted: a name with or without `SIG`, in any case (`TERM`, `SIGTERM`,
//! `term`); the realtime signals as `RTMIN`, `RTMIN+n`, `RTMAX`, `RTMAX-n`
//! (n up to the realtime range, `SIGRTMIN+1`); a number 1..=31 or in the
//! realtime range (34..=64 with glibc). Refused: 0 (the "does it exist"
//! probe is not a signal to send), numbers past `SIGRTMAX`, 32 and 33 (the
//! C library's own, below `SIGRTMIN`), unknown names. Surrounding spaces are
//! ignored.

/// Standard signals by name, without `SIG`; aliases (`IOT`, `POLL`) after
/// the name [`name`] gives.
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The first realtime signal a program may use (glibc keeps two below it).
pub fn rtmin() -> i32 {
    libc::SIGRTMIN()
}

/// The last signal.
pub fn rtmax() -> i32 {
    libc::SIGRTMAX()
}

/// Whether `n` is a signal [`parse`] accepts as a number.
pub fn is_valid(n: i32) -> bool {
    (1..32).contains(&n) || (rtmin()..=rtmax()).contains(&n)
}

/// The signal number of `s`, or a one-line message saying what is accepted.
pub fn parse(s: &str) -> Result<i32, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return match t.parse::<i32>() {
            Ok(n) if is_valid(n) => Ok(n),
            _ => Err(format!(
                "unknown signal number {t} (1-31 or {}-{})",
                rtmin(),
                rtmax()
            )),
        };
    }
    let upper = t.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let known = NAMES
        .iter()
        .find(|(n, _)| *n == bare)
        .map(|(_, v)| *v)
        .or_else(|| realtime(bare));
    known.ok_or_else(|| {
        format!(
            "unknown signal {s:?} (use a name like TERM, SIGHUP or RTMIN+1, or a number such as 15)"
        )
    })
}

/// `RTMIN`, `RTMIN+n`, `RTMAX`, `RTMAX-n` within the realtime range.
fn realtime(bare: &str) -> Option<i32> {
    let offset = |rest: &str, sign: char| -> Option<i32> {
        if rest.is_empty() {
            return Some(0);
        }
        let digits = rest.strip_prefix(sign)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i32>().ok()
    };
    let span = rtmax() - rtmin();
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        offset(rest, '+')
            .filter(|n| *n <= span)
            .map(|n| rtmin() + n)
    } else if let Some(rest) = bare.strip_prefix("RTMAX") {
        offset(rest, '-')
            .filter(|n| *n <= span)
            .map(|n| rtmax() - n)
    } else {
        None
    }
}

/// The name of signal `n` as `kill -l` writes it with `SIG`: `SIGTERM`,
/// `SIGRTMIN+1`, `SIGRTMAX-2`; a number without a name as `signal N`.
pub fn name(n: i32) -> String {
    if let Some((name, _)) = NAMES.iter().find(|(_, v)| *v == n) {
        return format!("SIG{name}");
    }
    let (min, max) = (rtmin(), rtmax());
    if !(min..=max).contains(&n) {
        return format!("signal {n}");
    }
    // Counted from the nearer end, as strsignal and `kill -l` do.
    let from_min = n - min;
    match (from_min, max - n) {
        (0, _) => "SIGRTMIN".into(),
        (_, 0) => "SIGRTMAX".into(),
        (up, down) if up <= down => format!("SIGRTMIN+{up}"),
        (_, down) => format!("SIGRTMAX-{down}"),
    }
}

/// A signal number that [`parse`] accepted; shows as its [`name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sig(i32);

impl Sig {
    pub const HUP: Sig = Sig(libc::SIGHUP);
    pub const INT: Sig = Sig(libc::SIGINT);
    pub const KILL: Sig = Sig(libc::SIGKILL);
    pub const TERM: Sig = Sig(libc::SIGTERM);

    /// The signal `s` names (see [`parse`]).
    pub fn parse(s: &str) -> Result<Sig, String> {
        parse(s).map(Sig)
    }

    /// The signal numbered `n`, if [`parse`] would accept it.
    pub fn from_number(n: i64) -> Result<Sig, String> {
        match i32::try_from(n) {
            Ok(n) if is_valid(n) => Ok(Sig(n)),
            _ => Err(format!(
                "unknown signal number {n} (1-31 or {}-{})",
                rtmin(),
                rtmax()
            )),
        }
    }

    pub fn number(self) -> i32 {
        self.0
    }
}

impl std::fmt::Display for Sig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&name(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        for s in ["TERM", "SIGTERM", "term", "sigterm", "15", " TERM "] {
            assert_eq!(parse(s), Ok(15), "{s}");
        }
        assert_eq!(parse("hup"), Ok(1));
        assert_eq!(parse("IOT"), Ok(6));
        assert_eq!(parse("RTMIN"), Ok(rtmin()));
        assert_eq!(parse("sigrtmin+1"), Ok(rtmin() + 1));
        assert_eq!(parse("SIGRTMAX-2"), Ok(rtmax() - 2));
        assert_eq!(parse("RTMAX"), Ok(rtmax()));
        assert_eq!(parse("64"), Ok(64));
        for bad in [
            "", "0", "32", "33", "65", "-9", "+9", "HUB", "SIG", "RTMIN+", "RTMIN-2", "RTMAX+1",
            "RTMIN+31", "RTMIN+ 1", "1.5",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_number_names_itself() {
        for n in (1..32).chain(rtmin()..=rtmax()) {
            assert_eq!(parse(&name(n)), Ok(n), "{}", name(n));
        }
        assert_eq!(name(15), "SIGTERM");
        assert_eq!(name(6), "SIGABRT");
        assert_eq!(name(rtmin() + 1), "SIGRTMIN+1");
        assert_eq!(name(rtmax() - 2), "SIGRTMAX-2");
        assert_eq!(name(0), "signal 0");
        assert_eq!(Sig::TERM.to_string(), "SIGTERM");
        assert!(Sig::from_number(0).is_err() && Sig::from_number(i64::MAX).is_err());
    }
}
