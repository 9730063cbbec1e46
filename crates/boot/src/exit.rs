//! The exit codes of every corral binary (`corral`, `corralctl`,
//! `corral-cdp`, `corral-snapshot`, `corral-api`, `corral-live`), named once
//! here the way nextest names its own, so no `main.rs` writes a bare number.
//!
//! | code | name | meaning |
//! |---|---|---|
//! | 0 | [`SUCCESS`] | done; a clean shutdown |
//! | 1 | [`FAILURE`] | the action was tried and failed, or the binary could not run (listen, runtime, I/O) |
//! | 2 | [`USAGE`] | asked wrongly: bad arguments, bad config, an input file that is not what it should be, an unknown program |
//! | 3 | [`UNREACHABLE`] | `corralctl` only: corral could not be reached, or stopped answering |
//! | 128+N | [`signaled`] | `corral` only: its critical program was killed by signal N (otherwise corral ends with that program's own code) |

use std::process::ExitCode;

/// Done; a clean shutdown.
pub const SUCCESS: i32 = 0;
/// The action was tried and failed, or the binary could not run.
pub const FAILURE: i32 = 1;
/// Asked wrongly: arguments, config or input. clap's own usage-error code.
pub const USAGE: i32 = 2;
/// `corralctl`: corral could not be reached, or stopped answering.
pub const UNREACHABLE: i32 = 3;
/// A status of 128 + N says "killed by signal N", as a shell does.
pub const SIGNALED_BASE: i32 = 128;

/// The code a shell reports for a process killed by `signal`.
pub fn signaled(signal: i32) -> i32 {
    SIGNALED_BASE + signal
}

/// `code` as a process exit code (outside 0..=255 it is clamped).
pub fn code(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_small() {
        let all = [SUCCESS, FAILURE, USAGE, UNREACHABLE];
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| a != b));
        }
        assert_eq!(signaled(9), 137);
        assert_eq!(code(300), ExitCode::from(255));
        assert_eq!(code(-1), ExitCode::from(0));
    }
}
