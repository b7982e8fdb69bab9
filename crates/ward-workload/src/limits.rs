//! What one caller can cost the sidecar: the caps, deadlines and byte budgets the Workload API
//! server applies, and the small types that enforce them (a per-uid slot table, a request body
//! that draws on byte budgets, and a count of a connection's open calls).
//!
//! A caller the kernel says is not allowed gets no slot of an allowed caller and no memory: it
//! is answered once from a small pool of its own and closed. An allowed caller is bounded
//! too, so one app (or a second allowed uid) cannot lock the others out: connections per uid,
//! a deadline for the first call, an idle timeout, HTTP/2 windows of 64 KiB, and request
//! bytes read but not yet consumed counted per connection and per process.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use tokio::sync::watch;

/// Connections from allowed callers held at most; more are closed at once.
pub const MAX_CONNECTIONS: usize = 512;
/// Connections one uid may hold: room for an app of many processes each with a connection
/// of its own, and half the slots, so one allowed uid cannot take every one.
pub const MAX_PER_UID: usize = 256;
/// Callers not allowed that are being answered at once; more are closed without an answer.
pub const MAX_REFUSING: usize = 16;
/// How long a refused caller's connection lives (enough to receive its one refusal).
pub const REFUSAL_DEADLINE: Duration = Duration::from_secs(1);
/// How long a refused call's request may take to finish arriving (read and discarded).
pub const REFUSAL_DRAIN: Duration = Duration::from_millis(100);
/// How much of a refused call's request is read (and discarded) at most.
pub const REFUSAL_DRAIN_BYTES: usize = 16 * 1024;
/// How long a new connection may wait before its first call.
pub const FIRST_CALL: Duration = Duration::from_secs(10);
/// How long a connection may stay open with no call in progress.
pub const IDLE: Duration = Duration::from_secs(120);
/// Concurrent calls (streams) per connection.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 64;
/// The HTTP/2 flow-control windows (stream and connection): what a caller can send that has
/// not been read yet. 65,535 is the protocol's initial value; nothing is granted beyond it.
pub const WINDOW: u32 = 65_535;
/// The largest request message (requests are an audience list or one token).
pub const MAX_REQUEST: usize = 64 * 1024;
/// Request bytes read but not yet consumed by a call, per connection.
pub const CONNECTION_BUDGET: usize = 256 * 1024;
/// Request bytes read but not yet consumed by a call, across every connection.
pub const PROCESS_BUDGET: usize = 4 * 1024 * 1024;

/// Connections held per uid.
#[derive(Debug, Default, Clone)]
pub struct UidSlots(Arc<Mutex<HashMap<u32, usize>>>);

/// One uid's slot, given back when dropped.
#[derive(Debug)]
pub struct UidSlot {
    slots: UidSlots,
    uid: u32,
}

impl UidSlots {
    /// A slot for `uid`, or `None` when it holds [`MAX_PER_UID`].
    pub fn take(&self, uid: u32) -> Option<UidSlot> {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(uid).or_insert(0);
        if *n >= MAX_PER_UID {
            return None;
        }
        *n += 1;
        Some(UidSlot {
            slots: self.clone(),
            uid,
        })
    }
}

impl Drop for UidSlot {
    fn drop(&mut self) {
        let mut held = self.slots.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.uid);
            }
        }
    }
}

/// A byte budget shared by the bodies drawing on it.
#[derive(Debug, Clone)]
pub struct Budget {
    used: Arc<AtomicUsize>,
    max: usize,
}

impl Budget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            used: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Takes `n` bytes, or nothing when that would pass the maximum.
    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.max)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Why a request body stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection or the process holds its budget of request bytes.
    #[error("too many request bytes held (Workload API budget)")]
    OverBudget,
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] hyper::Error),
}

/// A request body whose bytes, once read, count against the connection's and the process's
/// budgets until the call drops the body.
#[derive(Debug)]
pub struct BudgetBody {
    inner: Incoming,
    budgets: [Budget; 2],
    held: usize,
}

impl BudgetBody {
    /// `inner`, drawing on `connection` and `process`.
    pub fn new(inner: Incoming, connection: Budget, process: Budget) -> Self {
        Self {
            inner,
            budgets: [connection, process],
            held: 0,
        }
    }
}

impl Body for BudgetBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let n = frame.data_ref().map_or(0, Bytes::len);
        if n > 0 {
            let [connection, process] = &self.budgets;
            if !connection.take(n) {
                return Poll::Ready(Some(Err(BodyError::OverBudget)));
            }
            if !process.take(n) {
                connection.give_back(n);
                return Poll::Ready(Some(Err(BodyError::OverBudget)));
            }
            self.held += n;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for BudgetBody {
    fn drop(&mut self) {
        for budget in &self.budgets {
            budget.give_back(self.held);
        }
    }
}

/// The calls in progress on one connection, for its idle deadline.
#[derive(Debug, Clone)]
pub struct OpenCalls(Arc<watch::Sender<usize>>);

/// One call in progress, until dropped (with its response body).
#[derive(Debug)]
pub struct OpenCall(Arc<watch::Sender<usize>>);

impl OpenCalls {
    /// No call yet.
    pub fn new() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }

    /// Counts a call opening.
    pub fn open(&self) -> OpenCall {
        self.0.send_modify(|n| *n += 1);
        OpenCall(self.0.clone())
    }

    /// Follows the count.
    pub fn watch(&self) -> watch::Receiver<usize> {
        self.0.subscribe()
    }
}

impl Default for OpenCalls {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for OpenCall {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}
