//! Bearer tokens shared by corral's HTTP sidecars (`corral-cdp`,
//! `corral-snapshot`, `corral-api`): loaded from a file or an environment
//! variable, compared in constant time, never logged, and — for a token
//! file, as Kubernetes Secrets mount them — re-read when the file changes.

mod token;
mod watch;

pub use token::{strip_token, Token};
pub use watch::TokenSource;
