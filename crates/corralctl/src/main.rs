//! `corralctl` binary: parse the command line, run the verb, exit with its code.
//! Everything else lives in the library so it can be unit-tested.

use std::io::Write;

use clap::Parser;

fn main() {
    // clap exits by itself: 2 on a usage error, 0 for --help/--version.
    let cli = corralctl::Cli::parse();
    // Buffered so a long `tail` is a few writes, not one per line; the verbs
    // flush after each batch and at the end.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut err = std::io::stderr().lock();
    let code = corralctl::run(&cli, &mut out, &mut err);
    // `process::exit` runs no destructors, so make sure nothing is left behind.
    let _ = out.flush();
    drop(out);
    std::process::exit(code);
}
