//! Durable CA state: issued certificates, join tokens, revocations.
//!
//! [`Store`] is the one interface the daemon and the operator CLI use; each engine behind it
//! keeps the same [`records`] with the same guarantees: nothing is returned to a client
//! before the write that records it has committed, a join token is consumed at most once
//! (the consume and the certificate's record are one transaction), and a revocation is in
//! every later read. Two engines: embedded SQLite ([`sqlite`]) for one node, and PostgreSQL
//! ([`postgres`]) shared by any number of equal replicas. The behavioural tests in
//! `crates/ward-ca/tests/state.rs` are written against [`Store`] and run against both.

pub mod error;
pub mod postgres;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;

use self::postgres::PgStore;
use self::sqlite::SqliteStore;
use crate::authority::records::{CertRecord, FederatedRecord, Revocation, Snapshot, TokenRecord};
use crate::config::state::StateConfig;
pub use error::{Probe, StateError};

/// Reaches the state `config` names and reads its schema version; creates and migrates
/// nothing.
pub async fn probe(config: &StateConfig) -> Result<Probe, StateError> {
    match config {
        StateConfig::Sqlite(path) => sqlite::probe(path),
        StateConfig::Postgres(pg) => {
            postgres::probe(&postgres::pool::Target::from_config(pg)?).await
        }
    }
}

/// The CA's state, in whichever engine the config names. Clones share the engine.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Store {
    /// Embedded SQLite (one node).
    Sqlite(Arc<SqliteStore>),
    /// PostgreSQL (any number of replicas).
    Postgres(Arc<PgStore>),
}

impl Store {
    /// Opens the engine `config` names, creating or migrating its schema if needed.
    pub async fn open(config: &StateConfig) -> Result<Self, StateError> {
        match config {
            StateConfig::Sqlite(path) => Self::open_sqlite(path),
            StateConfig::Postgres(pg) => Ok(Self::Postgres(Arc::new(
                PgStore::open(postgres::pool::Target::from_config(pg)?, pg.pool_size).await?,
            ))),
        }
    }

    /// Whether the engine answers now (`/readyz`): always for SQLite, whose file is local.
    pub async fn ping(&self) -> Result<(), StateError> {
        match self {
            Self::Sqlite(_) => Ok(()),
            Self::Postgres(p) => p.ping().await,
        }
    }

    /// Opens (creating and migrating if needed) the SQLite database at `path`.
    pub fn open_sqlite(path: &Path) -> Result<Self, StateError> {
        Ok(Self::Sqlite(Arc::new(SqliteStore::open(path)?)))
    }

    /// Records an issued certificate; with `token_hash`, first consumes that join token at
    /// the certificate's `issued_at`, in the same transaction ([`StateError::TokenUnusable`]
    /// when it is used, revoked or expired by then, and nothing is recorded).
    pub async fn issue(
        &self,
        cert: CertRecord,
        token_hash: Option<String>,
    ) -> Result<(), StateError> {
        match self {
            Self::Sqlite(s) => s.issue(cert, token_hash).await,
            Self::Postgres(p) => p.issue(cert, token_hash).await,
        }
    }

    /// Every foreign trust domain's last good bundle (federation).
    pub async fn federated_bundles(&self) -> Result<Vec<FederatedRecord>, StateError> {
        match self {
            Self::Sqlite(s) => s.federated(),
            Self::Postgres(p) => p.federated().await,
        }
    }

    /// Stores a foreign bundle unless the one stored has a higher sequence.
    pub async fn store_federated(&self, r: FederatedRecord) -> Result<(), StateError> {
        match self {
            Self::Sqlite(s) => s.store_federated(r).await,
            Self::Postgres(p) => p.store_federated(r).await,
        }
    }

    /// Forgets a foreign trust domain's stored bundle (so the next start takes `bundle_file`);
    /// whether there was one.
    pub async fn forget_federated(&self, trust_domain: &str) -> Result<bool, StateError> {
        match self {
            Self::Sqlite(s) => s.forget_federated(trust_domain.to_owned()).await,
            Self::Postgres(p) => p.forget_federated(trust_domain.to_owned()).await,
        }
    }

    /// Records a revocation.
    pub async fn revoke(&self, r: Revocation) -> Result<(), StateError> {
        match self {
            Self::Sqlite(s) => s.revoke(r).await,
            Self::Postgres(p) => p.revoke(r).await,
        }
    }

    /// Deletes the records of certificates that expired before `before` (Unix seconds); how
    /// many. Revocations are kept (an ID revocation covers what is issued up to it).
    pub async fn prune_certs(&self, before: i64) -> Result<u64, StateError> {
        match self {
            Self::Sqlite(s) => s.prune_certs(before).await,
            Self::Postgres(p) => p.prune_certs(before).await,
        }
    }

    /// Stores a new join token (its hash).
    pub async fn create_token(&self, t: TokenRecord) -> Result<(), StateError> {
        match self {
            Self::Sqlite(s) => s.create_token(t).await,
            Self::Postgres(p) => p.create_token(t).await,
        }
    }

    /// Revokes the unrevoked join token with this id ([`StateError::NotFound`] otherwise).
    pub async fn revoke_token(&self, token_id: &str, now: i64) -> Result<(), StateError> {
        match self {
            Self::Sqlite(s) => s.revoke_token(token_id.to_owned(), now).await,
            Self::Postgres(p) => p.revoke_token(token_id, now).await,
        }
    }

    /// The join token with this hash, if any.
    pub async fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StateError> {
        match self {
            Self::Sqlite(s) => s.token(hash),
            Self::Postgres(p) => p.token(hash).await,
        }
    }

    /// All join tokens, newest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StateError> {
        match self {
            Self::Sqlite(s) => s.tokens(),
            Self::Postgres(p) => p.tokens().await,
        }
    }

    /// The certificate with this serial, if recorded.
    pub async fn cert(&self, serial: &str) -> Result<Option<CertRecord>, StateError> {
        match self {
            Self::Sqlite(s) => s.cert(serial),
            Self::Postgres(p) => p.cert(serial).await,
        }
    }

    /// A presented certificate's standing in one read: its record (by serial), if any, and the
    /// revocation covering a certificate with these facts, if any. Renewal and revocation ask
    /// this on every request, so it is one statement on every engine.
    pub async fn standing(
        &self,
        serial: &str,
        spiffe_id: &str,
        issued_at: i64,
    ) -> Result<(Option<CertRecord>, Option<Revocation>), StateError> {
        match self {
            Self::Sqlite(s) => s.standing(serial, spiffe_id, issued_at),
            Self::Postgres(p) => p.standing(serial, spiffe_id, issued_at).await,
        }
    }

    /// Recorded certificates, newest first, optionally of one ID.
    pub async fn certs(&self, spiffe_id: Option<&str>) -> Result<Vec<CertRecord>, StateError> {
        match self {
            Self::Sqlite(s) => s.certs(spiffe_id),
            Self::Postgres(p) => p.certs(spiffe_id).await,
        }
    }

    /// The revocation covering a certificate with these facts, if any.
    pub async fn revocation_for(
        &self,
        serial: &str,
        spiffe_id: &str,
        issued_at: i64,
    ) -> Result<Option<Revocation>, StateError> {
        match self {
            Self::Sqlite(s) => s.revocation_for(serial, spiffe_id, issued_at),
            Self::Postgres(p) => p.revocation_for(serial, spiffe_id, issued_at).await,
        }
    }

    /// Every revocation, oldest first, and a generation number that grows whenever the
    /// list does (for the bundle's ETag and sequence).
    pub async fn revocations(&self) -> Result<(Vec<Revocation>, i64), StateError> {
        match self {
            Self::Sqlite(s) => s.revocations(),
            Self::Postgres(p) => p.revocations().await,
        }
    }

    /// How many certificates signed by the issuer with serial `issuer` still matter at `now`
    /// (unexpired, unrevoked by serial or by an ID revocation that covers them, not yet
    /// replaced by a renewal), and when the last of them expires. The CA's own serving
    /// certificates do not count: it re-issues its own.
    pub async fn live_certs_of(
        &self,
        issuer: &str,
        now: i64,
    ) -> Result<(i64, Option<i64>), StateError> {
        match self {
            Self::Sqlite(s) => s.live_certs_of(issuer, now),
            Self::Postgres(p) => p.live_certs_of(issuer, now).await,
        }
    }
}

impl Store {
    /// Every record, for [`Store::import`] into another engine.
    pub async fn snapshot(&self) -> Result<Snapshot, StateError> {
        let (revocations, _) = self.revocations().await?;
        Ok(Snapshot {
            tokens: self.tokens().await?,
            certs: self.certs(None).await?,
            revocations,
        })
    }

    /// Writes `all` into this state in one transaction, only if it holds no record yet
    /// ([`StateError::NotEmpty`] otherwise, and nothing is written). Revocations keep their
    /// order, so the bundle lists them as before.
    pub async fn import(&self, all: Snapshot) -> Result<(), StateError> {
        match self {
            Self::Sqlite(s) => s.import(all).await,
            Self::Postgres(p) => p.import(all).await,
        }
    }
}

/// Current time in Unix seconds.
pub use ward_identity::unix_now;
