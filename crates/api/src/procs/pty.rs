//! Pseudo-terminals for `POST /process/spawn {"allocate_tty": true}`.
//!
//! The pair is opened with `O_CLOEXEC` from the start (`posix_openpt`,
//! then the slave by name), so no other process corral-api starts
//! meanwhile inherits either end: a stray copy of the slave would keep the
//! master from ever reporting the end (EIO) after the child exits. The
//! child gets the slave as stdin, stdout and stderr, starts a session of
//! its own (`setsid`) and makes the slave its controlling terminal
//! (`TIOCSCTTY`), so `tty` names it, job control and Ctrl-C work, and a
//! resize (`TIOCSWINSZ` on the master) sends SIGWINCH to its foreground
//! process group. The master is both the output (read) and the input
//! (write), non-blocking under tokio's reactor.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use nix::fcntl::OFlag;
use serde::Deserialize;
use serde_json::json;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::Command;

use super::Processes;
use crate::http::ApiError;

/// The master side, shared by the output reader, the stdin writer and
/// `resize`.
pub type Master = Arc<AsyncFd<OwnedFd>>;

/// Opens a pseudo-terminal of `rows` x `cols`: (master, slave).
pub fn open(rows: u16, cols: u16) -> io::Result<(Master, OwnedFd)> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = nix::pty::posix_openpt(flags)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let name = nix::pty::ptsname_r(&master)?;
    let slave = nix::fcntl::open(name.as_str(), flags, nix::sys::stat::Mode::empty())?;
    // SAFETY: posix_openpt returned an open descriptor we now own alone.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    set_size(&master, rows, cols)?;
    let fl = nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_GETFL)?;
    let fl = OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_SETFL(fl))?;
    // SAFETY: an OwnedFd is a valid descriptor that stays open, the same
    // one, for as long as the AsyncFd that owns it.
    let master = unsafe { AsyncFd::register(master) }.map_err(|e| e.into_parts().1)?;
    Ok((Arc::new(master), slave))
}

/// `TIOCSWINSZ`: the kernel sends SIGWINCH to the terminal's foreground
/// process group when the size changes.
pub fn set_size(master: &OwnedFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer we pass.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes `slave` the child's stdio and controlling terminal.
pub fn attach(cmd: &mut Command, slave: &OwnedFd) -> io::Result<()> {
    cmd.stdin(slave.try_clone()?)
        .stdout(slave.try_clone()?)
        .stderr(slave.try_clone()?);
    // SAFETY: setsid and ioctl are async-signal-safe and touch no memory
    // allocated after the fork.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // stdin is the slave by now (stdio is set up before pre_exec).
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Reads and writes the master (one value per direction, sharing it).
pub struct Io(pub Master);

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let r = guard.try_io(|fd| {
                // SAFETY: reads into the initialised, unfilled part of buf.
                let n = unsafe {
                    libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len())
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // EIO: every slave descriptor is closed (the child and its
                // descendants are gone): the end of the output.
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            let r = guard.try_io(|fd| {
                // SAFETY: writes from a valid slice.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Processes {
    /// `TIOCSWINSZ` on the process's terminal.
    pub fn resize(&self, id: &str, req: ResizeRequest) -> Result<serde_json::Value, ApiError> {
        if req.rows == 0 || req.cols == 0 {
            return Err(ApiError::bad_request("rows and cols must be at least 1"));
        }
        let proc = self.get(id)?;
        let Some((master, size)) = &proc.pty else {
            return Err(ApiError::conflict(format!(
                "process {id} has no terminal (spawn it with \"allocate_tty\": true to resize it)"
            )));
        };
        if proc.exit().is_some() {
            return Err(ApiError::conflict(format!("process {id} has exited")));
        }
        set_size(master.get_ref(), req.rows, req.cols)
            .map_err(|e| ApiError::internal(format!("resizing the terminal of {id}: {e}")))?;
        *size.lock().unwrap_or_else(|p| p.into_inner()) = (req.rows, req.cols);
        Ok(json!({ "id": id, "rows": req.rows, "cols": req.cols }))
    }
}

/// The body of `POST /process/{id}/resize`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ResizeRequest {
    pub rows: u16,
    pub cols: u16,
}
