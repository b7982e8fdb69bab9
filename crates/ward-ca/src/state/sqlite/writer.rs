//! Group commit: one thread owns the write connection and commits batches of jobs.
//!
//! Each job runs inside its own savepoint, so one job's failure (a replayed token) rolls back
//! only that job. The batch commits once; only then does each caller learn its result. If the
//! commit fails (disk full, read-only file system) every job in the batch fails and nothing
//! was recorded, so nothing is returned to a client that the database does not hold; the
//! failure says whether the state directory itself can still be written.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use rusqlite::{Connection, MAIN_DB};
use tokio::sync::oneshot;

use crate::state::error::StateError;

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
    ///
    /// A state directory that cannot be written (a read-only mount, say) is refused here, so
    /// the daemon does not start only to refuse every issuance.
    pub fn start(path: &Path) -> Result<Self, StateError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let Some(why) = unwritable(&dir) {
            return Err(StateError::Unwritable(why));
        }
        let conn = super::open(path)?;
        if conn.is_readonly(MAIN_DB)? {
            return Err(StateError::Unwritable(format!(
                "state database {} can only be opened read-only",
                path.display()
            )));
        }
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("ward-ca-state".into())
            .spawn(move || run(conn, &dir, rx))
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

/// Why nothing can be written in `dir`, if creating a file there fails: SQLite reports a
/// file system that went read-only under it as "disk I/O error", which does not send an
/// operator to the mount. `None` when the directory takes a new file (a full disk usually
/// still does, and SQLite says "database or disk is full" itself).
fn unwritable(dir: &Path) -> Option<String> {
    let probe = dir.join(".ward-ca-write-probe");
    let created = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe);
    match created {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(format!(
            "state directory {} cannot be written: {e}",
            dir.display()
        )),
    }
}

fn run(conn: Connection, dir: &Path, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = commit_batch(&conn, dir, &mut batch);
        for (job, result) in batch.into_iter().zip(results) {
            let _ = job.done.send(result);
        }
    }
}

/// The message for a batch that could not be committed, with the directory's own account.
fn failure(e: &rusqlite::Error, dir: &Path) -> String {
    match unwritable(dir) {
        Some(why) => format!("{e} ({why})"),
        None => e.to_string(),
    }
}

fn commit_batch(conn: &Connection, dir: &Path, batch: &mut [Job]) -> Vec<Result<(), StateError>> {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let msg = failure(&e, dir);
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
            let msg = failure(&e, dir);
            tracing::error!(error = %msg, "state commit failed; nothing in this batch was recorded");
            results
                .into_iter()
                .map(|_| Err(StateError::Commit(msg.clone())))
                .collect()
        }
    }
}
