//! Which exit code each failure gets, and the one error type every verb
//! returns.
//!
//! The contract fixes four codes so scripts and probes can tell "the action
//! did not work" from "you asked wrongly" from "corral is not there"; they
//! are named once for every corral binary in `corral_boot::exit` and
//! re-exported here. Every failure path ends up here, so the mapping lives
//! in one place.

use std::io;

use corral_proto::ErrorCode;

use crate::client::ClientError;

/// The action was tried and failed (start failed, timed out, shutting down,
/// invalid config on reload, unhealthy).
pub use corral_boot::exit::FAILURE as FAILED;
/// Success.
pub use corral_boot::exit::SUCCESS as OK;
/// corral could not be reached, or stopped answering.
pub use corral_boot::exit::UNREACHABLE;
/// Bad usage: clap's own code for usage errors, and also an unknown program
/// or a request corral refused as malformed.
pub use corral_boot::exit::USAGE;

/// The exit code for an error answer from corral.
pub fn for_error_code(code: ErrorCode) -> i32 {
    match code {
        ErrorCode::BadRequest | ErrorCode::UnknownProgram => USAGE,
        ErrorCode::Failed
        | ErrorCode::Timeout
        | ErrorCode::ShuttingDown
        | ErrorCode::InvalidConfig => FAILED,
    }
}

/// Why a verb did not end with [`OK`].
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Arguments clap accepted but that make no sense together.
    #[error("{0}")]
    Usage(String),
    /// Talking to corral failed (connect, timeout, closed, garbage).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// corral answered with an error.
    #[error("{}", refused_message(*code, message))]
    Refused { code: ErrorCode, message: String },
    /// Decided on this side: unhealthy, shutdown not finished in time.
    #[error("{0}")]
    Failed(String),
    /// Writing our own stdout failed; a closed pipe (`| head`) is not an error.
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
}

impl CtlError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CtlError::Usage(_) => USAGE,
            CtlError::Client(_) => UNREACHABLE,
            CtlError::Refused { code, .. } => for_error_code(*code),
            CtlError::Failed(_) => FAILED,
            CtlError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => OK,
            CtlError::Output(_) => FAILED,
        }
    }

    /// Whether to stay silent: the reader of our stdout went away on purpose.
    pub fn is_quiet(&self) -> bool {
        matches!(self, CtlError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// corral's messages say what went wrong; a timeout gets a hint, because the
/// action goes on after the wait ends and users otherwise assume it stopped.
fn refused_message(code: ErrorCode, message: &str) -> String {
    match code {
        ErrorCode::Timeout => {
            format!("{message} (the action goes on; see `corralctl status`)")
        }
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_the_contract() {
        assert_eq!(for_error_code(ErrorCode::UnknownProgram), USAGE);
        assert_eq!(for_error_code(ErrorCode::BadRequest), USAGE);
        assert_eq!(for_error_code(ErrorCode::Failed), FAILED);
        assert_eq!(for_error_code(ErrorCode::Timeout), FAILED);
        assert_eq!(for_error_code(ErrorCode::ShuttingDown), FAILED);
        assert_eq!(for_error_code(ErrorCode::InvalidConfig), FAILED);
    }

    #[test]
    fn closed_stdout_is_a_quiet_success() {
        let e = CtlError::Output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(e.exit_code(), OK);
        assert!(e.is_quiet());
        let e = CtlError::Output(io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(e.exit_code(), FAILED);
        assert!(!e.is_quiet());
    }

    #[test]
    fn other_errors_have_their_codes() {
        assert_eq!(CtlError::Usage("x".into()).exit_code(), USAGE);
        assert_eq!(CtlError::Failed("x".into()).exit_code(), FAILED);
        let e = CtlError::Client(ClientError::Closed { path: "/x".into() });
        assert_eq!(e.exit_code(), UNREACHABLE);
        let e = CtlError::Refused {
            code: ErrorCode::Timeout,
            message: "xvfb: not ready after 60s".into(),
        };
        assert_eq!(e.exit_code(), FAILED);
        assert!(e
            .to_string()
            .starts_with("xvfb: not ready after 60s (the action"));
    }
}
