//! The refusals the HTTP/2 server makes on its own. A request `h2` finds malformed (a bad
//! header, a stream over the concurrency cap, a flow-control breach) is answered with
//! RST_STREAM, and a broken connection with GOAWAY, before any of it reaches ward's service,
//! and hyper reports neither. So the bytes the server writes to a Workload API client are
//! followed frame by frame (the 9-byte headers; payloads skipped except the error code of
//! those two frames): each RST_STREAM or GOAWAY with an error code other than NO_ERROR is
//! counted in `ward_workload_api_http2_resets_total{scope, code}` and logged once per scope
//! and code for the life of the process. Nothing is changed or held back.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics::ApiMetrics;

const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;

/// Whether a reset ends one stream or the whole connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// RST_STREAM.
    Stream,
    /// GOAWAY.
    Connection,
}

impl Scope {
    /// As a label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::Connection => "connection",
        }
    }
}

/// An HTTP/2 error code's name (RFC 9113, section 7), lower case; `other` for codes not
/// defined there, so a peer cannot mint label values.
pub fn code_name(code: u32) -> &'static str {
    const NAMES: [&str; 14] = [
        "no_error",
        "protocol_error",
        "internal_error",
        "flow_control_error",
        "settings_timeout",
        "stream_closed",
        "frame_size_error",
        "refused_stream",
        "cancel",
        "compression_error",
        "connect_error",
        "enhance_your_calm",
        "inadequate_security",
        "http_1_1_required",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("other")
}

/// Follows a stream of HTTP/2 frames written in pieces of any size.
#[derive(Debug, Default)]
pub struct FrameWatch {
    header: [u8; 9],
    /// Bytes of `header` filled.
    filled: usize,
    /// Payload bytes of the current frame still to pass.
    payload_left: usize,
    /// For RST_STREAM and GOAWAY: the scope, the offset of the error code in the payload,
    /// and the payload bytes seen so far up to the code's end.
    capture: Option<(Scope, usize, Vec<u8>)>,
}

impl FrameWatch {
    /// Takes `bytes` as written; calls `reset` for each RST_STREAM or GOAWAY whose code is
    /// complete, with its scope and code.
    pub fn feed(&mut self, mut bytes: &[u8], reset: &mut impl FnMut(Scope, u32)) {
        while !bytes.is_empty() {
            if self.payload_left == 0 && self.filled < 9 {
                let n = (9 - self.filled).min(bytes.len());
                self.header[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
                self.filled += n;
                bytes = &bytes[n..];
                if self.filled == 9 {
                    let h = self.header;
                    self.payload_left =
                        (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                    self.capture = match h[3] {
                        RST_STREAM => Some((Scope::Stream, 0, Vec::new())),
                        GOAWAY => Some((Scope::Connection, 4, Vec::new())),
                        _ => None,
                    };
                    if self.payload_left == 0 {
                        self.filled = 0;
                    }
                }
                continue;
            }
            let n = self.payload_left.min(bytes.len());
            if let Some((scope, at, seen)) = &mut self.capture {
                let want = (*at + 4).saturating_sub(seen.len()).min(n);
                seen.extend_from_slice(&bytes[..want]);
                if seen.len() == *at + 4 {
                    let c = &seen[*at..];
                    reset(*scope, u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    self.capture = None;
                }
            }
            self.payload_left -= n;
            bytes = &bytes[n..];
            if self.payload_left == 0 {
                self.filled = 0;
                self.capture = None;
            }
        }
    }
}

/// A connection whose writes are watched for resets; reads and writes pass unchanged.
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    watch: FrameWatch,
    metrics: ApiMetrics,
}

impl<S> Watched<S> {
    /// Wraps `inner`, counting into `metrics`.
    pub fn new(inner: S, metrics: ApiMetrics) -> Self {
        Self {
            inner,
            watch: FrameWatch::default(),
            metrics,
        }
    }

    fn saw(&mut self, bytes: &[u8]) {
        let metrics = &self.metrics;
        self.watch.feed(bytes, &mut |scope, code| {
            if code != 0 {
                metrics.reset(scope, code_name(code));
            }
        });
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.saw(&buf[..n]);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(mut n)) = written {
            for b in bufs {
                let take = n.min(b.len());
                self.saw(&b[..take]);
                n -= take;
                if n == 0 {
                    break;
                }
            }
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, 0];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn resets_are_found_however_the_bytes_are_cut() {
        let mut bytes = frame(0x4, 0, &[0; 12]); // SETTINGS
        bytes.extend(frame(0x0, 1, b"some data, which may hold anything"));
        bytes.extend(frame(RST_STREAM, 1, &1u32.to_be_bytes()));
        bytes.extend(frame(0x1, 3, &[0x88])); // HEADERS
        bytes.extend(frame(RST_STREAM, 3, &7u32.to_be_bytes()));
        let mut goaway = 5u32.to_be_bytes().to_vec();
        goaway.extend(11u32.to_be_bytes());
        goaway.extend(b"debug data");
        bytes.extend(frame(GOAWAY, 0, &goaway));
        let want = vec![
            (Scope::Stream, 1),
            (Scope::Stream, 7),
            (Scope::Connection, 11),
        ];
        for piece in [1, 2, 3, 5, 9, 10, 64, bytes.len()] {
            let mut watch = FrameWatch::default();
            let mut seen = Vec::new();
            for chunk in bytes.chunks(piece) {
                watch.feed(chunk, &mut |s, c| seen.push((s, c)));
            }
            assert_eq!(seen, want, "pieces of {piece}");
        }
    }

    #[test]
    fn codes_have_closed_names() {
        assert_eq!(code_name(1), "protocol_error");
        assert_eq!(code_name(7), "refused_stream");
        assert_eq!(code_name(13), "http_1_1_required");
        assert_eq!(code_name(14), "other");
        assert_eq!(code_name(u32::MAX), "other");
    }
}
