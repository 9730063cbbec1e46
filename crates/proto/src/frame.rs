//! Length-prefixed JSON frames, blocking (std) and, with the `tokio`
//! feature, async. The length is checked against [`MAX_FRAME`] before any
//! allocation.

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::MAX_FRAME;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is larger than the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Serialises `msg` into a frame (length prefix included).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Parses a frame's body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    Ok(serde_json::from_slice(body)?)
}

fn check_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Writes one frame.
pub fn write<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame's body; `None` on a clean end of stream between frames.
pub fn read_body<R: Read>(r: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; 4];
    match r.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut body = vec![0u8; check_len(prefix)?];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Reads and parses one frame; `None` on a clean end of stream.
pub fn read<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<Option<T>, FrameError> {
    read_body(r)?.map(|b| decode(&b)).transpose()
}

#[cfg(feature = "tokio")]
pub mod nonblocking {
    //! The same frames over tokio's async I/O.

    use serde::Serialize;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    use super::{check_len, encode, FrameError};

    pub async fn write<W: AsyncWrite + Unpin, T: Serialize>(
        w: &mut W,
        msg: &T,
    ) -> Result<(), FrameError> {
        w.write_all(&encode(msg)?).await?;
        w.flush().await?;
        Ok(())
    }

    /// Reads one frame's body; `None` on a clean end of stream between frames.
    pub async fn read_body<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
        let mut prefix = [0u8; 4];
        match r.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let mut body = vec![0u8; check_len(prefix)?];
        r.read_exact(&mut body).await?;
        Ok(Some(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Request, RequestFrame, VERSION};

    #[test]
    fn round_trip_and_clean_eof() {
        let msg = RequestFrame {
            v: VERSION,
            request: Request::Health,
        };
        let mut buf = Vec::new();
        write(&mut buf, &msg).unwrap();
        write(&mut buf, &msg).unwrap();
        let mut r = &buf[..];
        assert_eq!(read::<_, RequestFrame>(&mut r).unwrap(), Some(msg.clone()));
        assert_eq!(read::<_, RequestFrame>(&mut r).unwrap(), Some(msg));
        assert!(read::<_, RequestFrame>(&mut r).unwrap().is_none());
    }

    #[test]
    fn oversize_prefix_is_refused_before_allocating() {
        let buf = (u32::MAX).to_be_bytes();
        let err = read_body(&mut &buf[..]).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(n) if n == u32::MAX as usize));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let mut buf = 5u32.to_be_bytes().to_vec();
        buf.extend_from_slice(b"hello");
        let err = read::<_, RequestFrame>(&mut &buf[..]).unwrap_err();
        assert!(err.to_string().starts_with("malformed message"));
    }

    #[test]
    fn truncated_body_is_an_error() {
        let mut buf = 10u32.to_be_bytes().to_vec();
        buf.extend_from_slice(b"{}");
        assert!(read_body(&mut &buf[..]).is_err());
    }
}
