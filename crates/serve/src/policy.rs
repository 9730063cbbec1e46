//! The request policy every corral listener applies before anything else:
//! the credential, the `Origin` and the `Host` of a request, decided in one
//! place so that corral-cdp, corral-snapshot, corral-api and corral-live
//! refuse the same requests for the same reasons (docs/security.md).
//!
//! - **Origin.** Browsers send `Origin` on every WebSocket upgrade and on
//!   cross-origin requests; CDP clients (Playwright, Puppeteer, chromedriver,
//!   chrome-remote-interface) send none. A request carrying an `Origin` that
//!   is not on the allowed list gets 403, token or not: a web page the user
//!   opens must never drive the browser, which is what Chromium's own
//!   `--remote-allow-origins` check is for.
//! - **Credential.** `Authorization: Bearer TOKEN` or `?token=TOKEN`,
//!   compared in constant time; 401 with `WWW-Authenticate: Bearer`.
//! - **Host.** DNS rebinding makes `evil.example` resolve to 127.0.0.1, so
//!   its pages become same-origin with the listener and carry
//!   `Host: evil.example:PORT`. A request whose Host is not an IP literal,
//!   `localhost` (or a `.localhost` name, which browsers never resolve
//!   through DNS) or an allowed name gets 403 unless it carries a valid
//!   token, as Jupyter Server does.
//!
//! Refusals are logged with the peer, method and path, never the query (a
//! `?token=` would be in it) nor any header value.

use std::net::{IpAddr, SocketAddr};

use hyper::header::{self, HeaderMap};
use hyper::{Method, StatusCode, Uri};

use crate::TokenSource;

/// Whether a request needs the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The credential is required (when one is configured).
    Credential,
    /// Public resources (health checks, the live view's static files): the
    /// Origin and Host checks apply, the credential is only honoured.
    Public,
}

/// How a listener authenticates.
#[derive(Clone)]
pub enum Auth {
    /// No credential: loopback-only listeners (a local client needs none,
    /// as with Chromium itself) or an explicit `--insecure-no-auth`.
    Off,
    /// A token is required; refused with 503 while none is in force (the
    /// token file is missing or empty: failing closed).
    Token(TokenSource),
    /// This listener never serves its protected resources without a token
    /// and none is configured: 503 saying how to set one.
    Unconfigured { how: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Off => "Off",
            Auth::Token(_) => "Token(<redacted>)",
            Auth::Unconfigured { .. } => "Unconfigured",
        })
    }
}

/// Origins allowed to make requests, normalised (`scheme://host[:port]`,
/// lower case, default ports dropped).
#[derive(Debug, Clone, Default)]
pub struct Origins {
    any: bool,
    list: Vec<String>,
    /// Also allow an Origin that names the very host the request went to:
    /// the live view serves its own page, whose WebSocket comes from it.
    pub same_origin: bool,
}

impl Origins {
    /// Parses the allowed list; `*` allows every origin (what
    /// `--remote-allow-origins=*` does: documented as unsafe).
    pub fn parse(items: &[String]) -> Result<Origins, String> {
        let mut out = Origins::default();
        for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            if item == "*" {
                out.any = true;
            } else {
                out.list.push(normalize_origin(item).ok_or_else(|| {
                    format!("--allow-origin {item:?}: expected scheme://host[:port], e.g. https://app.example.com")
                })?);
            }
        }
        Ok(out)
    }

    fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        if self.any {
            return true;
        }
        let Some(origin) = normalize_origin(origin) else {
            return false; // `null`, garbage: never on the list
        };
        if self.list.contains(&origin) {
            return true;
        }
        self.same_origin
            && host.is_some_and(|h| {
                let authority = origin.split_once("://").map_or("", |(_, a)| a);
                let scheme = origin.split_once("://").map_or("", |(s, _)| s);
                let default = if scheme == "https" { ":443" } else { ":80" };
                let host = h.to_ascii_lowercase();
                authority == host || authority == host.trim_end_matches(default)
            })
    }
}

/// `scheme://host[:port]` in canonical form, or `None` if it is not one.
fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let (host, port) = split_host_port(authority)?;
    let default = match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    };
    Some(match port {
        Some(p) if Some(p) != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// Host names allowed without a token, besides IP literals and localhost.
#[derive(Debug, Clone, Default)]
pub struct Hosts(Vec<String>);

impl Hosts {
    pub fn parse(items: &[String]) -> Result<Hosts, String> {
        let mut out = Vec::new();
        for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            let name = item.trim_end_matches('.').to_ascii_lowercase();
            let valid = !name.is_empty()
                && name.len() <= 253
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
            if !valid {
                return Err(format!(
                    "--allow-host {item:?}: expected a host name without port, e.g. corral.example.com"
                ));
            }
            out.push(name);
        }
        Ok(Hosts(out))
    }

    /// Is `host` (a Host header's host part, no port) local or allowed?
    fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        literal.parse::<IpAddr>().is_ok()
            || host == "localhost"
            || host.ends_with(".localhost")
            || self.0.contains(&host)
    }
}

/// `host[:port]` (with `[v6]` brackets kept) split; `None` if malformed.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &authority[..end + 2];
        match &rest[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    if !ok {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host, port))
}

/// The policy of one listener.
#[derive(Debug, Clone)]
pub struct Policy {
    pub auth: Auth,
    pub origins: Origins,
    pub hosts: Hosts,
}

/// What the policy says yes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The request carried a valid token.
    pub authenticated: bool,
}

/// Why a request is refused: the answer's status and JSON reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub error: &'static str,
    pub detail: String,
}

impl Refusal {
    fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Refusal {
        Refusal {
            status,
            error,
            detail: detail.into(),
        }
    }

    /// The JSON answer (`{"error", "detail"}`), with `WWW-Authenticate`
    /// on a 401.
    pub fn response(&self) -> hyper::Response<crate::JsonBody> {
        let mut r = crate::json_error(self.status, self.error, &self.detail);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

impl Policy {
    /// A policy with no credential and the default (empty) lists.
    pub fn open() -> Policy {
        Policy {
            auth: Auth::Off,
            origins: Origins::default(),
            hosts: Hosts::default(),
        }
    }

    /// Decides on a request from its headers and URI alone.
    pub fn check(&self, headers: &HeaderMap, uri: &Uri, need: Need) -> Result<Admitted, Refusal> {
        let host = match headers.get(header::HOST).map(|h| h.to_str()) {
            Some(Ok(h)) => Some(h.trim()),
            Some(Err(_)) => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "invalid Host header",
                    "not ASCII",
                ))
            }
            None => None,
        };
        // Origin first: a foreign page is refused even if it somehow holds
        // the token (a link with ?token= pasted into the wrong place).
        for origin in headers.get_all(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !self.origins.allows(origin, host) {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "origin not allowed",
                    format!(
                        "requests from web pages are refused unless their origin is allowed (--allow-origin or CORRAL_ALLOW_ORIGINS); this one came from {}",
                        printable(origin)
                    ),
                ));
            }
        }
        // A Host that is no host[:port] at all is a bad request, whoever
        // sends it (it would also be spliced into rewritten URLs).
        let name = match host.map(split_host_port) {
            Some(None) => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "invalid Host header",
                    "expected a host name or address, with an optional port",
                ))
            }
            Some(Some((name, _))) => Some(name),
            None => None,
        };
        let authenticated = self.credential(headers, uri, need)?;
        if !authenticated {
            if let (Some(h), Some(name)) = (host, name) {
                if !self.hosts.allows(name) {
                    return Err(Refusal::new(
                        StatusCode::FORBIDDEN,
                        "host not allowed",
                        format!(
                            "Host {} is not an IP address, localhost or an allowed name (--allow-host or CORRAL_ALLOW_HOSTS); send the token to use this name",
                            printable(h)
                        ),
                    ));
                }
            }
        }
        Ok(Admitted { authenticated })
    }

    /// Does the request carry a valid token? Errors when it must and does not.
    fn credential(&self, headers: &HeaderMap, uri: &Uri, need: Need) -> Result<bool, Refusal> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let offered = |source: &TokenSource| {
            source
                .get()
                .is_some_and(|t| t.admits(authorization, uri.query()))
        };
        match (&self.auth, need) {
            (Auth::Off, _) | (Auth::Unconfigured { .. }, Need::Public) => Ok(false),
            (Auth::Token(source), Need::Public) => Ok(offered(source)),
            (Auth::Unconfigured { how }, Need::Credential) => Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no token configured",
                how.clone(),
            )),
            (Auth::Token(source), Need::Credential) => {
                if source.get().is_none() {
                    return Err(Refusal::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no token in force",
                        "the token file is missing or empty; requests are refused until it is back",
                    ));
                }
                if offered(source) {
                    Ok(true)
                } else {
                    Err(Refusal::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "a token is required: Authorization: Bearer TOKEN, or ?token=TOKEN",
                    ))
                }
            }
        }
    }

    /// [`Policy::check`] on a request, logging a refusal (peer, method and
    /// path only); [`Refusal::response`] is the answer to send.
    pub fn admit<B>(
        &self,
        req: &hyper::Request<B>,
        peer: Option<SocketAddr>,
        need: Need,
    ) -> Result<Admitted, Refusal> {
        self.check(req.headers(), req.uri(), need)
            .inspect_err(|r| r.log(peer, req.method(), req.uri().path()))
    }
}

impl Refusal {
    /// One log line: the peer, method and path (never the query, which may
    /// hold `?token=`, nor any header value).
    pub fn log(&self, peer: Option<SocketAddr>, method: &Method, path: &str) {
        let peer = peer.map(|p| p.to_string()).unwrap_or_default();
        tracing::info!(%peer, %method, path, status = self.status.as_u16(), reason = self.error, "request refused");
    }
}

/// A header value as it may be shown in an answer: bounded, printable.
fn printable(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).take(200).collect();
    format!("{s:?}")
}

#[cfg(test)]
mod tests;
