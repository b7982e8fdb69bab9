//! SQLite queries over the [`records`](crate::authority::records) types. Every function takes a
//! connection, so the same code serves the writer's batches, the read pool and the tests.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::authority::records::{CertRecord, Revocation, TokenRecord};
use crate::state::error::StateError;

fn cert_row(r: &Row<'_>) -> rusqlite::Result<CertRecord> {
    Ok(CertRecord {
        serial: r.get(0)?,
        spiffe_id: r.get(1)?,
        not_before: r.get(2)?,
        not_after: r.get(3)?,
        attestor: r.get(4)?,
        client: r.get(5)?,
        issued_at: r.get(6)?,
        parent_serial: r.get(7)?,
        issuer: r.get(8)?,
        fingerprint: r.get(9)?,
    })
}

fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        hash: r.get(0)?,
        token_id: r.get(1)?,
        spiffe_id: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        used_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

fn revocation_row(r: &Row<'_>) -> rusqlite::Result<Revocation> {
    Ok(Revocation {
        spiffe_id: r.get(0)?,
        serial: r.get(1)?,
        reason: r.get(2)?,
        revoked_at: r.get(3)?,
    })
}

/// Records an issued certificate. A duplicate serial is an error (the primary key).
pub fn insert_cert(conn: &Connection, c: &CertRecord) -> Result<(), StateError> {
    conn.prepare_cached(
        "INSERT INTO certs (serial, spiffe_id, not_before, not_after, attestor, client, issued_at, parent_serial, issuer, fingerprint)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![c.serial, c.spiffe_id, c.not_before, c.not_after, c.attestor, c.client, c.issued_at, c.parent_serial, c.issuer, c.fingerprint])?;
    Ok(())
}

/// Issued certificates, newest first, optionally for one ID.
pub fn list_certs(
    conn: &Connection,
    spiffe_id: Option<&str>,
) -> Result<Vec<CertRecord>, StateError> {
    let mut stmt = conn.prepare(
        "SELECT serial, spiffe_id, not_before, not_after, attestor, client, issued_at, parent_serial, issuer, fingerprint
         FROM certs WHERE ?1 IS NULL OR spiffe_id = ?1 ORDER BY issued_at DESC, serial",
    )?;
    let rows = stmt.query_map(params![spiffe_id], cert_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// See [`crate::state::Store::live_certs_of`].
pub fn live_certs_of(
    conn: &Connection,
    issuer: &str,
    now: i64,
) -> Result<(i64, Option<i64>), StateError> {
    Ok(conn.query_row(
        "SELECT count(*), max(not_after) FROM certs
         WHERE not_after > ?2 AND issuer = ?1 AND attestor <> 'ca'
           AND NOT EXISTS (SELECT 1 FROM certs AS renewed WHERE renewed.parent_serial = certs.serial)
           AND NOT EXISTS (SELECT 1 FROM revocations AS r
                           WHERE r.serial = certs.serial
                              OR (r.spiffe_id = certs.spiffe_id AND certs.issued_at <= r.revoked_at))",
        params![issuer, now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// The certificate with this serial, if recorded.
pub fn find_cert(conn: &Connection, serial: &str) -> Result<Option<CertRecord>, StateError> {
    Ok(conn
        .prepare_cached(
            "SELECT serial, spiffe_id, not_before, not_after, attestor, client, issued_at, parent_serial, issuer, fingerprint
             FROM certs WHERE serial = ?1",
        )?
        .query_row(params![serial], cert_row)
        .optional()?)
}

/// Stores a new join token.
pub fn insert_token(conn: &Connection, t: &TokenRecord) -> Result<(), StateError> {
    conn.execute(
        "INSERT INTO join_tokens (hash, token_id, spiffe_id, created_at, expires_at, used_at, revoked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![t.hash, t.token_id, t.spiffe_id, t.created_at, t.expires_at, t.used_at, t.revoked_at],
    )?;
    Ok(())
}

/// The token with this hash, if any.
pub fn find_token(conn: &Connection, hash: &str) -> Result<Option<TokenRecord>, StateError> {
    Ok(conn
        .prepare_cached(
            "SELECT hash, token_id, spiffe_id, created_at, expires_at, used_at, revoked_at
             FROM join_tokens WHERE hash = ?1",
        )?
        .query_row(params![hash], token_row)
        .optional()?)
}

/// Marks a token used, only if it is still unused, unrevoked and unexpired at `now`. This is
/// the single atomic step that makes a token single-use, across restarts too.
pub fn consume_token(conn: &Connection, hash: &str, now: i64) -> Result<(), StateError> {
    let changed = conn
        .prepare_cached(
            "UPDATE join_tokens SET used_at = ?2
             WHERE hash = ?1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?2",
        )?
        .execute(params![hash, now])?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StateError::TokenUnusable)
    }
}

/// All tokens, newest first.
pub fn list_tokens(conn: &Connection) -> Result<Vec<TokenRecord>, StateError> {
    let mut stmt = conn.prepare(
        "SELECT hash, token_id, spiffe_id, created_at, expires_at, used_at, revoked_at
         FROM join_tokens ORDER BY created_at DESC, token_id",
    )?;
    let rows = stmt.query_map([], token_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes the unused token with this id.
pub fn revoke_token(conn: &Connection, token_id: &str, now: i64) -> Result<(), StateError> {
    let changed = conn.execute(
        "UPDATE join_tokens SET revoked_at = ?2 WHERE token_id = ?1 AND revoked_at IS NULL",
        params![token_id, now],
    )?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StateError::NotFound(format!(
            "no unrevoked join token with id {token_id}"
        )))
    }
}

/// Records a revocation.
pub fn insert_revocation(conn: &Connection, r: &Revocation) -> Result<(), StateError> {
    conn.execute(
        "INSERT INTO revocations (spiffe_id, serial, reason, revoked_at) VALUES (?1, ?2, ?3, ?4)",
        params![r.spiffe_id, r.serial, r.reason, r.revoked_at],
    )?;
    Ok(())
}

/// Deletes the records of certificates that expired before `before`; how many.
pub fn prune_certs(conn: &Connection, before: i64) -> Result<usize, StateError> {
    Ok(conn.execute("DELETE FROM certs WHERE not_after < ?1", params![before])?)
}

/// Every revocation, oldest first.
pub fn revocations(conn: &Connection) -> Result<Vec<Revocation>, StateError> {
    let mut stmt = conn.prepare_cached(
        "SELECT spiffe_id, serial, reason, revoked_at FROM revocations ORDER BY seq",
    )?;
    let rows = stmt.query_map([], revocation_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The revocation covering a certificate with these facts, if any.
pub fn revocation_for(
    conn: &Connection,
    serial: &str,
    spiffe_id: &str,
    issued_at: i64,
) -> Result<Option<Revocation>, StateError> {
    Ok(conn
        .prepare_cached(
            "SELECT spiffe_id, serial, reason, revoked_at FROM revocations
             WHERE serial = ?1 OR (spiffe_id = ?2 AND revoked_at >= ?3) ORDER BY seq LIMIT 1",
        )?
        .query_row(params![serial, spiffe_id, issued_at], revocation_row)
        .optional()?)
}

/// A number that changes whenever the revocation list changes (for ETags and sequences).
pub fn revocation_generation(conn: &Connection) -> Result<i64, StateError> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM revocations", [], |r| {
            r.get(0)
        })?,
    )
}
