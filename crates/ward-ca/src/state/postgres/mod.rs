//! The PostgreSQL backend: the shared state of several equal CA replicas.
//!
//! Every guarantee of [`Store`](super::Store) holds across replicas because each one is a
//! single statement, and so a single transaction, in the database: issuing with a join token
//! is one `WITH used AS (UPDATE join_tokens ... RETURNING) INSERT INTO certs ... FROM used`
//! (for a whole batch of concurrent issuances at once, [`batch`]), so of any number of
//! concurrent uses of one token (on any replicas) exactly one updates the row and records its
//! certificate, and the others find it used; a revocation is one insert
//! that every replica's next read sees. Commits are durable when they return
//! (`synchronous_commit` is the server's, `on` by default, and ward does not lower it). The
//! revocation list's generation is its length (revocations are never deleted), read in the
//! same statement as the list, so replicas serving the same list serve the same sequence.
//! Under load an enrollment costs a share of one batched token lookup ([`lookup`]) and of one
//! batched issuing statement ([`batch`]); a batcher that finds few waiting gives the request
//! handlers already running a turn or two to join before it sends ([`gather`]). The CA's own
//! generations live here too, for replicas ([`ca`]).

pub mod batch;
pub mod ca;
mod copy;
mod federation;
pub mod lookup;
pub mod pool;
pub mod schema;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Row;

use self::batch::Batcher;
use self::lookup::TokenLookups;
use self::pool::{db, Pool, Target};
use crate::authority::records::{CertRecord, Revocation, TokenRecord};
use crate::state::error::{Probe, StateError};

/// Longest one state operation may take, connecting included.
const OP_TIMEOUT: Duration = Duration::from_secs(10);

const CERT_COLUMNS: &str = "serial, spiffe_id, not_before, not_after, attestor, client, issued_at, parent_serial, issuer, fingerprint";

/// The PostgreSQL implementation of [`Store`](super::Store).
#[derive(Debug)]
pub struct PgStore {
    pool: Arc<Pool>,
    /// Records issuances in batches (group commit).
    batcher: Batcher,
    /// Looks join tokens up in batches.
    lookups: TokenLookups,
}

fn cert_row(r: &Row) -> CertRecord {
    CertRecord {
        serial: r.get(0),
        spiffe_id: r.get(1),
        not_before: r.get(2),
        not_after: r.get(3),
        attestor: r.get(4),
        client: r.get(5),
        issued_at: r.get(6),
        parent_serial: r.get(7),
        issuer: r.get(8),
        fingerprint: r.get(9),
    }
}

fn token_row(r: &Row) -> TokenRecord {
    TokenRecord {
        hash: r.get(0),
        token_id: r.get(1),
        spiffe_id: r.get(2),
        created_at: r.get(3),
        expires_at: r.get(4),
        used_at: r.get(5),
        revoked_at: r.get(6),
    }
}

fn revocation_row(r: &Row) -> Revocation {
    Revocation {
        spiffe_id: r.get(0),
        serial: r.get(1),
        reason: r.get(2),
        revoked_at: r.get(3),
    }
}

/// `first` and whatever else is waiting on `rx`, up to `max` in all. While few are waiting
/// and more keep coming, the task yields (up to [`MAX_YIELDS`] times), so that request
/// handlers already running on the runtime add theirs: one statement for them all costs the
/// database far less than one each. It never waits on a timer: alone, a request goes at once.
async fn gather<T>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    first: T,
    max: usize,
) -> Vec<T> {
    let mut batch = vec![first];
    let mut yields = 0;
    loop {
        let before = batch.len();
        while batch.len() < max {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let grew = batch.len() > before || yields == 0;
        if !grew || yields >= MAX_YIELDS || batch.len() >= SMALL_BATCH {
            return batch;
        }
        yields += 1;
        tokio::task::yield_now().await;
    }
}

/// Below this many waiting, [`gather`] gives others a turn to add to the batch.
const SMALL_BATCH: usize = 16;
/// At most this many turns.
const MAX_YIELDS: usize = 4;

/// Runs `op` within [`OP_TIMEOUT`].
async fn bounded<T>(
    op: impl std::future::Future<Output = Result<T, StateError>>,
) -> Result<T, StateError> {
    tokio::time::timeout(OP_TIMEOUT, op)
        .await
        .unwrap_or_else(|_| {
            Err(StateError::Unavailable(format!(
                "PostgreSQL did not answer within {}s",
                OP_TIMEOUT.as_secs()
            )))
        })
}

/// Connects to `target` and reads its schema version, changing nothing.
pub async fn probe(target: &Target) -> Result<Probe, StateError> {
    let conn = bounded(target.connect()).await?;
    Ok(Probe {
        engine: target.describe(),
        schema: bounded(schema::found(&conn)).await?,
        known: schema::SCHEMA_VERSION,
    })
}

impl PgStore {
    /// Connects once, migrates under the migration lock, and keeps `pool_size` connections.
    pub async fn open(target: Target, pool_size: usize) -> Result<Self, StateError> {
        let mut first = bounded(target.connect()).await?;
        bounded(schema::migrate(&mut first)).await?;
        drop(first);
        let pool = Arc::new(Pool::new(target, pool_size));
        Ok(Self {
            batcher: Batcher::start(pool.clone()),
            lookups: TokenLookups::start(pool.clone()),
            pool,
        })
    }

    /// Whether the database answers now (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            c.client().simple_query("SELECT 1").await.map_err(db)?;
            Ok(())
        })
        .await
    }

    pub(super) async fn issue(
        &self,
        cert: CertRecord,
        token_hash: Option<String>,
    ) -> Result<(), StateError> {
        self.batcher.issue(cert, token_hash).await
    }

    pub(super) async fn revoke(&self, r: Revocation) -> Result<(), StateError> {
        bounded(async {
            let mut c = self.pool.get().await?;
            let s = c
                .prepared("INSERT INTO revocations (spiffe_id, serial, reason, revoked_at) VALUES ($1, $2, $3, $4)")
                .await?;
            c.client()
                .execute(&s, &[&r.spiffe_id, &r.serial, &r.reason, &r.revoked_at])
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub(super) async fn prune_certs(&self, before: i64) -> Result<u64, StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            c.client()
                .execute("DELETE FROM certs WHERE not_after < $1", &[&before])
                .await
                .map_err(db)
        })
        .await
    }

    pub(super) async fn create_token(&self, t: TokenRecord) -> Result<(), StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            c.client()
                .execute(
                    "INSERT INTO join_tokens (hash, token_id, spiffe_id, created_at, expires_at, used_at, revoked_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&t.hash, &t.token_id, &t.spiffe_id, &t.created_at, &t.expires_at, &t.used_at, &t.revoked_at],
                )
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub(super) async fn revoke_token(&self, token_id: &str, now: i64) -> Result<(), StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            let changed = c
                .client()
                .execute(
                    "UPDATE join_tokens SET revoked_at = $2 WHERE token_id = $1 AND revoked_at IS NULL",
                    &[&token_id, &now],
                )
                .await
                .map_err(db)?;
            if changed == 1 {
                Ok(())
            } else {
                Err(StateError::NotFound(format!(
                    "no unrevoked join token with id {token_id}"
                )))
            }
        })
        .await
    }

    pub(super) async fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StateError> {
        self.lookups.get(hash).await
    }

    pub(super) async fn tokens(&self) -> Result<Vec<TokenRecord>, StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            let rows = c
                .client()
                .query(
                    "SELECT hash, token_id, spiffe_id, created_at, expires_at, used_at, revoked_at
                     FROM join_tokens ORDER BY created_at DESC, token_id",
                    &[],
                )
                .await
                .map_err(db)?;
            Ok(rows.iter().map(token_row).collect())
        })
        .await
    }

    pub(super) async fn cert(&self, serial: &str) -> Result<Option<CertRecord>, StateError> {
        bounded(async {
            let mut c = self.pool.get().await?;
            let s = c
                .prepared("SELECT serial, spiffe_id, not_before, not_after, attestor, client, issued_at, parent_serial, issuer, fingerprint FROM certs WHERE serial = $1")
                .await?;
            let row = c.client().query_opt(&s, &[&serial]).await.map_err(db)?;
            Ok(row.as_ref().map(cert_row))
        })
        .await
    }

    pub(super) async fn certs(
        &self,
        spiffe_id: Option<&str>,
    ) -> Result<Vec<CertRecord>, StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            let sql = format!(
                "SELECT {CERT_COLUMNS} FROM certs WHERE $1::TEXT IS NULL OR spiffe_id = $1
                 ORDER BY issued_at DESC, serial"
            );
            let rows = c.client().query(&sql, &[&spiffe_id]).await.map_err(db)?;
            Ok(rows.iter().map(cert_row).collect())
        })
        .await
    }

    pub(super) async fn revocation_for(
        &self,
        serial: &str,
        spiffe_id: &str,
        issued_at: i64,
    ) -> Result<Option<Revocation>, StateError> {
        bounded(async {
            let mut c = self.pool.get().await?;
            let s = c
                .prepared(
                    "SELECT spiffe_id, serial, reason, revoked_at FROM revocations
                     WHERE serial = $1 OR (spiffe_id = $2 AND revoked_at >= $3) ORDER BY seq LIMIT 1",
                )
                .await?;
            let row = c
                .client()
                .query_opt(&s, &[&serial, &spiffe_id, &issued_at])
                .await
                .map_err(db)?;
            Ok(row.as_ref().map(revocation_row))
        })
        .await
    }

    pub(super) async fn standing(
        &self,
        serial: &str,
        spiffe_id: &str,
        issued_at: i64,
    ) -> Result<(Option<CertRecord>, Option<Revocation>), StateError> {
        bounded(async {
            let mut c = self.pool.get().await?;
            // One row: the record's columns (NULL when unrecorded), then the first covering
            // revocation's (NULL when none).
            let s = c
                .prepared(
                    "SELECT c.serial, c.spiffe_id, c.not_before, c.not_after, c.attestor, c.client, c.issued_at, c.parent_serial, c.issuer, c.fingerprint,
                            r.spiffe_id, r.serial, r.reason, r.revoked_at
                     FROM (SELECT 1) AS one
                     LEFT JOIN certs AS c ON c.serial = $1
                     LEFT JOIN LATERAL (
                        SELECT spiffe_id, serial, reason, revoked_at FROM revocations
                        WHERE serial = $1 OR (spiffe_id = $2 AND revoked_at >= $3) ORDER BY seq LIMIT 1
                     ) AS r ON true",
                )
                .await?;
            let row = c
                .client()
                .query_one(&s, &[&serial, &spiffe_id, &issued_at])
                .await
                .map_err(db)?;
            let cert = row
                .get::<_, Option<String>>(0)
                .is_some()
                .then(|| cert_row(&row));
            let revocation = row
                .get::<_, Option<i64>>(13)
                .is_some()
                .then(|| Revocation {
                    spiffe_id: row.get(10),
                    serial: row.get(11),
                    reason: row.get(12),
                    revoked_at: row.get(13),
                });
            Ok((cert, revocation))
        })
        .await
    }

    pub(super) async fn revocations(&self) -> Result<(Vec<Revocation>, i64), StateError> {
        bounded(async {
            let mut c = self.pool.get().await?;
            let s = c
                .prepared(
                    "SELECT spiffe_id, serial, reason, revoked_at FROM revocations ORDER BY seq",
                )
                .await?;
            let rows = c.client().query(&s, &[]).await.map_err(db)?;
            let list: Vec<Revocation> = rows.iter().map(revocation_row).collect();
            let generation = i64::try_from(list.len()).unwrap_or(i64::MAX);
            Ok((list, generation))
        })
        .await
    }

    pub(super) async fn live_certs_of(
        &self,
        issuer: &str,
        now: i64,
    ) -> Result<(i64, Option<i64>), StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            let row = c
                .client()
                .query_one(
                    "SELECT count(*), max(not_after) FROM certs
                     WHERE not_after > $2 AND issuer = $1 AND attestor <> 'ca'
                       AND NOT EXISTS (SELECT 1 FROM certs AS renewed WHERE renewed.parent_serial = certs.serial)
                       AND NOT EXISTS (SELECT 1 FROM revocations AS r
                                       WHERE r.serial = certs.serial
                                          OR (r.spiffe_id = certs.spiffe_id AND certs.issued_at <= r.revoked_at))",
                    &[&issuer, &now],
                )
                .await
                .map_err(db)?;
            Ok((row.get(0), row.get(1)))
        })
        .await
    }
}
