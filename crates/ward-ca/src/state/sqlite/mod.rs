//! The SQLite backend: one file, embedded, for a single CA node (and `make demo`).
//!
//! The database runs in WAL mode with `synchronous=FULL`, so a commit is on disk before it
//! returns, and operator commands (`ward-ca token create`, `ward-ca revoke`) can write while
//! the daemon runs. Nothing is returned to a client before the commit that records it: the
//! daemon's writes go through [`writer::Writer`], which batches concurrent issuances into one
//! transaction (one fsync for many certificates, each in its own savepoint) and only then
//! answers each caller. A crash at any point leaves either the whole batch or none of it.
//! Schema versions live in `PRAGMA user_version` and migrate forward in one transaction,
//! under SQLite's write lock (`BEGIN IMMEDIATE`), so processes starting together migrate once.

mod federation;
pub mod queries;
/// The federation statements, shared with PostgreSQL (the same SQL runs on both).
pub(crate) mod federation_sql {
    pub(crate) use super::federation::{DELETE, SELECT, UPSERT};
}
pub mod writer;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use self::writer::Writer;
use crate::authority::records::{CertRecord, Revocation, Snapshot, TokenRecord};
use crate::state::error::{Probe, StateError};

impl From<rusqlite::Error> for StateError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(Box::new(e))
    }
}

/// Forward-only migrations; entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: certificates, join tokens, revocations, metadata.
    "CREATE TABLE certs (
        serial TEXT PRIMARY KEY NOT NULL,
        spiffe_id TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        attestor TEXT NOT NULL,
        client TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        parent_serial TEXT
     ) STRICT;
     CREATE INDEX certs_by_id ON certs (spiffe_id, not_after);
     CREATE TABLE join_tokens (
        hash TEXT PRIMARY KEY NOT NULL,
        token_id TEXT NOT NULL UNIQUE,
        spiffe_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        revoked_at INTEGER
     ) STRICT;
     CREATE TABLE revocations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        spiffe_id TEXT,
        serial TEXT,
        reason TEXT NOT NULL,
        revoked_at INTEGER NOT NULL,
        CHECK ((spiffe_id IS NULL) <> (serial IS NULL))
     ) STRICT;
     CREATE INDEX revocations_by_id ON revocations (spiffe_id);
     CREATE INDEX revocations_by_serial ON revocations (serial);",
    // 2: which issuer signed each certificate (serial of the issuing CA certificate), so
    // `ward-ca rotate finish` can tell whether anything live still chains to the old one.
    // Rows from before have NULL and count as the old issuer's.
    "ALTER TABLE certs ADD COLUMN issuer TEXT;",
    // 3: the SHA-256 of each certificate's DER, so `/v1/renew` and `/v1/revoke` act only on
    // the very certificate the CA issued (a leaf forged with a stolen issuer key can copy a
    // serial and an ID, not the fingerprint); and renewals by parent, so rotation can tell a
    // certificate that was already replaced from one still in use.
    "ALTER TABLE certs ADD COLUMN fingerprint TEXT;
     CREATE INDEX certs_by_parent ON certs (parent_serial);",
    // 4: federation: the last good bundle of each foreign trust domain, so a restart (or an
    // unreachable endpoint) keeps trusting what was fetched.
    "CREATE TABLE federated_bundles (
        trust_domain TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        refreshed_at INTEGER NOT NULL
     ) STRICT;",
];

/// The newest schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn configure(conn: &Connection) -> Result<(), StateError> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Reads the schema version of the database at `path`, read-only (0 when there is no file
/// yet: `serve` creates it).
pub fn probe(path: &Path) -> Result<Probe, StateError> {
    let engine = format!("SQLite {}", path.display());
    if !path.exists() {
        return Ok(Probe {
            engine,
            schema: 0,
            known: SCHEMA_VERSION,
        });
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let schema: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(Probe {
        engine,
        schema,
        known: SCHEMA_VERSION,
    })
}

/// Opens (creating if needed) the database at `path` and migrates it to [`SCHEMA_VERSION`].
pub fn open(path: &Path) -> Result<Connection, StateError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    migrate(&conn)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), StateError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StateError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        // Re-read inside the write lock: another process may have migrated meanwhile.
        let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
            conn.execute_batch(sql)?;
            conn.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        Ok::<_, rusqlite::Error>(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    }
    Ok(())
}

/// A few read connections for the daemon's queries, used round-robin.
#[derive(Debug)]
pub struct ReadPool {
    conns: Vec<std::sync::Mutex<Connection>>,
    next: std::sync::atomic::AtomicUsize,
}

impl ReadPool {
    /// Opens `n` connections to an existing, migrated database.
    pub fn open(path: &Path, n: usize) -> Result<Self, StateError> {
        let conns = (0..n.max(1))
            .map(|_| {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(Duration::from_secs(5))?;
                Ok(std::sync::Mutex::new(conn))
            })
            .collect::<Result<_, StateError>>()?;
        Ok(Self {
            conns,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Runs a read on one of the connections.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.conns.len();
        let conn = self.conns[i]
            .lock()
            .map_err(|_| StateError::Commit("read connection poisoned".into()))?;
        f(&conn)
    }
}

/// The SQLite implementation of [`Store`](super::Store): writes through the group-commit
/// writer, reads on a small pool of read-only connections.
#[derive(Debug)]
pub struct SqliteStore {
    writer: Writer,
    reads: ReadPool,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let writer = Writer::start(path)?;
        let reads = ReadPool::open(path, 4)?;
        Ok(Self { writer, reads })
    }

    pub(super) async fn issue(
        &self,
        cert: CertRecord,
        token_hash: Option<String>,
    ) -> Result<(), StateError> {
        self.writer
            .write(move |c| {
                if let Some(hash) = &token_hash {
                    queries::consume_token(c, hash, cert.issued_at)?;
                }
                queries::insert_cert(c, &cert)
            })
            .await
    }

    pub(super) async fn revoke(&self, r: Revocation) -> Result<(), StateError> {
        self.writer
            .write(move |c| queries::insert_revocation(c, &r))
            .await
    }

    pub(super) async fn prune_certs(&self, before: i64) -> Result<u64, StateError> {
        let pruned = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = pruned.clone();
        self.writer
            .write(move |c| {
                let n = queries::prune_certs(c, before)?;
                count.store(n as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            })
            .await?;
        Ok(pruned.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub(super) async fn create_token(&self, t: TokenRecord) -> Result<(), StateError> {
        self.writer
            .write(move |c| queries::insert_token(c, &t))
            .await
    }

    pub(super) async fn revoke_token(&self, token_id: String, now: i64) -> Result<(), StateError> {
        self.writer
            .write(move |c| queries::revoke_token(c, &token_id, now))
            .await
    }

    pub(super) fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StateError> {
        self.reads.read(|c| queries::find_token(c, hash))
    }

    pub(super) fn tokens(&self) -> Result<Vec<TokenRecord>, StateError> {
        self.reads.read(queries::list_tokens)
    }

    pub(super) fn cert(&self, serial: &str) -> Result<Option<CertRecord>, StateError> {
        self.reads.read(|c| queries::find_cert(c, serial))
    }

    pub(super) fn certs(&self, spiffe_id: Option<&str>) -> Result<Vec<CertRecord>, StateError> {
        self.reads.read(|c| queries::list_certs(c, spiffe_id))
    }

    pub(super) fn revocation_for(
        &self,
        serial: &str,
        spiffe_id: &str,
        issued_at: i64,
    ) -> Result<Option<Revocation>, StateError> {
        self.reads
            .read(|c| queries::revocation_for(c, serial, spiffe_id, issued_at))
    }

    pub(super) fn standing(
        &self,
        serial: &str,
        spiffe_id: &str,
        issued_at: i64,
    ) -> Result<(Option<CertRecord>, Option<Revocation>), StateError> {
        self.reads.read(|c| {
            Ok((
                queries::find_cert(c, serial)?,
                queries::revocation_for(c, serial, spiffe_id, issued_at)?,
            ))
        })
    }

    pub(super) fn revocations(&self) -> Result<(Vec<Revocation>, i64), StateError> {
        self.reads.read(|c| {
            // One read transaction: the list and its generation describe the same moment.
            c.execute_batch("BEGIN")?;
            let read = (|| Ok((queries::revocations(c)?, queries::revocation_generation(c)?)))();
            let _ = c.execute_batch("COMMIT");
            read
        })
    }

    pub(super) async fn import(&self, all: Snapshot) -> Result<(), StateError> {
        self.writer
            .write(move |c| {
                let held: i64 = c.query_row(
                    "SELECT (SELECT count(*) FROM certs) + (SELECT count(*) FROM join_tokens) + (SELECT count(*) FROM revocations)",
                    [],
                    |r| r.get(0),
                )?;
                if held > 0 {
                    return Err(StateError::NotEmpty(format!("{held} records")));
                }
                for t in &all.tokens {
                    queries::insert_token(c, t)?;
                }
                for cert in &all.certs {
                    queries::insert_cert(c, cert)?;
                }
                for r in &all.revocations {
                    queries::insert_revocation(c, r)?;
                }
                Ok(())
            })
            .await
    }

    pub(super) fn live_certs_of(
        &self,
        issuer: &str,
        now: i64,
    ) -> Result<(i64, Option<i64>), StateError> {
        self.reads.read(|c| queries::live_certs_of(c, issuer, now))
    }
}
