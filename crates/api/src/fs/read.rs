//! `read_file`: a confined open, then the file streamed in 64 KiB chunks
//! straight from the descriptor (never read whole into memory), with
//! `offset`/`length` query parameters or a single `Range: bytes=` range.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncRead, ReadBuf};

use crate::http::ApiError;

const CHUNK: usize = 64 * 1024;

/// What to send of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Span {
    /// 200: from `start`, `len` bytes (`None`: to EOF, size unknown).
    Whole { start: u64, len: Option<u64> },
    /// 206: `start..=end` of `size`.
    Partial { start: u64, end: u64, size: u64 },
    /// 416.
    Unsatisfiable { size: u64 },
}

/// Decides the span. `offset`/`length` (API parameters, 200, clamped to
/// the end of the file; an offset past it gives an empty body) win over a
/// `Range` header. Of `Range`, one `bytes=a-b`, `a-` or `-n` range is
/// honoured; a malformed or multi-range header is ignored (RFC 9110
/// allows serving the whole file). `size == 0` means "unknown" for files
/// like /proc's, which are then streamed to EOF and never ranged.
pub fn span(size: u64, offset: Option<u64>, length: Option<u64>, range: Option<&str>) -> Span {
    if offset.is_some() || length.is_some() {
        let start = offset.unwrap_or(0);
        if size == 0 {
            return Span::Whole { start, len: length };
        }
        let start = start.min(size);
        let len = length.unwrap_or(u64::MAX).min(size - start);
        return Span::Whole {
            start,
            len: Some(len),
        };
    }
    let whole = Span::Whole {
        start: 0,
        len: (size > 0).then_some(size),
    };
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return whole;
    };
    if size == 0 || spec.contains(',') {
        return whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        // "-n": the last n bytes.
        (true, false) => match num(b) {
            Some(0) => Span::Unsatisfiable { size },
            Some(n) => Span::Partial {
                start: size.saturating_sub(n),
                end: size - 1,
                size,
            },
            None => whole,
        },
        (false, _) => {
            let Some(start) = num(a) else { return whole };
            let end = if b.is_empty() { Some(u64::MAX) } else { num(b) };
            match end {
                None => whole,
                Some(end) if end < start => whole,
                Some(_) if start >= size => Span::Unsatisfiable { size },
                Some(end) => Span::Partial {
                    start,
                    end: end.min(size - 1),
                    size,
                },
            }
        }
        (true, true) => whole,
    }
}

/// A file as a body stream: `remaining` bytes (or to EOF), backpressured by
/// the client since nothing is read until the body asks for it.
pub struct FileStream {
    file: tokio::fs::File,
    remaining: Option<u64>,
    buf: BytesMut,
}

impl FileStream {
    pub fn new(file: tokio::fs::File, remaining: Option<u64>) -> FileStream {
        FileStream {
            file,
            remaining,
            buf: BytesMut::new(),
        }
    }
}

impl Stream for FileStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let want = match this.remaining {
            Some(0) => return Poll::Ready(None),
            Some(r) => r.min(CHUNK as u64) as usize,
            None => CHUNK,
        };
        if this.buf.len() < want {
            this.buf.resize(want, 0);
        }
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    // Shrunk under us: end here; hyper reports the short
                    // body against Content-Length to the client.
                    return Poll::Ready(None);
                }
                if let Some(r) = this.remaining.as_mut() {
                    *r -= n as u64;
                }
                Poll::Ready(Some(Ok(this.buf.split_to(n).freeze())))
            }
        }
    }
}

/// Parses an optional unsigned query parameter.
pub fn opt_u64(
    q: &std::collections::HashMap<String, String>,
    k: &str,
) -> Result<Option<u64>, ApiError> {
    q.get(k)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("{k} must be a non-negative integer")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_read_ranges() {
        let w = |start, len| Span::Whole { start, len };
        let p = |start, end| Span::Partial {
            start,
            end,
            size: 100,
        };
        assert_eq!(span(100, None, None, None), w(0, Some(100)));
        assert_eq!(span(100, None, None, Some("bytes=0-9")), p(0, 9));
        assert_eq!(span(100, None, None, Some("bytes=90-")), p(90, 99));
        assert_eq!(span(100, None, None, Some("bytes=90-500")), p(90, 99));
        assert_eq!(span(100, None, None, Some("bytes=-10")), p(90, 99));
        assert_eq!(span(100, None, None, Some("bytes=-1000")), p(0, 99));
        assert_eq!(
            span(100, None, None, Some("bytes=100-")),
            Span::Unsatisfiable { size: 100 }
        );
        assert_eq!(
            span(100, None, None, Some("bytes=-0")),
            Span::Unsatisfiable { size: 100 }
        );
        assert_eq!(span(100, None, None, Some("bytes=5-1")), w(0, Some(100)));
        assert_eq!(
            span(100, None, None, Some("bytes=0-1,5-6")),
            w(0, Some(100))
        );
        assert_eq!(span(100, None, None, Some("items=0-1")), w(0, Some(100)));
        assert_eq!(
            span(100, Some(10), Some(5), Some("bytes=0-1")),
            w(10, Some(5))
        );
        assert_eq!(span(100, Some(95), Some(50), None), w(95, Some(5)));
        assert_eq!(span(100, Some(500), None, None), w(100, Some(0)));
        assert_eq!(span(0, None, None, Some("bytes=0-1")), w(0, None));
    }
}
