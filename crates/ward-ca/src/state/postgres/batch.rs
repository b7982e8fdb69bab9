//! Group commit on PostgreSQL: the issuances of concurrent requests recorded by one statement,
//! in one transaction, with one WAL flush, as the SQLite writer batches its jobs.
//!
//! A task takes whatever issuances are waiting (up to [`MAX_BATCH`]) and sends them as arrays
//! to a single `WITH input AS (SELECT * FROM unnest(...)) , used AS (UPDATE join_tokens ...
//! RETURNING) INSERT INTO certs ... RETURNING serial`: a certificate whose token was not
//! consumed by this very statement is not recorded. Two issuances of one batch naming the same
//! token are not both sent (the later ones are refused at once: at most one can win, and an
//! `UPDATE ... FROM` with duplicate input rows would consume the token once but report it to
//! both). Every caller learns its result only after the commit; a failed batch fails every
//! issuance in it, none of which was recorded.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::pool::{db, Pool};
use super::{bounded, gather};
use crate::authority::records::CertRecord;
use crate::state::error::StateError;

/// Largest number of issuances recorded together.
pub const MAX_BATCH: usize = 128;

const ISSUE_BATCH: &str = "WITH input AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::text[], $7::int8[], $8::text[], $9::text[], $10::text[], $11::text[])
          AS t(serial, spiffe_id, not_before, not_after, attestor, client, issued_at, parent_serial, issuer, fingerprint, token_hash)),
     used AS (
        UPDATE join_tokens AS j SET used_at = i.issued_at FROM input AS i
        WHERE i.token_hash IS NOT NULL AND j.hash = i.token_hash
          AND j.used_at IS NULL AND j.revoked_at IS NULL AND j.expires_at > i.issued_at
        RETURNING j.hash)
     INSERT INTO certs (serial, spiffe_id, not_before, not_after, attestor, client, issued_at, parent_serial, issuer, fingerprint)
     SELECT serial, spiffe_id, not_before, not_after, attestor, client, issued_at, parent_serial, issuer, fingerprint
     FROM input WHERE token_hash IS NULL OR token_hash IN (SELECT hash FROM used)
     RETURNING serial";

struct Job {
    cert: CertRecord,
    token_hash: Option<String>,
    done: oneshot::Sender<Result<(), StateError>>,
}

/// The handle requests record their issuances through.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Batcher {
    /// Starts the batching task over `pool` (on the current runtime).
    pub fn start(pool: Arc<Pool>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, rx));
        Self { tx }
    }

    /// Records `cert` (consuming `token_hash` first, if given) in the next batch; resolves
    /// once that batch has committed.
    pub async fn issue(
        &self,
        cert: CertRecord,
        token_hash: Option<String>,
    ) -> Result<(), StateError> {
        let (done, result) = oneshot::channel();
        self.tx
            .send(Job {
                cert,
                token_hash,
                done,
            })
            .map_err(|_| StateError::WriterGone)?;
        result.await.map_err(|_| StateError::WriterGone)?
    }
}

async fn run(pool: Arc<Pool>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let batch = gather(&mut rx, first, MAX_BATCH).await;
        // One token per batch: the later claimants lose at once.
        let mut claimed = HashSet::new();
        let mut sent = Vec::with_capacity(batch.len());
        for job in batch {
            match &job.token_hash {
                Some(hash) if !claimed.insert(hash.clone()) => {
                    let _ = job.done.send(Err(StateError::TokenUnusable));
                }
                _ => sent.push(job),
            }
        }
        match bounded(record(&pool, &sent)).await {
            Ok(recorded) => {
                for job in sent {
                    let result = if recorded.contains(&job.cert.serial) {
                        Ok(())
                    } else {
                        Err(StateError::TokenUnusable)
                    };
                    let _ = job.done.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, issuances = sent.len(), "state commit failed; nothing in this batch was recorded");
                let unavailable = matches!(e, StateError::Unavailable(_));
                for job in sent {
                    let _ = job.done.send(Err(if unavailable {
                        e.for_waiter()
                    } else {
                        StateError::Commit(match &e {
                            StateError::Commit(m) => m.clone(),
                            other => other.to_string(),
                        })
                    }));
                }
            }
        }
    }
}

/// Sends one batch; the serials recorded.
async fn record(pool: &Pool, jobs: &[Job]) -> Result<HashSet<String>, StateError> {
    let mut conn = pool.get().await?;
    let statement = conn.prepared(ISSUE_BATCH).await?;
    let col = |f: fn(&Job) -> Option<String>| jobs.iter().map(f).collect::<Vec<_>>();
    let int = |f: fn(&Job) -> i64| jobs.iter().map(f).collect::<Vec<_>>();
    let serial = col(|j| Some(j.cert.serial.clone()));
    let spiffe_id = col(|j| Some(j.cert.spiffe_id.clone()));
    let not_before = int(|j| j.cert.not_before);
    let not_after = int(|j| j.cert.not_after);
    let attestor = col(|j| Some(j.cert.attestor.clone()));
    let client = col(|j| Some(j.cert.client.clone()));
    let issued_at = int(|j| j.cert.issued_at);
    let parent = col(|j| j.cert.parent_serial.clone());
    let issuer = col(|j| j.cert.issuer.clone());
    let fingerprint = col(|j| j.cert.fingerprint.clone());
    let token = col(|j| j.token_hash.clone());
    let rows = conn
        .client()
        .query(
            &statement,
            &[
                &serial,
                &spiffe_id,
                &not_before,
                &not_after,
                &attestor,
                &client,
                &issued_at,
                &parent,
                &issuer,
                &fingerprint,
                &token,
            ],
        )
        .await
        .map_err(db)?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}
