//! The few operating-system facts `/process/*` needs: signal names, signals
//! to a whole process group, "has this child exited yet" without reaping
//! it, and memory and CPU figures from `/proc`.

use std::io;

use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::Deserialize;

/// A signal as a client may write it: `"TERM"`, `"SIGTERM"`, `"term"`,
/// `"RTMIN+1"`, `"15"` or `15`.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum SignalSpec {
    Number(i64),
    Name(String),
}

/// The signal number, or a message saying what is accepted: the one table
/// (`corral_boot::signal`) that supervisor.toml and `corralctl signal` use.
pub fn parse_signal(spec: &SignalSpec) -> Result<i32, String> {
    match spec {
        SignalSpec::Number(n) => corral_boot::signal::Sig::from_number(*n).map(|s| s.number()),
        SignalSpec::Name(name) => corral_boot::signal::parse(name),
    }
}

/// Sends `sig` to every process in the group `pgid`.
pub fn killpg(pgid: u32, sig: i32) -> io::Result<()> {
    // A pgid of 0 or 1 would mean "our own group" / "everyone": never.
    if pgid <= 1 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: killpg has no memory-safety preconditions.
    let rc = unsafe { libc::killpg(pgid as libc::pid_t, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True once our child `pid` has exited, leaving it unreaped (`WNOWAIT`),
/// so its final CPU times can still be read from `/proc/PID/stat` before
/// tokio reaps it. Asks about this one pid only: nobody else's status is
/// consumed.
pub fn has_exited(pid: u32) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid as i32)), flags) {
        Ok(WaitStatus::StillAlive) => false,
        Ok(_) => true,
        // ECHILD: already reaped (cannot happen while we hold the Child, but
        // then it has certainly exited). EINTR: ask again on the next tick.
        Err(nix::errno::Errno::ECHILD) => true,
        Err(_) => false,
    }
}

/// Resident memory in bytes (`VmRSS`), `None` for a zombie or a gone pid.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&text)
}

/// User + system CPU time in milliseconds; still readable for a zombie.
pub fn cpu_ms(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&text).map(|ticks| ticks * 1000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// utime + stime (fields 14 and 15) in clock ticks. The command name in
/// field 2 may hold spaces and parentheses, so fields are counted from the
/// last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ")": field 3 (state) is index 0, so field 14 is index 11.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_numbers() {
        let p = |s: SignalSpec| parse_signal(&s);
        assert_eq!(p(SignalSpec::Name("TERM".into())), Ok(15));
        assert_eq!(p(SignalSpec::Name("sigkill".into())), Ok(9));
        assert_eq!(p(SignalSpec::Name("Int".into())), Ok(2));
        assert_eq!(p(SignalSpec::Name("10".into())), Ok(10));
        assert_eq!(p(SignalSpec::Number(1)), Ok(1));
        assert!(p(SignalSpec::Number(0)).is_err());
        assert!(p(SignalSpec::Number(1000)).is_err());
        assert!(p(SignalSpec::Name("BOGUS".into())).is_err());
    }

    #[test]
    fn proc_parsing() {
        let status = "Name:\tsleep\nVmPeak:\t  8000 kB\nVmRSS:\t    1234 kB\n";
        assert_eq!(parse_vmrss(status), Some(1234 * 1024));
        assert_eq!(parse_vmrss("Name:\tzombie\n"), None);
        let stat = "42 (we ird) name)) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(12));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn own_figures_are_readable() {
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0);
        assert!(cpu_ms(me).is_some());
    }

    #[test]
    fn killpg_refuses_our_group_and_init() {
        assert!(killpg(0, 0).is_err());
        assert!(killpg(1, 0).is_err());
    }
}
