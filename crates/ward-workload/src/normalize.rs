//! The Workload API socket's bytes from the client, normalized before the HTTP/2 server
//! parses them: every request's `:authority` that is not a valid authority is rewritten.
//!
//! Over a Unix socket, gRPC C-core (Python, C++, Ruby, PHP) sends the percent-encoded socket
//! path as `:authority` (`tmp%2Frun%2Fworkload.sock`) and grpc-java the raw path
//! (`/run/workload.sock`); the `h2` crate refuses both with `PROTOCOL_ERROR` before the
//! request reaches ward (hyperium/h2 PR 487, still open). The authority means nothing on this
//! socket (the kernel says who calls), so, as SPIRE's agent accepts any, ward rewrites it:
//! the client's HEADERS and CONTINUATION frames are collected into whole header blocks,
//! rewritten by [`crate::hpack`] (invalid bytes of the value become `x`, keeping its length
//! so both HPACK tables stay in step), and sent on as HEADERS (and CONTINUATION) frames of
//! at most 16 KiB. Every other frame passes unchanged. Input this does not understand
//! (a frame over 1 MiB, a header block that does not parse) switches the rewriting off for
//! the connection, and the bytes pass as they came: the server then judges them itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::hpack::Table;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame payload sent on (the HTTP/2 default SETTINGS_MAX_FRAME_SIZE).
const MAX_FRAME: usize = 16_384;
/// Frames larger than this, or header blocks, switch the rewriting off.
const MAX_HELD: usize = 1 << 20;

/// A stream whose reads are normalized; writes pass through.
#[derive(Debug)]
pub struct Normalize<S> {
    inner: S,
    /// Bytes read and not yet processed.
    input: Vec<u8>,
    /// Processed bytes not yet handed out.
    output: Vec<u8>,
    /// Where `output` has been handed out up to.
    handed: usize,
    state: State,
    table: Table,
    /// A header block being collected: its HEADERS frame's flags, stream, priority bytes and
    /// fragments so far.
    block: Option<Block>,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Preface,
    Frames,
    /// Rewriting is off: everything passes as it came.
    Passing,
}

#[derive(Debug)]
struct Block {
    flags: u8,
    stream: [u8; 4],
    priority: Vec<u8>,
    fragments: Vec<u8>,
    /// The frames as they came, for passing them on if the block cannot be rewritten.
    original: Vec<u8>,
}

impl<S> Normalize<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            input: Vec::new(),
            output: Vec::new(),
            handed: 0,
            state: State::Preface,
            table: Table::default(),
            block: None,
        }
    }

    /// Moves everything processable from `input` to `output`.
    fn process(&mut self) {
        loop {
            match self.state {
                State::Passing => {
                    if let Some(b) = self.block.take() {
                        self.output.extend_from_slice(&b.original);
                    }
                    self.output.append(&mut self.input);
                    return;
                }
                State::Preface => {
                    if self.input.len() < PREFACE.len() {
                        if !PREFACE.starts_with(&self.input) {
                            self.state = State::Passing;
                            continue;
                        }
                        return;
                    }
                    if &self.input[..PREFACE.len()] != PREFACE {
                        self.state = State::Passing;
                        continue;
                    }
                    self.output.extend(self.input.drain(..PREFACE.len()));
                    self.state = State::Frames;
                }
                State::Frames => {
                    if self.input.len() < 9 {
                        return;
                    }
                    let len = usize::from(self.input[0]) << 16
                        | usize::from(self.input[1]) << 8
                        | usize::from(self.input[2]);
                    if len > MAX_HELD {
                        self.state = State::Passing;
                        continue;
                    }
                    if self.input.len() < 9 + len {
                        return;
                    }
                    let frame: Vec<u8> = self.input.drain(..9 + len).collect();
                    if !self.frame(frame) {
                        self.state = State::Passing;
                    }
                }
            }
        }
    }

    /// Handles one whole frame; false when rewriting must stop (the frame is kept for
    /// passing through).
    fn frame(&mut self, frame: Vec<u8>) -> bool {
        let (kind, flags) = (frame[3], frame[4]);
        let stream = [frame[5], frame[6], frame[7], frame[8]];
        let payload = &frame[9..];
        match (kind, self.block.as_mut()) {
            (HEADERS, None) => {
                let mut at = 0;
                let mut end = payload.len();
                if flags & PADDED != 0 {
                    let Some(&pad) = payload.first() else {
                        return self.give_up(frame);
                    };
                    at = 1;
                    let Some(e) = end.checked_sub(usize::from(pad)) else {
                        return self.give_up(frame);
                    };
                    end = e;
                }
                let mut priority = Vec::new();
                if flags & PRIORITY != 0 {
                    let Some(p) = payload.get(at..at + 5) else {
                        return self.give_up(frame);
                    };
                    priority = p.to_vec();
                    at += 5;
                }
                let Some(fragment) = payload.get(at..end) else {
                    return self.give_up(frame);
                };
                self.block = Some(Block {
                    flags: flags & (END_STREAM | PRIORITY),
                    stream,
                    priority,
                    fragments: fragment.to_vec(),
                    original: frame.clone(),
                });
                if flags & END_HEADERS != 0 {
                    return self.finish_block();
                }
                true
            }
            (CONTINUATION, Some(block)) if block.stream == stream => {
                block.fragments.extend_from_slice(payload);
                block.original.extend_from_slice(&frame);
                if block.original.len() > MAX_HELD {
                    return false;
                }
                if flags & END_HEADERS != 0 {
                    return self.finish_block();
                }
                true
            }
            // Anything else in the middle of a header block is the server's to refuse.
            (_, Some(_)) => self.give_up(frame),
            _ => {
                self.output.extend_from_slice(&frame);
                true
            }
        }
    }

    /// Keeps `frame` to pass through after any block held; false.
    fn give_up(&mut self, frame: Vec<u8>) -> bool {
        match self.block.as_mut() {
            Some(b) => b.original.extend_from_slice(&frame),
            None => self.output.extend_from_slice(&frame),
        }
        false
    }

    /// Rewrites the collected block and emits it as HEADERS (+ CONTINUATION) frames.
    fn finish_block(&mut self) -> bool {
        let Some(block) = self.block.take() else {
            return true;
        };
        let Some(rewritten) = self.table.rewrite(&block.fragments) else {
            self.output.extend_from_slice(&block.original);
            return false;
        };
        if rewritten == block.fragments {
            self.output.extend_from_slice(&block.original);
            return true;
        }
        let mut rest: &[u8] = &rewritten;
        let mut first = true;
        loop {
            let room = if first {
                MAX_FRAME - block.priority.len()
            } else {
                MAX_FRAME
            };
            let take = rest.len().min(room);
            let (chunk, tail) = rest.split_at(take);
            let last = tail.is_empty();
            let (kind, mut flags, prefix) = if first {
                (HEADERS, block.flags, block.priority.as_slice())
            } else {
                (CONTINUATION, 0, &[][..])
            };
            if last {
                flags |= END_HEADERS;
            }
            let len = prefix.len() + chunk.len();
            self.output.extend_from_slice(&[
                (len >> 16) as u8,
                (len >> 8) as u8,
                len as u8,
                kind,
                flags,
            ]);
            self.output.extend_from_slice(&block.stream);
            self.output.extend_from_slice(prefix);
            self.output.extend_from_slice(chunk);
            if last {
                return true;
            }
            rest = tail;
            first = false;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Normalize<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.handed < this.output.len() {
                let n = buf.remaining().min(this.output.len() - this.handed);
                buf.put_slice(&this.output[this.handed..this.handed + n]);
                this.handed += n;
                if this.handed == this.output.len() {
                    this.output.clear();
                    this.handed = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    // End of input: whatever is held goes on as it came.
                    this.state = State::Passing;
                    this.process();
                    if this.output.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(())) => {
                    this.input.extend_from_slice(read.filled());
                    this.process();
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Normalize<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
