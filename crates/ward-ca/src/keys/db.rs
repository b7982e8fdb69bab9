//! The CA's generations in the shared database, for replicas: sealed on the way in, opened
//! and checked on the way out, and the wait for every live replica to serve a change.
//!
//! Why keys in the database rather than a root in a Secret and an intermediate per replica:
//! every replica then signs with the same issuer, so the bundle's list of allowed issuers does
//! not churn as pods come and go, a rotation is one change that every replica follows, and the
//! root key is needed only by the operator command that prepares the next issuer, not online
//! in every replica's memory in a form that mints intermediates. What an attacker needs is the
//! database's rows and the KEK Secret together. The design is in docs/ca.md ("Replicas").

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ward_identity::TrustDomain;

use crate::authority::error::CaError;
use crate::authority::generation::GenerationPem;
use crate::authority::material::CaMaterial;
use crate::authority::Authority;
use crate::config::{CaConfig, CaKeys};
use crate::keys::dir::rotation::IssuerRole;
use crate::keys::kek::Kek;
use crate::keys::KeysError;
use crate::state::postgres::ca::{ReplicaBeat, StoredCa, StoredGeneration};
use crate::state::postgres::PgStore;
use crate::state::{unix_now, StateError, Store};

/// How often a replica checks the CA's version and says which one it serves.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);
/// A replica not heard from for this long is not live: nobody waits for it.
pub const LIVE_WINDOW_SECS: i64 = 10;

/// A name for this process among the replicas: host (the pod name in Kubernetes), process
/// id, and a random tag, so a restarted replica is a new one and the old name ages out.
pub fn replica_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let tag = crate::authority::issuer::random_tag().unwrap_or_default();
    format!("{host}/{}/{tag}", std::process::id())
}

/// The CA held in a PostgreSQL state.
#[derive(Clone, Debug)]
pub struct DbCa {
    pg: Arc<PgStore>,
    kek: Arc<Kek>,
    trust_domain: TrustDomain,
}

/// What `activate` and the other steps found when they waited for the replicas.
#[derive(Debug, Default)]
pub struct Rollout {
    /// Live replicas that serve the new version.
    pub done: Vec<String>,
    /// Live replicas that still serve an older one when the wait ended.
    pub lagging: Vec<ReplicaBeat>,
    /// Replicas that were live, behind, when the wait began and stopped being heard from
    /// during it (stopped, paused, cut off from the database): not counted as done, and
    /// what they serve is unknown.
    pub dropped: Vec<ReplicaBeat>,
}

fn generation_id(g: &GenerationPem) -> String {
    ward_tls::files::sha256_hex(g.issuer_pem.as_bytes())[..32].to_owned()
}

fn aad(td: &TrustDomain, id: &str, part: &str) -> String {
    format!("ward-ca ca-key v1 {td} {id} {part}")
}

impl DbCa {
    /// The CA of `pg`'s database, its keys under `kek`.
    pub fn new(pg: Arc<PgStore>, kek: Arc<Kek>, trust_domain: TrustDomain) -> Self {
        Self {
            pg,
            kek,
            trust_domain,
        }
    }

    /// The CA of `store`, which must be a PostgreSQL state.
    pub fn on(store: &Store, kek: Kek, trust_domain: TrustDomain) -> Result<Self, KeysError> {
        match store {
            Store::Postgres(pg) => Ok(Self::new(pg.clone(), Arc::new(kek), trust_domain)),
            _ => Err(KeysError::Ca(CaError::BadCa {
                path: kek.path().to_path_buf(),
                problem: "a key-encryption key is for CA keys kept in a PostgreSQL state; this state is SQLite".into(),
            })),
        }
    }

    /// How errors name the CA material.
    pub fn origin() -> PathBuf {
        PathBuf::from("postgres:ca_generations")
    }

    /// The stored CA and its version, keys opened; `None` if no CA was ever stored.
    pub async fn load(&self) -> Result<Option<(CaMaterial, i64)>, KeysError> {
        let Some((stored, version)) = self.pg.ca_load().await? else {
            return Ok(None);
        };
        let td = &self.trust_domain;
        let mut signing = None;
        let (mut next, mut previous) = (None, None);
        for g in &stored.generations {
            let open = |part: &str, sealed: &[u8]| -> Result<String, KeysError> {
                let plain = self.kek.open(&aad(td, &g.id, part), &g.kek_id, sealed)?;
                String::from_utf8(plain).map_err(|_| {
                    KeysError::Ca(CaError::BadCa {
                        path: Self::origin().join(&g.id),
                        problem: format!("the {part} key is not PEM text"),
                    })
                })
            };
            let pem = GenerationPem {
                root_pem: g.root_pem.clone(),
                root_key_pem: g.root_key.as_deref().map(|k| open("root", k)).transpose()?,
                issuer_pem: g.issuer_pem.clone(),
                issuer_key_pem: open("issuer", &g.issuer_key)?,
                jwt_key_pem: g.jwt_key.as_deref().map(|k| open("jwt", k)).transpose()?,
            };
            match g.role {
                IssuerRole::Signing => signing = Some(pem),
                IssuerRole::Next => next = Some(pem),
                IssuerRole::Previous => previous = Some(pem),
            }
        }
        let signing = signing.ok_or_else(|| {
            KeysError::Ca(CaError::BadCa {
                path: Self::origin(),
                problem: "no generation is marked signing".into(),
            })
        })?;
        Ok(Some((
            CaMaterial {
                signing,
                next,
                previous,
                journal: stored.journal,
            },
            version,
        )))
    }

    /// Writes `material` whole if the stored version is still `expected`; the new version.
    pub async fn save(
        &self,
        material: &CaMaterial,
        expected: Option<i64>,
    ) -> Result<i64, KeysError> {
        let td = &self.trust_domain;
        let mut generations = Vec::new();
        for (role, g) in material.generations() {
            let id = generation_id(g);
            let root_key = g
                .root_key_pem
                .as_ref()
                .map(|k| self.kek.seal(&aad(td, &id, "root"), k.as_bytes()))
                .transpose()?;
            generations.push(StoredGeneration {
                root_key,
                issuer_key: self
                    .kek
                    .seal(&aad(td, &id, "issuer"), g.issuer_key_pem.as_bytes())?,
                jwt_key: g
                    .jwt_key_pem
                    .as_ref()
                    .map(|k| self.kek.seal(&aad(td, &id, "jwt"), k.as_bytes()))
                    .transpose()?,
                id,
                role,
                root_pem: g.root_pem.clone(),
                issuer_pem: g.issuer_pem.clone(),
                kek_id: self.kek.id().to_owned(),
            });
        }
        let stored = StoredCa {
            journal: material.journal.clone(),
            generations,
        };
        Ok(self.pg.ca_store(expected, &stored, unix_now()).await?)
    }

    /// Says that `replica` serves `loaded`; returns the stored version (`None`: no CA).
    pub async fn beat(
        &self,
        replica: &str,
        loaded: i64,
        started_at: i64,
    ) -> Result<Option<i64>, StateError> {
        self.pg
            .ca_beat(replica, loaded, started_at, unix_now())
            .await
    }

    /// Forgets replicas silent for a day: a killed replica's heartbeat row would otherwise
    /// stay (it is not live after [`LIVE_WINDOW_SECS`] anyway; this only keeps the table small).
    pub async fn prune(&self) -> Result<(), StateError> {
        self.pg.ca_prune(unix_now() - 86_400).await
    }

    /// Forgets `replica` (it is shutting down: nobody waits for it).
    pub async fn leave(&self, replica: &str) -> Result<(), StateError> {
        self.pg.ca_leave(replica).await
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// Live replicas (heard from within [`LIVE_WINDOW_SECS`]).
    pub async fn replicas(&self) -> Result<Vec<ReplicaBeat>, StateError> {
        self.pg.ca_replicas(unix_now() - LIVE_WINDOW_SECS).await
    }

    /// Waits up to `timeout` until every live replica serves `version` or newer.
    pub async fn wait_for(&self, version: i64, timeout: Duration) -> Result<Rollout, KeysError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut behind_at_start: Option<Vec<ReplicaBeat>> = None;
        loop {
            let live = self.replicas().await?;
            let behind = behind_at_start.get_or_insert_with(|| {
                live.iter()
                    .filter(|r| r.ca_version < version)
                    .cloned()
                    .collect()
            });
            let dropped: Vec<ReplicaBeat> = behind
                .iter()
                .filter(|b| !live.iter().any(|r| r.replica == b.replica))
                .cloned()
                .collect();
            let (done, lagging): (Vec<_>, Vec<_>) =
                live.into_iter().partition(|r| r.ca_version >= version);
            if lagging.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(Rollout {
                    done: done.into_iter().map(|r| r.replica).collect(),
                    lagging,
                    dropped,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Stores the CA directory `dir` (every generation and its rotation state) as the CA of
/// the PostgreSQL state `config` names, which must hold none yet; the stored version.
pub async fn import_dir(config: &CaConfig, dir: &Path) -> Result<i64, KeysError> {
    let CaKeys::Database { kek_file } = &config.keys else {
        return Err(KeysError::Ca(CaError::BadCa {
            path: dir.to_path_buf(),
            problem: "the config keeps its keys in a CA directory, not in a database".into(),
        }));
    };
    let store = Store::open(&config.state).await?;
    let ca = DbCa::on(&store, Kek::load(kek_file)?, config.trust_domain.clone())?;
    let material = CaMaterial::read_dir(dir)?;
    Authority::from_material(&material, &config.trust_domain, dir)?;
    ca.save(&material, None).await
}
