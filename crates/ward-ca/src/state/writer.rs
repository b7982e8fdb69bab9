//! Group commit: one thread owns the write connection and commits batches of jobs.
//!
//! Each job runs inside its own savepoint, so one job's failure (a replayed token) rolls back
//! only that job. The batch commits once; only then does each caller learn its result. If the
//! commit fails (disk full, read-only file system) every job in the batch fails and nothing
//! was recorded, so nothing is returned to a client that the database does not hold.

use std::path::Path;
use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::StateError;

/// Largest number of jobs committed together.
const MAX_BATCH: usize = 256;

type Work = Box<dyn FnOnce(&Connection) -> Result<(), StateError> + Send>;

struct Job {
    work: Work,
    done: oneshot::Sender<Result<(), StateError>>,
}

/// Handle to the writer thread; clones share it.
#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Writer {
    /// Opens the database and starts the writer thread.
    pub fn start(path: &Path) -> Result<Self, StateError> {
        let conn = super::open(path)?;
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("ward-ca-state".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StateError::Commit(format!("cannot start state writer: {e}")))?;
        Ok(Self { tx })
    }

    /// Runs `work` in the next batch and resolves once that batch has committed.
    pub async fn write(
        &self,
        work: impl FnOnce(&Connection) -> Result<(), StateError> + Send + 'static,
    ) -> Result<(), StateError> {
        let (done, result) = oneshot::channel();
        self.tx
            .send(Job {
                work: Box::new(work),
                done,
            })
            .map_err(|_| StateError::WriterGone)?;
        result.await.map_err(|_| StateError::WriterGone)?
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = commit_batch(&conn, &mut batch);
        for (job, result) in batch.into_iter().zip(results) {
            let _ = job.done.send(result);
        }
    }
}

fn commit_batch(conn: &Connection, batch: &mut [Job]) -> Vec<Result<(), StateError>> {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let msg = e.to_string();
        return batch
            .iter()
            .map(|_| Err(StateError::Commit(msg.clone())))
            .collect();
    }
    let mut results = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        let work = std::mem::replace(&mut job.work, Box::new(|_| Ok(())));
        let result = conn
            .execute_batch("SAVEPOINT job")
            .map_err(StateError::from)
            .and_then(|()| work(conn));
        // Always close the savepoint; a failed job is rolled back to it first.
        let end = if result.is_ok() {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        let closed = conn.execute_batch(end).map_err(StateError::from);
        results.push(result.and(closed));
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => results,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            let msg = e.to_string();
            tracing::error!(error = %msg, "state commit failed; nothing in this batch was recorded");
            results
                .into_iter()
                .map(|_| Err(StateError::Commit(msg.clone())))
                .collect()
        }
    }
}
