//! `download_dir_zip`: the directory is walked and compressed on a blocking
//! thread by `zip::ZipWriter::new_stream`, whose output goes in 64 KiB
//! chunks through a bounded channel into the HTTP body. The channel is the
//! backpressure: when the client reads slowly the walker blocks, so memory
//! stays flat (a few chunks) however large the directory. A client that
//! goes away closes the channel and stops the walk.
//!
//! The walk descends only through descriptors opened with `O_NOFOLLOW`
//! from the confined directory: symlinks are stored as symlinks (their
//! target text), never followed, so nothing outside the root is read.
//! Devices, FIFOs and sockets are skipped, as are names that are not UTF-8
//! (a zip name must be a string; a lossy one could collide).

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::confine::{kind, lstat_at};
use super::ops::open_dir_nofollow;

const CHUNK: usize = 64 * 1024;
/// Chunks in flight: memory is bounded by about CHANNEL * CHUNK.
const CHANNEL: usize = 4;

/// A `Write` that hands full chunks to the channel, blocking when it is
/// full. Run it on a blocking thread only.
pub struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The receiving end as a body stream (`Sync`, as `streamed` wants).
pub struct ChunkStream(mpsc::Receiver<std::io::Result<Bytes>>);

impl Stream for ChunkStream {
    type Item = std::io::Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Starts zipping the directory `dir` (a confined `O_RDONLY|O_DIRECTORY`
/// descriptor) on a blocking thread and returns the stream of the zip.
/// A failure midway ends the stream with an error (the client sees an
/// aborted transfer, never a silently truncated zip).
pub fn stream_dir(dir: OwnedFd) -> ChunkStream {
    let (tx, rx) = mpsc::channel(CHANNEL);
    tokio::task::spawn_blocking(move || {
        let w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let mut zip = ZipWriter::new_stream(w);
        let r = add_dir(&mut zip, &dir, "")
            .and_then(|()| zip.finish().map_err(std::io::Error::other))
            .and_then(|mut w| w.flush());
        if let Err(e) = r {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                tracing::warn!("download_dir_zip: {e}");
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    ChunkStream(rx)
}

fn add_dir<W: Write, D: AsFd>(
    zip: &mut ZipWriter<zip::write::StreamWriter<W>>,
    dir: D,
    prefix: &str,
) -> std::io::Result<()> {
    let fd = nix::fcntl::openat(
        &dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut names: Vec<String> = Vec::new();
    for ent in d.iter() {
        let ent = ent?;
        match ent.file_name().to_str() {
            Ok("." | "..") => {}
            Ok(n) => names.push(n.to_string()),
            Err(_) => tracing::warn!("download_dir_zip: skipping a non-UTF-8 name in {prefix:?}"),
        }
    }
    names.sort();
    for name in names {
        let Some(st) = lstat_at(&d, name.as_str())? else {
            continue; // gone since readdir
        };
        let path = format!("{prefix}{name}");
        let opts = SimpleFileOptions::default()
            .unix_permissions(st.st_mode & 0o777)
            .last_modified_time(zip_time(st.st_mtime));
        match kind(&st) {
            SFlag::S_IFDIR => {
                let sub = open_dir_nofollow(&d, &name)?;
                zip.add_directory(format!("{path}/"), opts)?;
                add_dir(zip, &sub, &format!("{path}/"))?;
            }
            SFlag::S_IFREG => {
                let fd = nix::fcntl::openat(
                    &d,
                    name.as_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                let mut f = std::fs::File::from(fd);
                let opts = opts
                    .compression_method(CompressionMethod::Deflated)
                    .large_file(st.st_size >= 0xFFFF_0000);
                zip.start_file(path, opts)?;
                std::io::copy(&mut f, zip)?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(&d, name.as_str())?;
                let Some(target) = target.to_str() else {
                    continue;
                };
                zip.add_symlink(path, target, opts)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Zip times are local-less DOS times from 1980 to 2107; outside, 1980.
fn zip_time(secs: i64) -> DateTime {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| DateTime::try_from(time::PrimitiveDateTime::new(t.date(), t.time())).ok())
        .unwrap_or_default()
}
