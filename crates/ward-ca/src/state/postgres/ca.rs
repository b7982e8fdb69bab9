//! The CA's own material in PostgreSQL: its generations, its rotation journal, and which
//! replicas have loaded which version of them.
//!
//! `ca_generations` holds one row per generation (root and issuer certificates, their keys
//! sealed under the KEK by the caller, [`crate::keys::db`]); `role` says which one signs, which
//! is prepared and which is previous, and is NULL once a generation is retired (its keys are
//! then wiped; the certificates stay for the record). `ca_rotation` is one row: the journal
//! and a `version` that every change moves. A change is written whole in one transaction that
//! first locks that row and compares the version its writer read, so two rotation steps run at
//! once against different replicas cannot both apply. `ca_replicas` is each running replica's
//! heartbeat with the version it has loaded: what `rotate activate` waits on.

use tokio_postgres::types::ToSql;

use super::pool::db;
use super::{bounded, PgStore};
use crate::authority::rotation::{Journal, Phase};
use crate::state::error::StateError;
use ward_api::IssuerRole;

/// One generation row, keys sealed.
#[derive(Clone)]
pub struct StoredGeneration {
    /// Names the generation (and binds its sealed keys).
    pub id: String,
    /// Its role now.
    pub role: IssuerRole,
    /// Root certificate, PEM.
    pub root_pem: String,
    /// Root key, sealed; `None` when the root key is not held.
    pub root_key: Option<Vec<u8>>,
    /// Issuer certificate, PEM.
    pub issuer_pem: String,
    /// Issuer key, sealed.
    pub issuer_key: Vec<u8>,
    /// JWT-SVID signing key, sealed; `None` in generations made before JWT-SVIDs.
    pub jwt_key: Option<Vec<u8>>,
    /// Which KEK sealed the keys.
    pub kek_id: String,
}

impl std::fmt::Debug for StoredGeneration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredGeneration")
            .field("id", &self.id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The CA as stored: its journal and live generations.
#[derive(Clone, Debug)]
pub struct StoredCa {
    /// Where the rotation stands.
    pub journal: Journal,
    /// Generations with a role.
    pub generations: Vec<StoredGeneration>,
}

/// A replica's last heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaBeat {
    /// The replica's name (host, process, start).
    pub replica: String,
    /// The CA version it has loaded and serves.
    pub ca_version: i64,
    /// Its last heartbeat, Unix seconds.
    pub seen_at: i64,
}

fn phase_text(p: Phase) -> &'static str {
    match p {
        Phase::Idle => "idle",
        Phase::Prepared => "prepared",
        Phase::Activating => "activating",
        Phase::Activated => "activated",
    }
}

fn phase_of(text: &str) -> Phase {
    match text {
        "prepared" => Phase::Prepared,
        "activating" => Phase::Activating,
        "activated" => Phase::Activated,
        _ => Phase::Idle,
    }
}

fn role_of(text: &str) -> IssuerRole {
    match text {
        "next" => IssuerRole::Next,
        "previous" => IssuerRole::Previous,
        _ => IssuerRole::Signing,
    }
}

impl PgStore {
    /// The CA's version, or `None` if no CA was ever stored; records `replica`'s heartbeat
    /// with the version it serves (`loaded`) in the same round trip.
    pub async fn ca_beat(
        &self,
        replica: &str,
        loaded: i64,
        started_at: i64,
        now: i64,
    ) -> Result<Option<i64>, StateError> {
        bounded(async {
            let mut c = self.pool.get().await?;
            let s = c
                .prepared(
                    "WITH beat AS (
                        INSERT INTO ca_replicas (replica, ca_version, started_at, seen_at)
                        VALUES ($1, $2, $3, $4)
                        ON CONFLICT (replica) DO UPDATE SET ca_version = $2, seen_at = $4)
                     SELECT version FROM ca_rotation",
                )
                .await?;
            let row = c
                .client()
                .query_opt(&s, &[&replica, &loaded, &started_at, &now])
                .await
                .map_err(db)?;
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    /// Forgets replicas not heard from since `before` (killed ones never say goodbye).
    pub async fn ca_prune(&self, before: i64) -> Result<(), StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            c.client()
                .execute("DELETE FROM ca_replicas WHERE seen_at < $1", &[&before])
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    /// Forgets a replica that is shutting down.
    pub async fn ca_leave(&self, replica: &str) -> Result<(), StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            c.client()
                .execute("DELETE FROM ca_replicas WHERE replica = $1", &[&replica])
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    /// Replicas heard from since `since`, by name.
    pub async fn ca_replicas(&self, since: i64) -> Result<Vec<ReplicaBeat>, StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            let rows = c
                .client()
                .query(
                    "SELECT replica, ca_version, seen_at FROM ca_replicas WHERE seen_at >= $1 ORDER BY replica",
                    &[&since],
                )
                .await
                .map_err(db)?;
            Ok(rows
                .iter()
                .map(|r| ReplicaBeat {
                    replica: r.get(0),
                    ca_version: r.get(1),
                    seen_at: r.get(2),
                })
                .collect())
        })
        .await
    }

    /// The stored CA and its version (which moves with every change), or `None` if none was
    /// ever stored.
    pub async fn ca_load(&self) -> Result<Option<(StoredCa, i64)>, StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            let Some(j) = c
                .client()
                .query_opt(
                    "SELECT version, phase, new_root, prepared_at, activated_at, bundle_version FROM ca_rotation",
                    &[],
                )
                .await
                .map_err(db)?
            else {
                return Ok(None);
            };
            let rows = c
                .client()
                .query(
                    "SELECT id, role, root_pem, root_key, issuer_pem, issuer_key, kek_id, jwt_key
                     FROM ca_generations WHERE role IS NOT NULL AND issuer_key IS NOT NULL",
                    &[],
                )
                .await
                .map_err(db)?;
            let phase: String = j.get(1);
            let bundle_version: i64 = j.get(5);
            let ca = StoredCa {
                journal: Journal {
                    phase: phase_of(&phase),
                    new_root: j.get(2),
                    prepared_at: j.get(3),
                    activated_at: j.get(4),
                    bundle_version: bundle_version.max(0) as u64,
                },
                generations: rows
                    .iter()
                    .map(|r| {
                        let role: String = r.get(1);
                        StoredGeneration {
                            id: r.get(0),
                            role: role_of(&role),
                            root_pem: r.get(2),
                            root_key: r.get(3),
                            issuer_pem: r.get(4),
                            issuer_key: r.get(5),
                            kek_id: r.get(6),
                            jwt_key: r.get(7),
                        }
                    })
                    .collect(),
            };
            Ok(Some((ca, j.get(0))))
        })
        .await
    }

    /// Writes `ca` whole if the stored version is still `expected` (`None`: no CA stored
    /// yet), and returns the new version. Generations not in `ca` lose their role and their
    /// keys. [`StateError::Conflict`] if another change came first; nothing is written then.
    pub async fn ca_store(
        &self,
        expected: Option<i64>,
        ca: &StoredCa,
        now: i64,
    ) -> Result<i64, StateError> {
        bounded(async {
            let mut c = self.pool.get().await?;
            let tx = c.client_mut().transaction().await.map_err(db)?;
            // The row lock orders concurrent writers; the first insert takes a table lock
            // instead (there is no row to lock yet).
            tx.execute("LOCK TABLE ca_rotation IN SHARE ROW EXCLUSIVE MODE", &[])
                .await
                .map_err(db)?;
            let found: Option<i64> = tx
                .query_opt("SELECT version FROM ca_rotation", &[])
                .await
                .map_err(db)?
                .map(|r| r.get(0));
            if found != expected {
                return Err(StateError::Conflict(format!(
                    "the CA changed meanwhile (version {} is stored, {} was read); nothing was written: run the command again",
                    found.map_or("none".into(), |v| v.to_string()),
                    expected.map_or("none".into(), |v| v.to_string()),
                )));
            }
            tx.execute("UPDATE ca_generations SET role = NULL WHERE role IS NOT NULL", &[])
                .await
                .map_err(db)?;
            for g in &ca.generations {
                let params: [&(dyn ToSql + Sync); 9] = [
                    &g.id,
                    &g.role.as_str(),
                    &g.root_pem,
                    &g.root_key,
                    &g.issuer_pem,
                    &g.issuer_key,
                    &g.kek_id,
                    &now,
                    &g.jwt_key,
                ];
                tx.execute(
                    "INSERT INTO ca_generations (id, role, root_pem, root_key, issuer_pem, issuer_key, kek_id, created_at, jwt_key)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (id) DO UPDATE SET role = EXCLUDED.role, retired_at = NULL",
                    &params,
                )
                .await
                .map_err(db)?;
            }
            tx.execute(
                "UPDATE ca_generations SET root_key = NULL, issuer_key = NULL, jwt_key = NULL, retired_at = $1
                 WHERE role IS NULL AND retired_at IS NULL",
                &[&now],
            )
            .await
            .map_err(db)?;
            let version = found.unwrap_or(0) + 1;
            let j = &ca.journal;
            let bundle_version = j.bundle_version as i64;
            tx.execute(
                "INSERT INTO ca_rotation (one, version, phase, new_root, prepared_at, activated_at, bundle_version)
                 VALUES (TRUE, $1, $2, $3, $4, $5, $6)
                 ON CONFLICT (one) DO UPDATE SET version = $1, phase = $2, new_root = $3,
                    prepared_at = $4, activated_at = $5, bundle_version = $6",
                &[&version, &phase_text(j.phase), &j.new_root, &j.prepared_at, &j.activated_at, &bundle_version],
            )
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(version)
        })
        .await
    }
}
