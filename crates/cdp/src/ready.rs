//! "Let clients in only once Chromium is ready as corral sees it": the
//! chromium program's readiness check replays the cookie journal, so a
//! client that connects right after an unclean stop must not reach the
//! browser before the lost cookies are back (issue 11). Chromium's DevTools
//! port answers long before that, so the port alone cannot say it.
//!
//! One Status request on corral's control socket per new upstream
//! connection (tens of microseconds on a Unix socket; messages on an open
//! connection are never checked). An unreachable corral counts as not
//! ready: the bridge fails closed, like a missing token file.

use std::path::PathBuf;
use std::time::Duration;

use corral_proto::frame::{decode, nonblocking};
use corral_proto::{Request, RequestFrame, Response, ResponseFrame, VERSION};
use tokio::net::UnixStream;

/// A control socket that does not answer this fast is not going to.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Which program must be ready, asked of which corral.
#[derive(Debug, Clone)]
pub struct ReadyCheck {
    pub socket: PathBuf,
    pub program: String,
}

impl ReadyCheck {
    /// `Ok(())` when corral reports the program ready, else why not.
    pub async fn check(&self) -> Result<(), String> {
        match tokio::time::timeout(ASK_TIMEOUT, self.ask()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(format!(
                "{} is not ready yet (corral is starting it or restoring its cookies)",
                self.program
            )),
            Ok(Err(e)) => Err(format!(
                "cannot ask corral at {} whether {} is ready: {e}",
                self.socket.display(),
                self.program
            )),
            Err(_) => Err(format!(
                "corral at {} did not answer in time",
                self.socket.display()
            )),
        }
    }

    async fn ask(&self) -> Result<bool, String> {
        let mut stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| e.to_string())?;
        let frame = RequestFrame {
            v: VERSION,
            request: Request::Status {
                names: vec![self.program.clone()],
            },
        };
        nonblocking::write(&mut stream, &frame)
            .await
            .map_err(|e| e.to_string())?;
        let body = nonblocking::read_body(&mut stream)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("closed before answering")?;
        match decode::<ResponseFrame>(&body)
            .map_err(|e| e.to_string())?
            .response
        {
            Response::Status { programs, .. } => {
                Ok(programs.iter().any(|p| p.name == self.program && p.ready))
            }
            Response::Error { message, .. } => Err(message),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }
}
