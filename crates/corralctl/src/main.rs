//! `corralctl` binary: parse the command line, run the verb, exit with its code.
//! Everything else lives in the library so it can be unit-tested.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Usage error: `exit::USAGE`; --help/--version: `exit::SUCCESS`.
    let cli = match corral_boot::args::<corralctl::Cli>() {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Buffered so a long `tail` is a few writes, not one per line; the verbs
    // flush after each batch and at the end.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut err = std::io::stderr().lock();
    let code = corralctl::run(&cli, &mut out, &mut err);
    let _ = out.flush();
    drop(out);
    corral_boot::exit::code(code)
}
