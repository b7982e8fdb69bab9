//! `ward-ca state copy` on PostgreSQL: a whole state written in one transaction, under a lock
//! that keeps replicas from writing meanwhile, and only into a database with no records.

use super::pool::db;
use super::{PgStore, CERT_COLUMNS};
use crate::authority::records::Snapshot;
use crate::state::error::StateError;

impl PgStore {
    pub(in crate::state) async fn import(&self, all: Snapshot) -> Result<(), StateError> {
        // No deadline: a large state takes as long as it takes, in one transaction.
        let mut c = self.pool.get().await?;
        let tx = c.client_mut().transaction().await.map_err(db)?;
        tx.execute(
            "LOCK TABLE certs, join_tokens, revocations IN EXCLUSIVE MODE",
            &[],
        )
        .await
        .map_err(db)?;
        let held: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM certs) + (SELECT count(*) FROM join_tokens) + (SELECT count(*) FROM revocations)",
                &[],
            )
            .await
            .map_err(db)?
            .get(0);
        if held > 0 {
            return Err(StateError::NotEmpty(format!("{held} records")));
        }
        let token = tx
            .prepare("INSERT INTO join_tokens (hash, token_id, spiffe_id, created_at, expires_at, used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .await
            .map_err(db)?;
        for t in &all.tokens {
            tx.execute(
                &token,
                &[
                    &t.hash,
                    &t.token_id,
                    &t.spiffe_id,
                    &t.created_at,
                    &t.expires_at,
                    &t.used_at,
                    &t.revoked_at,
                ],
            )
            .await
            .map_err(db)?;
        }
        let cert = tx
            .prepare(&format!("INSERT INTO certs ({CERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
            .await
            .map_err(db)?;
        for r in &all.certs {
            tx.execute(
                &cert,
                &[
                    &r.serial,
                    &r.spiffe_id,
                    &r.not_before,
                    &r.not_after,
                    &r.attestor,
                    &r.client,
                    &r.issued_at,
                    &r.parent_serial,
                    &r.issuer,
                    &r.fingerprint,
                ],
            )
            .await
            .map_err(db)?;
        }
        let revocation = tx
            .prepare("INSERT INTO revocations (spiffe_id, serial, reason, revoked_at) VALUES ($1, $2, $3, $4)")
            .await
            .map_err(db)?;
        for r in &all.revocations {
            tx.execute(
                &revocation,
                &[&r.spiffe_id, &r.serial, &r.reason, &r.revoked_at],
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }
}
