//! The flags every listener takes for its policy, and how they become one:
//! the token (environment first, then a file that is created with a fresh
//! random token when missing), the allowed origins and host names, and the
//! rule that nothing listens beyond loopback without a credential unless
//! `--insecure-no-auth` says so.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::policy::{Auth, Hosts, Origins, Policy};
use crate::{Token, TokenSource};

/// `--token-file`, `--allow-origin`, `--allow-host`, `--insecure-no-auth`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PolicyArgs {
    /// File holding the token clients must send (Authorization: Bearer, or
    /// ?token=); created with a random token if missing, re-read when it
    /// changes. CORRAL_<NAME>_TOKEN (the token itself) wins over it;
    /// CORRAL_<NAME>_TOKEN_FILE names a file when this flag is absent.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// An Origin allowed to make requests (repeatable; also
    /// CORRAL_ALLOW_ORIGINS, comma-separated). Default: none, so requests
    /// from web pages are refused; "*" allows all (unsafe).
    #[arg(
        long = "allow-origin",
        value_name = "ORIGIN",
        env = "CORRAL_ALLOW_ORIGINS",
        value_delimiter = ','
    )]
    pub allow_origins: Vec<String>,
    /// A host name requests may use without the token, besides IP addresses
    /// and localhost (repeatable; also CORRAL_ALLOW_HOSTS, comma-separated).
    #[arg(
        long = "allow-host",
        value_name = "NAME",
        env = "CORRAL_ALLOW_HOSTS",
        value_delimiter = ','
    )]
    pub allow_hosts: Vec<String>,
    /// Serve beyond loopback without a token (anyone who reaches the port
    /// gets in).
    #[arg(long)]
    pub insecure_no_auth: bool,
}

/// Who is asking for a policy: names for its environment and messages.
pub struct Service<'a> {
    /// `corral-cdp`: for messages.
    pub program: &'a str,
    /// `CDP`: CORRAL_CDP_TOKEN and CORRAL_CDP_TOKEN_FILE.
    pub name: &'a str,
    pub listen: SocketAddr,
    pub without_token: WithoutToken,
}

/// What a listener does when no token is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutToken {
    /// Serves on loopback with no credential (as Chromium does); refuses
    /// to start beyond it (corral-cdp, corral-api).
    LoopbackOnly,
    /// Refuses to start (the live view: a screen and a keyboard).
    Refuse,
    /// Starts, and answers its protected paths with 503 saying how to set
    /// one (corral-snapshot: cookies are never served without a token).
    Unavailable,
}

/// Where a listener's token comes from, once decided.
enum Source {
    Env(Token),
    File(PathBuf),
    None,
}

impl PolicyArgs {
    /// The policy these flags and the environment ask for. Must run inside
    /// a tokio runtime (a token file is watched by a task). Errors are
    /// usage errors: the caller exits 2 with the message.
    pub fn build(&self, svc: &Service) -> Result<Policy, String> {
        let var = |suffix: &str| std::env::var(format!("CORRAL_{}_{suffix}", svc.name)).ok();
        // A set but empty token is a mistake to report (exit 2), not "no token".
        let file = var("TOKEN_FILE").filter(|v| !v.trim().is_empty());
        self.build_with(svc, var("TOKEN"), file.map(PathBuf::from))
    }

    /// [`PolicyArgs::build`] with the token already read from the
    /// environment by the caller (corral-api removes every CORRAL_*_TOKEN
    /// from its environment before it starts any thread).
    pub fn build_with_env_token(
        &self,
        svc: &Service,
        env_token: Option<String>,
    ) -> Result<Policy, String> {
        let file = std::env::var(format!("CORRAL_{}_TOKEN_FILE", svc.name))
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(PathBuf::from);
        self.build_with(svc, env_token.filter(|v| !v.trim().is_empty()), file)
    }

    fn build_with(
        &self,
        svc: &Service,
        env_token: Option<String>,
        env_file: Option<PathBuf>,
    ) -> Result<Policy, String> {
        let origins = Origins::parse(&self.allow_origins)?;
        let hosts = Hosts::parse(&self.allow_hosts)?;
        let source = match (env_token, self.token_file.clone().or(env_file)) {
            (Some(t), _) => {
                Source::Env(Token::new(&t).map_err(|e| format!("CORRAL_{}_TOKEN: {e}", svc.name))?)
            }
            (None, Some(path)) => Source::File(path),
            (None, None) => Source::None,
        };
        let auth = match source {
            Source::Env(t) => Auth::Token(TokenSource::fixed(Some(t))),
            Source::File(path) => {
                if ensure_token_file(&path)? {
                    tracing::info!(path = %path.display(), "made a new token (mode 0600)");
                }
                Auth::Token(TokenSource::watch_file(&path)?)
            }
            Source::None if self.insecure_no_auth => Auth::Off,
            Source::None if svc.without_token == WithoutToken::Unavailable => Auth::Unconfigured {
                how: format!(
                    "{} serves this only with a token: set --token-file PATH (created if missing) or CORRAL_{}_TOKEN",
                    svc.program, svc.name
                ),
            },
            Source::None if svc.without_token == WithoutToken::Refuse => {
                return Err(format!(
                    "{} needs a token: set --token-file PATH (created if missing) or CORRAL_{}_TOKEN, or pass --insecure-no-auth",
                    svc.program, svc.name
                ))
            }
            Source::None if !svc.listen.ip().is_loopback() => {
                return Err(format!(
                    "refusing to listen on {} without a token: set --token-file PATH (created if missing) or CORRAL_{}_TOKEN, or pass --insecure-no-auth",
                    svc.listen, svc.name
                ))
            }
            Source::None => Auth::Off,
        };
        Ok(Policy {
            auth,
            origins,
            hosts,
        })
    }
}

/// Creates `path` holding a fresh random token (mode 0600, its directory
/// 0700 if it has to be made) unless it exists. True if it made one. The
/// file appears whole or not at all: written aside, then linked into place
/// (a link never replaces, so two creators cannot overwrite each other).
pub fn ensure_token_file(path: &Path) -> Result<bool, String> {
    if path.exists() {
        return Ok(false);
    }
    let secret = crate::private::random_bytes::<32>()?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    crate::private::write(
        path,
        format!("{hex}\n").as_bytes(),
        crate::private::Place::IfMissing,
    )
    .map_err(|e| format!("token file: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn svc(listen: &str, refuse: bool) -> Service<'static> {
        Service {
            program: "corral-test",
            name: "TEST",
            listen: listen.parse().unwrap(),
            without_token: if refuse {
                WithoutToken::Refuse
            } else {
                WithoutToken::LoopbackOnly
            },
        }
    }

    #[test]
    fn beyond_loopback_needs_a_token_or_the_explicit_flag() {
        let args = PolicyArgs::default();
        let e = args
            .build_with(&svc("0.0.0.0:9222", false), None, None)
            .err()
            .unwrap();
        assert!(
            e.contains("refusing to listen on 0.0.0.0:9222") && e.contains("--insecure-no-auth"),
            "{e}"
        );
        assert!(matches!(
            args.build_with(&svc("127.0.0.1:9222", false), None, None)
                .unwrap()
                .auth,
            Auth::Off
        ));
        let insecure = PolicyArgs {
            insecure_no_auth: true,
            ..PolicyArgs::default()
        };
        assert!(matches!(
            insecure
                .build_with(&svc("0.0.0.0:9222", false), None, None)
                .unwrap()
                .auth,
            Auth::Off
        ));
        let p = args
            .build_with(&svc("0.0.0.0:9222", false), Some("t0k".into()), None)
            .unwrap();
        assert!(matches!(p.auth, Auth::Token(_)));
        assert!(
            args.build_with(&svc("127.0.0.1:6080", true), None, None)
                .is_err(),
            "the live view always needs one"
        );
        let snapshot = Service {
            without_token: WithoutToken::Unavailable,
            ..svc("0.0.0.0:8088", false)
        };
        assert!(matches!(
            args.build_with(&snapshot, None, None).unwrap().auth,
            Auth::Unconfigured { .. }
        ));
    }

    #[tokio::test]
    async fn a_missing_token_file_is_created_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cdp.token");
        assert!(ensure_token_file(&path).unwrap());
        let first = std::fs::read_to_string(&path).unwrap();
        assert_eq!(first.trim().len(), 64);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert!(!ensure_token_file(&path).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            first,
            "never replaced"
        );
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temp file left"
        );
        let args = PolicyArgs {
            token_file: Some(path.clone()),
            ..PolicyArgs::default()
        };
        let p = args
            .build_with(&svc("0.0.0.0:1", false), None, None)
            .unwrap();
        let Auth::Token(src) = p.auth else {
            panic!("token expected")
        };
        assert!(src
            .get()
            .unwrap()
            .admits(Some(&format!("Bearer {}", first.trim())), None));
    }

    #[test]
    fn bad_lists_are_usage_errors() {
        let args = PolicyArgs {
            allow_origins: vec!["evil".into()],
            ..PolicyArgs::default()
        };
        assert!(args
            .build_with(&svc("127.0.0.1:1", false), None, None)
            .err()
            .unwrap()
            .contains("--allow-origin"));
        let args = PolicyArgs {
            allow_hosts: vec!["a b".into()],
            ..PolicyArgs::default()
        };
        assert!(args
            .build_with(&svc("127.0.0.1:1", false), None, None)
            .err()
            .unwrap()
            .contains("--allow-host"));
    }
}
