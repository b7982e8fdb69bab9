//! The PostgreSQL schema and its forward-only migrations.
//!
//! Replicas starting at once must not race each other through a migration: each migrates
//! inside one transaction that first takes a transaction-scoped advisory lock, so the second
//! replica waits, then finds the schema current and does nothing. The version lives in a
//! one-row table, `ward_schema`.

use super::pool::{db, Conn};
use crate::state::error::StateError;

/// The advisory lock key held while migrating (`'ward' 'ca'` in ASCII).
const MIGRATION_LOCK: i64 = 0x7761_7264_6361;

/// Forward-only migrations; entry `i` takes the schema from version `i` to `i + 1`. The
/// tables hold the same rows as SQLite's (schema version 3 there).
const MIGRATIONS: &[&str] = &[
    // 1: certificates, join tokens, revocations.
    "CREATE TABLE certs (
        serial TEXT PRIMARY KEY,
        spiffe_id TEXT NOT NULL,
        not_before BIGINT NOT NULL,
        not_after BIGINT NOT NULL,
        attestor TEXT NOT NULL,
        client TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        parent_serial TEXT,
        issuer TEXT,
        fingerprint TEXT
     );
     CREATE INDEX certs_by_id ON certs (spiffe_id, not_after);
     CREATE INDEX certs_by_parent ON certs (parent_serial);
     CREATE TABLE join_tokens (
        hash TEXT PRIMARY KEY,
        token_id TEXT NOT NULL UNIQUE,
        spiffe_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT,
        revoked_at BIGINT
     );
     CREATE TABLE revocations (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        spiffe_id TEXT,
        serial TEXT,
        reason TEXT NOT NULL,
        revoked_at BIGINT NOT NULL,
        CHECK ((spiffe_id IS NULL) <> (serial IS NULL))
     );
     CREATE INDEX revocations_by_id ON revocations (spiffe_id);
     CREATE INDEX revocations_by_serial ON revocations (serial);",
    // 2: the CA's own generations (keys sealed under the KEK), its rotation journal, and
    // the replicas' heartbeats (see `ca.rs`).
    "CREATE TABLE ca_generations (
        id TEXT PRIMARY KEY,
        role TEXT UNIQUE CHECK (role IN ('signing', 'next', 'previous')),
        root_pem TEXT NOT NULL,
        root_key BYTEA,
        issuer_pem TEXT NOT NULL,
        issuer_key BYTEA,
        kek_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        retired_at BIGINT
     );
     CREATE TABLE ca_rotation (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        version BIGINT NOT NULL,
        phase TEXT NOT NULL,
        new_root BOOLEAN NOT NULL,
        prepared_at BIGINT,
        activated_at BIGINT,
        bundle_version BIGINT NOT NULL
     );
     CREATE TABLE ca_replicas (
        replica TEXT PRIMARY KEY,
        ca_version BIGINT NOT NULL,
        started_at BIGINT NOT NULL,
        seen_at BIGINT NOT NULL
     );",
    // 3: each generation's JWT-SVID signing key, sealed like the others (NULL in generations
    // made before JWT-SVIDs).
    "ALTER TABLE ca_generations ADD COLUMN jwt_key BYTEA;",
    // 4: federation: the last good bundle of each foreign trust domain (as in SQLite).
    "CREATE TABLE federated_bundles (
        trust_domain TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        sequence BIGINT NOT NULL,
        refreshed_at BIGINT NOT NULL
     );",
];

/// The newest schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`SCHEMA_VERSION`], under the migration lock.
pub async fn migrate(conn: &mut Conn) -> Result<(), StateError> {
    let tx = conn.client_mut().transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    // `CREATE TABLE IF NOT EXISTS` of a table that exists is a NOTICE at every start, which
    // the driver logs at INFO: not news for an operator.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(db)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS ward_schema (version BIGINT NOT NULL)")
        .await
        .map_err(db)?;
    let found: i64 = tx
        .query_opt("SELECT version FROM ward_schema", &[])
        .await
        .map_err(db)?
        .map_or(0, |row| row.get(0));
    if found > SCHEMA_VERSION {
        return Err(StateError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for sql in MIGRATIONS.iter().skip(found.max(0) as usize) {
        tx.batch_execute(sql).await.map_err(db)?;
    }
    if found < SCHEMA_VERSION {
        tx.execute("DELETE FROM ward_schema", &[])
            .await
            .map_err(db)?;
        tx.execute(
            "INSERT INTO ward_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await
        .map_err(db)?;
        tracing::info!(
            from = found,
            to = SCHEMA_VERSION,
            "PostgreSQL schema migrated"
        );
    }
    tx.commit().await.map_err(db)
}

/// The schema version the database holds (0 when it has none yet), read without changing
/// anything.
pub async fn found(conn: &Conn) -> Result<i64, StateError> {
    let exists = conn
        .client()
        .query_one("SELECT to_regclass('ward_schema') IS NOT NULL", &[])
        .await
        .map_err(db)?
        .get::<_, bool>(0);
    if !exists {
        return Ok(0);
    }
    Ok(conn
        .client()
        .query_opt("SELECT version FROM ward_schema", &[])
        .await
        .map_err(db)?
        .map_or(0, |row| row.get(0)))
}
