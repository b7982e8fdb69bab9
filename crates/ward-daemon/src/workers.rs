//! Connection workers: a fixed set of threads, each running its own single-threaded Tokio
//! runtime, that accepted connections are dealt to in turn (thread per core, as HAProxy and
//! Envoy run their connections).
//!
//! A connection and every task it spawns (hyper's per-stream tasks, the pooled connections it
//! opens) then stay on one thread: a request handed from one task to another wakes a task on
//! the same thread instead of another core, which on a multi-threaded work-stealing runtime
//! is most of what an HTTP request through a proxy costs (cross-core wake-ups and context
//! switches). [`PerWorker`] gives each worker its own copy of a pool so that its connections
//! never hand work to another thread.
//!
//! [`Workers::spawn_tcp`] re-registers the socket with the chosen worker's reactor, so its
//! readiness events are delivered on that thread. Stopping the workers (explicitly, or when
//! the last handle is dropped) ends their runtimes, which drops any task still running.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index of the worker thread this code runs on (`None` off the workers).
fn current_worker() -> Option<usize> {
    WORKER.with(Cell::get)
}

/// The connection worker threads.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stops: Mutex<Vec<oneshot::Sender<()>>>,
}

impl Workers {
    /// Starts `count` worker threads (at least one), named `{name}-{i}`.
    pub fn start(count: usize, name: &str) -> std::io::Result<Self> {
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || {
                    WORKER.with(|w| w.set(Some(index)));
                    // Until stopped (or every handle is gone); dropping the runtime then ends
                    // whatever tasks are left on it.
                    let _ = runtime.block_on(stopped);
                })?;
        }
        Ok(Self {
            handles,
            next: AtomicUsize::new(0),
            stops: Mutex::new(stops),
        })
    }

    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Always false: there is at least one worker.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Runs `serve` on the next worker (in turn) with `sock` registered on that worker's
    /// reactor. A socket that cannot be moved is closed and logged.
    pub fn spawn_tcp<S, F>(&self, sock: TcpStream, serve: S)
    where
        S: FnOnce(TcpStream) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let std = match sock.into_std() {
            Ok(std) => std,
            Err(e) => return tracing::warn!(error = %e, "cannot hand a connection to a worker"),
        };
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        let handle = &self.handles[index];
        // The socket is registered inside the task, that is on the worker's thread and with
        // its reactor, not with the accepting runtime's.
        handle.spawn(async move {
            match TcpStream::from_std(std) {
                Ok(sock) => serve(sock).await,
                Err(e) => tracing::warn!(error = %e, "cannot register a connection on its worker"),
            }
        });
    }

    /// Ends every worker's runtime (tasks still running on them are dropped).
    pub fn stop(&self) {
        if let Ok(mut stops) = self.stops.lock() {
            for stop in stops.drain(..) {
                let _ = stop.send(());
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `T` per worker: each worker's connections use its own, so a pool's connections live
/// on the thread whose requests they carry.
#[derive(Debug)]
pub struct PerWorker<T> {
    items: Vec<T>,
}

impl<T> PerWorker<T> {
    /// `make()` once per worker of `workers` (at least one).
    pub fn new(workers: usize, mut make: impl FnMut() -> T) -> Self {
        Self {
            items: (0..workers.max(1)).map(|_| make()).collect(),
        }
    }

    /// The calling worker's `T` (the first one for code off the workers).
    pub fn get(&self) -> &T {
        &self.items[current_worker().unwrap_or(0) % self.items.len()]
    }

    /// Every copy (to reset them all).
    pub fn all(&self) -> &[T] {
        &self.items
    }
}
