//! The relay's bidirectional copy: tokio's `copy_bidirectional` semantics (each direction
//! copies until EOF, then shuts the other side's write half down, so half-close passes
//! through), with buffers that start at 1 KiB and grow to 16 KiB only when a read fills
//! them. An idle connection, or one that only ever carries small messages, then holds 2 KiB
//! of copy buffers instead of 32 KiB (`make bench` S5), while bulk transfers get the large
//! buffer after their first read.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// First buffer size of each direction.
const SMALL: usize = 1024;
/// Size a direction grows to once a read fills its buffer (a full TLS record's plaintext).
const LARGE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Copying,
    ShuttingDown,
    Done,
}

/// One direction: read into `buf`, write it all out, repeat; at EOF flush and shut down.
#[derive(Debug)]
struct Half {
    buf: Vec<u8>,
    pos: usize,
    cap: usize,
    read_done: bool,
    need_flush: bool,
    grow: bool,
    state: State,
}

impl Half {
    fn new() -> Self {
        Self {
            buf: vec![0; SMALL],
            pos: 0,
            cap: 0,
            read_done: false,
            need_flush: false,
            grow: false,
            state: State::Copying,
        }
    }

    /// Reads into the free end of the buffer; marks EOF, and a full small buffer for growth.
    fn poll_fill<R: AsyncRead + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        reader: Pin<&mut R>,
    ) -> Poll<io::Result<()>> {
        let mut buf = ReadBuf::new(&mut self.buf);
        buf.set_filled(self.cap);
        let mut reader = reader;
        loop {
            match ready!(reader.as_mut().poll_read(cx, &mut buf)) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => break result?,
            }
        }
        let filled = buf.filled().len();
        self.read_done = filled == self.cap;
        self.cap = filled;
        if self.cap == self.buf.len() && self.buf.len() < LARGE {
            self.grow = true;
        }
        Poll::Ready(Ok(()))
    }

    /// tokio's `CopyBuffer::poll_copy` loop: read while there is room, write what there is,
    /// read ahead while the writer is busy, flush when the reader has nothing more for now.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            if self.cap < self.buf.len() && !self.read_done {
                match self.poll_fill(cx, reader.as_mut()) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        if self.pos == self.cap {
                            if self.need_flush {
                                ready!(writer.as_mut().poll_flush(cx))?;
                                self.need_flush = false;
                            }
                            return Poll::Pending;
                        }
                    }
                }
            }
            while self.pos < self.cap {
                let written = match writer
                    .as_mut()
                    .poll_write(cx, &self.buf[self.pos..self.cap])
                {
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Poll::Ready(result) => result?,
                    Poll::Pending => {
                        if !self.read_done && self.cap < self.buf.len() {
                            ready!(self.poll_fill(cx, reader.as_mut()))?;
                        }
                        return Poll::Pending;
                    }
                };
                if written == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.pos += written;
                self.need_flush = true;
            }
            (self.pos, self.cap) = (0, 0);
            if self.grow {
                // Empty now, so the buffer can be replaced without losing data.
                self.buf = vec![0; LARGE];
                self.grow = false;
            }
            if self.read_done {
                ready!(writer.as_mut().poll_flush(cx))?;
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// Copies until EOF, then shuts the writer down; ready when both are done.
    fn poll_transfer<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        loop {
            match self.state {
                State::Copying => {
                    ready!(self.poll_copy(cx, Pin::new(&mut *r), Pin::new(&mut *w)))?;
                    self.state = State::ShuttingDown;
                    // The buffer is no longer needed while the other direction goes on.
                    self.buf = Vec::new();
                }
                State::ShuttingDown => {
                    ready!(Pin::new(&mut *w).poll_shutdown(cx))?;
                    self.state = State::Done;
                }
                State::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Copies `a` to `b` and `b` to `a` until both directions have reached EOF and shut down.
pub async fn bidirectional<A, B>(a: &mut A, b: &mut B) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut a_to_b = Half::new();
    let mut b_to_a = Half::new();
    poll_fn(|cx| {
        let forward = a_to_b.poll_transfer(cx, a, b)?;
        let backward = b_to_a.poll_transfer(cx, b, a)?;
        ready!(forward);
        ready!(backward);
        Poll::Ready(Ok(()))
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Bytes both ways, small writes then a bulk one (which grows the buffer), and EOF on one
    /// side passed on as shutdown while the other direction keeps going.
    #[tokio::test]
    async fn copies_everything_both_ways_and_passes_half_close_on() {
        let (mut client, mut relay_a) = duplex(64 * 1024);
        let (mut relay_b, mut server) = duplex(64 * 1024);
        let relay = tokio::spawn(async move { bidirectional(&mut relay_a, &mut relay_b).await });

        let bulk: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sent = bulk.clone();
        let writer = tokio::spawn(async move {
            client.write_all(b"hello").await.unwrap();
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap(); // half-close: client is done sending
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap(); // ends only if the shutdown came through
        assert_eq!(&got[..5], b"hello");
        assert_eq!(&got[5..], &bulk[..]);
        server.write_all(b"bye").await.unwrap();
        server.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"bye");
        relay.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_buffer_grows_only_when_a_read_fills_it() {
        let copy = |data: Vec<u8>| async move {
            let mut half = Half::new();
            let mut reader: &[u8] = &data;
            let mut out = Vec::new();
            poll_fn(|cx| half.poll_copy(cx, Pin::new(&mut reader), Pin::new(&mut out)))
                .await
                .unwrap();
            assert_eq!(out, data);
            half.buf.len()
        };
        assert_eq!(copy(vec![1; 100]).await, SMALL);
        assert_eq!(copy(vec![2; 3 * LARGE + 5]).await, LARGE);
    }
}
