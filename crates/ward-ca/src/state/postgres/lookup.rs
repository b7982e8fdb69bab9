//! Join-token lookups of concurrent enrollments answered by one statement
//! (`... WHERE hash = ANY($1)`): under load, one round trip for many requests instead of one
//! each, which on a machine shared with the database is mostly context switches saved. A lone
//! request waits for nobody: the task sends whatever is queued when it gets to run.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::pool::{db, Pool};
use super::{bounded, gather, token_row};
use crate::authority::records::TokenRecord;
use crate::state::error::StateError;

/// Largest number of lookups sent together.
const MAX_BATCH: usize = 256;

type Answer = Result<Option<TokenRecord>, StateError>;

/// The handle requests look tokens up through.
#[derive(Debug, Clone)]
pub struct TokenLookups {
    tx: mpsc::UnboundedSender<(String, oneshot::Sender<Answer>)>,
}

impl TokenLookups {
    /// Starts the lookup task over `pool` (on the current runtime).
    pub fn start(pool: Arc<Pool>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, rx));
        Self { tx }
    }

    /// The token with this hash, if any.
    pub async fn get(&self, hash: &str) -> Answer {
        let (done, answer) = oneshot::channel();
        self.tx
            .send((hash.to_owned(), done))
            .map_err(|_| StateError::WriterGone)?;
        answer.await.map_err(|_| StateError::WriterGone)?
    }
}

async fn run(pool: Arc<Pool>, mut rx: mpsc::UnboundedReceiver<(String, oneshot::Sender<Answer>)>) {
    while let Some(first) = rx.recv().await {
        let batch = gather(&mut rx, first, MAX_BATCH).await;
        let hashes: Vec<&str> = batch.iter().map(|(h, _)| h.as_str()).collect();
        match bounded(find(&pool, &hashes)).await {
            Ok(found) => {
                // Several requests may ask for one token (a replayed token): each gets it.
                for (hash, done) in batch {
                    let _ = done.send(Ok(found.get(&hash).cloned()));
                }
            }
            Err(e) => {
                for (_, done) in batch {
                    let _ = done.send(Err(match &e {
                        StateError::Unavailable(_) => e.for_waiter(),
                        other => StateError::Unavailable(other.to_string()),
                    }));
                }
            }
        }
    }
}

async fn find(pool: &Pool, hashes: &[&str]) -> Result<HashMap<String, TokenRecord>, StateError> {
    let mut c = pool.get().await?;
    let s = c
        .prepared("SELECT hash, token_id, spiffe_id, created_at, expires_at, used_at, revoked_at FROM join_tokens WHERE hash = ANY($1::text[])")
        .await?;
    let rows = c.client().query(&s, &[&hashes]).await.map_err(db)?;
    Ok(rows
        .iter()
        .map(|r| {
            let t = token_row(r);
            (t.hash.clone(), t)
        })
        .collect())
}
