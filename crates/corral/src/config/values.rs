//! Parsers for the scalar value syntaxes of `supervisor.toml`.
//!
//! Each takes the already-expanded string and returns the value or a one-line
//! message saying what was expected; the caller attaches file:line:col and the
//! key. Kept free of TOML types so they are trivial to test.

use std::net::SocketAddr;
use std::time::Duration;

use corral_boot::signal::Sig;

use super::{RestartPolicy, RlimitResource};

/// `"10s"`, `"500ms"`, `"1m30s"` (humantime syntax).
pub(super) fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        // humantime says e.g. "expected number at 0"; the byte offset only confuses.
        let e = e.to_string();
        let e = match e.rsplit_once(" at ") {
            Some((head, pos)) if pos.bytes().all(|b| b.is_ascii_digit()) => head.to_string(),
            _ => e,
        };
        format!("invalid duration {s:?}: {e} (examples: \"10s\", \"500ms\", \"1m30s\")")
    })
}

/// A signal as a string: `"TERM"`, `"SIGTERM"`, `"term"`, `"15"`,
/// `"RTMIN+1"` (the one table: `corral_boot::signal`).
pub(super) fn signal(s: &str) -> Result<Sig, String> {
    Sig::parse(s)
}

/// A signal given as a TOML integer.
pub(super) fn signal_number(n: i64) -> Result<Sig, String> {
    Sig::from_number(n)
}

/// `always | on-failure | never`.
pub(super) fn restart(s: &str) -> Result<RestartPolicy, String> {
    match s {
        "always" => Ok(RestartPolicy::Always),
        "on-failure" => Ok(RestartPolicy::OnFailure),
        "never" => Ok(RestartPolicy::Never),
        _ => Err(format!(
            "invalid restart policy {s:?} (expected \"always\", \"on-failure\" or \"never\")"
        )),
    }
}

/// `group | mixed`.
pub(super) fn kill_mode(s: &str) -> Result<super::KillMode, String> {
    match s {
        "group" => Ok(super::KillMode::Group),
        "mixed" => Ok(super::KillMode::Mixed),
        _ => Err(format!(
            "invalid kill_mode {s:?} (expected \"group\" or \"mixed\")"
        )),
    }
}

/// `"0.0.0.0:9100"`, `"[::]:9100"`.
pub(super) fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("invalid socket address {s:?} (expected IP:PORT such as \"0.0.0.0:9100\")")
    })
}

/// A byte size: `"10MiB"`, `"10MB"`, `"512KiB"`, `"4096"`. SI units are powers of
/// 1000 and IEC units powers of 1024, as their names say; unit case is ignored.
pub(super) fn size(s: &str) -> Result<u64, String> {
    let err = || format!("invalid size {s:?} (examples: 4096, \"512KiB\", \"10MiB\", \"1GB\")");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| err())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        _ => return Err(err()),
    };
    n.checked_mul(mult).ok_or_else(err)
}

/// Config names of the rlimit resources, in the order the error message lists them.
pub(super) const RLIMIT_NAMES: &[(&str, RlimitResource)] = &[
    ("nofile", RlimitResource::Nofile),
    ("nproc", RlimitResource::Nproc),
    ("core", RlimitResource::Core),
    ("memlock", RlimitResource::Memlock),
    ("stack", RlimitResource::Stack),
    ("as", RlimitResource::As),
    ("fsize", RlimitResource::Fsize),
    ("cpu", RlimitResource::Cpu),
    ("data", RlimitResource::Data),
    ("rss", RlimitResource::Rss),
    ("msgqueue", RlimitResource::Msgqueue),
    ("nice", RlimitResource::Nice),
    ("rtprio", RlimitResource::Rtprio),
    ("sigpending", RlimitResource::Sigpending),
];

pub(super) fn rlimit_resource(name: &str) -> Result<RlimitResource, String> {
    RLIMIT_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
        .ok_or_else(|| {
            let all: Vec<&str> = RLIMIT_NAMES.iter().map(|(n, _)| *n).collect();
            format!("unknown rlimit {name:?} (known: {})", all.join(", "))
        })
}

/// The only string an rlimit value may be.
pub(super) fn rlimit_word(s: &str) -> Result<u64, String> {
    if s == "unlimited" {
        Ok(super::RLIMIT_UNLIMITED)
    } else {
        Err(format!(
            "invalid rlimit value {s:?} (expected an integer or \"unlimited\")"
        ))
    }
}

/// `":99"` or `":99.0"`: a local X display, checked through its Unix socket.
pub(super) fn x11_display(s: &str) -> Result<(), String> {
    let ok = s.strip_prefix(':').is_some_and(|rest| {
        let num = rest.split_once('.').map_or(rest, |(d, _)| d);
        !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid X display {s:?} (expected a local display like \":99\")"
        ))
    }
}

/// `"host:port"` for a TCP readiness check (a host name is allowed, unlike `http`).
pub(super) fn tcp_target(s: &str) -> Result<(), String> {
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!(
            "invalid TCP address {s:?} (expected HOST:PORT such as \"127.0.0.1:9223\")"
        )),
    }
}

/// `"http://host:port/path"`; plain HTTP only, since probes target loopback services.
pub(super) fn http_url(s: &str) -> Result<(), String> {
    match s.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(format!(
            "invalid URL {s:?} (expected \"http://HOST[:PORT]/PATH\")"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(duration("10")
            .unwrap_err()
            .contains("invalid duration \"10\""));
        assert!(duration("ten seconds").is_err());
    }

    #[test]
    fn signals() {
        for s in ["TERM", "SIGTERM", "term", "sigterm", "15", " TERM "] {
            assert_eq!(signal(s).unwrap(), Sig::TERM, "{s}");
        }
        assert_eq!(signal("hup").unwrap(), Sig::HUP);
        assert_eq!(signal_number(9).unwrap(), Sig::KILL);
        assert!(signal("TERMINATE").unwrap_err().contains("unknown signal"));
        assert!(signal("999").is_err());
        assert!(signal_number(-1).is_err());
        assert!(signal("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size("10MiB").unwrap(), 10 << 20);
        assert_eq!(size("10MB").unwrap(), 10_000_000);
        assert_eq!(size("512KiB").unwrap(), 512 << 10);
        assert_eq!(size("512 kib").unwrap(), 512 << 10);
        assert_eq!(size("4096").unwrap(), 4096);
        assert_eq!(size("1GiB").unwrap(), 1 << 30);
        assert!(size("10XB").is_err());
        assert!(size("MiB").is_err());
        assert!(size("99999999999999GiB").is_err());
    }

    #[test]
    fn small_ones() {
        assert_eq!(restart("on-failure").unwrap(), RestartPolicy::OnFailure);
        assert!(restart("sometimes").is_err());
        assert!(socket_addr("[::]:9100").is_ok());
        assert!(socket_addr("localhost:9100").is_err());
        assert_eq!(rlimit_resource("nofile").unwrap(), RlimitResource::Nofile);
        assert!(rlimit_resource("files")
            .unwrap_err()
            .contains("nofile, nproc"));
        assert!(x11_display(":99").is_ok() && x11_display(":1.0").is_ok());
        assert!(x11_display("99").is_err() && x11_display(":").is_err());
        assert!(tcp_target("localhost:80").is_ok() && tcp_target("localhost").is_err());
        assert!(http_url("http://127.0.0.1:8080/healthz").is_ok());
        assert!(http_url("https://x").is_err() && http_url("http:///x").is_err());
    }
}
