//! Running one verb: connect, send its request, read the answer(s), print.
//! One function per verb shape, routed by one `match`; each returns `Ok` for
//! exit 0 or a [`CtlError`] that knows its exit code.

use std::io::Write;
use std::time::{Duration, Instant};

use corral_proto::{ErrorCode, Response};
use serde::Serialize;

use crate::cli::{Cli, Verb};
use crate::client::{Client, ClientError};
use crate::exit::CtlError;
use crate::render::{self, Change};

/// Where output goes: stdout for answers, stderr for notes. Behind `dyn`
/// so tests can capture both.
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// `--json`: answers as JSON on stdout instead of text.
    pub json: bool,
}

impl Io<'_> {
    /// One answer as pretty JSON.
    fn json<T: Serialize>(&mut self, value: &T) -> Result<(), CtlError> {
        let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        writeln!(self.out, "{text}")?;
        Ok(())
    }

    /// A note for people; losing it to a closed stderr is not worth failing for.
    fn note(&mut self, text: &str) {
        let _ = writeln!(self.err, "corralctl: {text}");
    }
}

pub fn execute(cli: &Cli, io: &mut Io) -> Result<(), CtlError> {
    let request = cli.verb.request().map_err(CtlError::Usage)?;
    // The health probe has one budget for connect and answer together.
    let started = Instant::now();
    let mut client = Client::connect(&cli.socket, cli.verb.connect_timeout())?;
    match &cli.verb {
        Verb::Health { timeout } => client.set_reply_deadline(*timeout, started)?,
        verb => client.set_reply_timeout(verb.reply_timeout())?,
    }
    client.send(&request)?;

    match &cli.verb {
        Verb::Status { .. } => status(&mut client, io),
        Verb::Start(_) => change(&mut client, io, Change::Start),
        Verb::Stop(_) => change(&mut client, io, Change::Stop),
        Verb::Restart(_) => change(&mut client, io, Change::Restart),
        Verb::Signal { .. } => ok_message(&mut client, io),
        Verb::Pid { .. } => pid(&mut client, io),
        Verb::Tail { follow, .. } => tail(&mut client, io, *follow),
        Verb::Health { .. } => health(&mut client, io),
        Verb::Reload { .. } => reload(&mut client, io),
        Verb::Shutdown { timeout } => shutdown(&mut client, io, *timeout),
    }
}

/// The next answer, with an error answer turned into [`CtlError::Refused`]
/// (after printing it, under `--json`).
fn answer(client: &mut Client, io: &mut Io) -> Result<Response, CtlError> {
    let response = client.recv()?;
    refuse(response, io)
}

fn refuse(response: Response, io: &mut Io) -> Result<Response, CtlError> {
    match response {
        Response::Error { code, message } => {
            if io.json {
                io.json(&Response::Error {
                    code,
                    message: message.clone(),
                })?;
            }
            Err(CtlError::Refused { code, message })
        }
        other => Ok(other),
    }
}

fn status(client: &mut Client, io: &mut Io) -> Result<(), CtlError> {
    let response = answer(client, io)?;
    let Response::Status {
        programs,
        shutting_down,
    } = &response
    else {
        return Err(client.unexpected(&response).into());
    };
    if io.json {
        // An array of programs is what scripts want to `jq` over.
        io.json(programs)?;
    } else {
        io.out
            .write_all(render::status_table(programs).as_bytes())?;
    }
    if *shutting_down {
        io.note("corral is shutting down");
    }
    Ok(())
}

fn change(client: &mut Client, io: &mut Io, change: Change) -> Result<(), CtlError> {
    let response = answer(client, io)?;
    let Response::Done { programs } = &response else {
        return Err(client.unexpected(&response).into());
    };
    if io.json {
        return io.json(&response);
    }
    for p in programs {
        writeln!(io.out, "{}", render::done_line(change, p))?;
    }
    Ok(())
}

fn ok_message(client: &mut Client, io: &mut Io) -> Result<(), CtlError> {
    let response = answer(client, io)?;
    let Response::Ok { message } = &response else {
        return Err(client.unexpected(&response).into());
    };
    if io.json {
        return io.json(&response);
    }
    if !message.is_empty() {
        writeln!(io.out, "{message}")?;
    }
    Ok(())
}

fn pid(client: &mut Client, io: &mut Io) -> Result<(), CtlError> {
    let response = answer(client, io)?;
    let Response::Pid { pid } = &response else {
        return Err(client.unexpected(&response).into());
    };
    if io.json {
        return io.json(&response);
    }
    writeln!(io.out, "{pid}")?;
    Ok(())
}

/// Prints each `lines` frame as it comes, flushing after each so `tail -f`
/// is live through a pipe. Under `--json` each frame is one compact JSON
/// line, so the stream can be read line by line.
fn tail(client: &mut Client, io: &mut Io, follow: bool) -> Result<(), CtlError> {
    loop {
        let Some(response) = client.recv_or_eof()? else {
            // Without -f the one answer should have come first; with -f
            // corral closing (exiting, program removed) ends the stream.
            return if follow {
                Ok(())
            } else {
                Err(client.closed().into())
            };
        };
        let response = refuse(response, io)?;
        let Response::Lines { lines } = &response else {
            return Err(client.unexpected(&response).into());
        };
        if io.json {
            let text = serde_json::to_string(&response).map_err(std::io::Error::other)?;
            writeln!(io.out, "{text}")?;
        } else {
            for line in lines {
                writeln!(io.out, "{line}")?;
            }
        }
        io.out.flush()?;
        if !follow {
            return Ok(());
        }
    }
}

fn health(client: &mut Client, io: &mut Io) -> Result<(), CtlError> {
    let response = answer(client, io)?;
    let Response::Health { healthy, not_ready } = &response else {
        return Err(client.unexpected(&response).into());
    };
    if io.json {
        io.json(&response)?;
    } else if *healthy {
        writeln!(io.out, "healthy")?;
    }
    if *healthy {
        Ok(())
    } else if not_ready.is_empty() {
        Err(CtlError::Failed("not healthy".into()))
    } else {
        Err(CtlError::Failed(format!(
            "not healthy: critical programs not ready: {}",
            not_ready.join(", ")
        )))
    }
}

fn reload(client: &mut Client, io: &mut Io) -> Result<(), CtlError> {
    // An invalid config comes back as an error whose message carries the
    // diagnostics; `answer` hands it on to stderr unchanged.
    let response = answer(client, io)?;
    let Response::Reloaded {
        added,
        removed,
        changed,
    } = &response
    else {
        return Err(client.unexpected(&response).into());
    };
    if io.json {
        return io.json(&response);
    }
    io.out
        .write_all(render::reload_summary(added, removed, changed).as_bytes())?;
    Ok(())
}

/// Sends shutdown, then holds the connection until corral closes it: the
/// close is the only sign that corral has really exited. (As PID 1 in a
/// container, its exit usually takes this process down with it first.)
fn shutdown(client: &mut Client, io: &mut Io, timeout: Duration) -> Result<(), CtlError> {
    match client.recv()? {
        // Already on its way down: nothing to ask, but still worth waiting.
        Response::Error {
            code: ErrorCode::ShuttingDown,
            message,
        } => {
            if io.json {
                io.json(&Response::Error {
                    code: ErrorCode::ShuttingDown,
                    message: message.clone(),
                })?;
            } else {
                writeln!(io.out, "{message}")?;
            }
        }
        response => {
            let response = refuse(response, io)?;
            let Response::Ok { message } = &response else {
                return Err(client.unexpected(&response).into());
            };
            if io.json {
                io.json(&response)?;
            } else if !message.is_empty() {
                writeln!(io.out, "{message}")?;
            }
        }
    }
    // Say so now: the wait can be long and output may be piped.
    io.out.flush()?;
    let started = Instant::now();
    loop {
        client.set_reply_deadline(timeout, started)?;
        match client.recv_or_eof() {
            Ok(None) | Err(ClientError::Closed { .. }) => return Ok(()),
            // Nothing more is expected; whatever comes is not a reason to stop waiting.
            Ok(Some(_)) => continue,
            Err(ClientError::NoAnswer { .. }) => {
                return Err(CtlError::Failed(format!(
                    "corral has not exited after {}",
                    humantime::format_duration(timeout)
                )))
            }
            Err(e) => return Err(e.into()),
        }
    }
}
