//! `corralctl`: the supervisorctl-like command line for corral.
//!
//! It speaks the control-socket protocol of [`corral_proto`] over a blocking
//! Unix socket: one connection per invocation, one request, its answer(s).
//! The modules split the job the way a reader looks for it:
//!
//! - [`cli`]: the command line and its mapping to protocol requests;
//! - `client`: the connection, with every wait bounded;
//! - `verbs`: one function per verb, printing answers;
//! - `render`: tables and lines for people;
//! - [`exit`]: the exit codes of the contract and the error type behind them.

pub mod cli;
mod client;
pub mod exit;
mod render;
mod verbs;

use std::io::Write;

pub use cli::Cli;

/// Runs the verb in `cli`, printing answers to `out` and problems to `err`;
/// returns the process exit code.
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut io = verbs::Io {
        out,
        err,
        json: cli.json,
    };
    // Flushing belongs to the result: a closed pipe may only show up here.
    let result = verbs::execute(cli, &mut io).and_then(|()| Ok(io.out.flush()?));
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            if !e.is_quiet() {
                let _ = io.out.flush();
                let _ = writeln!(io.err, "corralctl: {e}");
            }
            e.exit_code()
        }
    }
}
