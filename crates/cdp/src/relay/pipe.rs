//! Zero-copy payload moves: a large frame's payload goes from one TCP
//! socket to the other through a kernel pipe with `splice(2)`, never through
//! the relay's memory.
//!
//! The relay reads and copies a frame's header and the first bytes of its
//! payload as usual; what is left of a large payload (a 30 MB screenshot)
//! is moved a pipe-full at a time: socket → pipe (the pages Chromium's
//! socket received, referenced, not copied), then pipe → the other socket.
//! That takes the two copies through user space and most of the system
//! calls off every byte, so the CPU a large message costs the relay (taken
//! from Chromium and the client on a small machine) all but goes. While the destination does not take the
//! bytes, they wait in the pipe (kernel memory, at most [`PIPE_SIZE`]) and
//! the source is not read: back-pressure as before.
//!
//! A pipe exists only while a large payload passes (two descriptors), so an
//! idle relay holds none. Where splice is not possible (not a TCP socket: the
//! in-memory sockets of the unit tests, or hyper's upgraded stream) the relay
//! copies as before.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::TcpStream;

/// Bytes a pipe holds at most (Linux's default `pipe-max-size`, so no
/// privilege is needed); when the kernel refuses it, the pipe keeps its
/// default size (64 KiB) and everything still works, in smaller steps.
pub const PIPE_SIZE: usize = 1024 * 1024;

/// Bytes moved socket to socket by splice in this process, all relays
/// together (the tests check that large payloads take this path).
pub static SPLICED: AtomicU64 = AtomicU64::new(0);

/// A socket the relay runs on: TCP sockets also offer their descriptor for
/// splicing.
pub trait Socket: AsyncRead + AsyncWrite + Unpin {
    fn tcp(&self) -> Option<&TcpStream> {
        None
    }
}

impl Socket for TcpStream {
    fn tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl Socket for hyper_util::rt::TokioIo<hyper::upgrade::Upgraded> {}

#[cfg(test)]
impl Socket for tokio::io::DuplexStream {}

#[cfg(test)]
thread_local! {
    /// Tests: splice is refused (EINVAL, as for descriptors a kernel cannot
    /// splice) on this thread, and how many times it was.
    pub static REFUSE: std::cell::Cell<(bool, u32)> = const { std::cell::Cell::new((false, 0)) };
}

/// A refusal the tests asked for, counted.
fn refused() -> Option<io::Error> {
    #[cfg(test)]
    if let (true, n) = REFUSE.get() {
        REFUSE.set((true, n + 1));
        return Some(io::Error::from_raw_os_error(libc::EINVAL));
    }
    None
}

/// A pipe and the payload bytes in it, not yet written on.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
    /// Bytes in the pipe.
    pub held: usize,
}

impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let size = match fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as libc::c_int)) {
            Ok(n) => n as usize,
            Err(_) => 64 * 1024,
        };
        Ok(Pipe {
            read,
            write,
            size,
            held: 0,
        })
    }

    /// How much one fill can take.
    pub fn room(&self) -> usize {
        self.size - self.held
    }

    /// Moves up to `max` bytes that `src` received into the (empty) pipe.
    /// Ready(Ok(0)) is the end of the stream.
    pub fn poll_fill(
        &mut self,
        src: &TcpStream,
        max: usize,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        debug_assert_eq!(self.held, 0, "a pipe is filled only once empty");
        loop {
            std::task::ready!(src.poll_read_ready(cx))?;
            // With the pipe empty, EAGAIN can only mean the socket has
            // nothing: try_io then clears its readiness and we wait again.
            match src.try_io(Interest::READABLE, || {
                if let Some(e) = refused() {
                    return Err(e);
                }
                splice(src.as_fd(), None, &self.write, None, max, flags()).map_err(io::Error::from)
            }) {
                Ok(n) => {
                    self.held = n;
                    SPLICED.fetch_add(n as u64, Ordering::Relaxed);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Moves what the pipe holds on to `dst`; Ready once it is empty.
    /// `progress` is called after every step that moved bytes.
    pub fn poll_drain(
        &mut self,
        dst: &TcpStream,
        cx: &mut Context<'_>,
        mut progress: impl FnMut(),
    ) -> Poll<io::Result<()>> {
        while self.held > 0 {
            std::task::ready!(dst.poll_write_ready(cx))?;
            match dst.try_io(Interest::WRITABLE, || {
                splice(&self.read, None, dst.as_fd(), None, self.held, flags())
                    .map_err(io::Error::from)
            }) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.held -= n;
                    progress();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE
}

#[cfg(test)]
mod tests;
