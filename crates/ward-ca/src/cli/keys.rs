//! The CA material an operator command acts on: the CA directory of a single node, or the
//! generations in a PostgreSQL state (sealed under the config's KEK). `init --config`,
//! `issue --config`, `rotate` and `state copy --ca-dir` go through here, so each works the
//! same against either.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::authority::error::CaError;
use crate::authority::issuer::{rfc3339, Issuer};
use crate::authority::material::CaMaterial;
use crate::authority::Authority;
use crate::cli::Error;
use crate::config::{CaConfig, CaKeys};
use crate::keys::db::{DbCa, Rollout};
use crate::keys::dir;
use crate::keys::kek::Kek;

use super::ops::{load, OpState};

/// Where the CA material of a config is.
pub(super) enum OpCa {
    /// A CA directory.
    Dir(PathBuf),
    /// The database.
    Db(DbCa),
}

/// The CA material `cfg` names; with `create_kek`, a missing KEK file is made.
fn open_with(cfg: &CaConfig, state: &OpState, create_kek: bool) -> Result<OpCa, Error> {
    match &cfg.keys {
        CaKeys::Dir(dir) => Ok(OpCa::Dir(dir.clone())),
        CaKeys::Database { kek_file } => {
            let kek = if create_kek {
                Kek::create_or_load(kek_file)?.0
            } else {
                Kek::load(kek_file)?
            };
            Ok(OpCa::Db(DbCa::on(
                &state.store,
                kek,
                cfg.trust_domain.clone(),
            )?))
        }
    }
}

/// The CA material `cfg` names.
pub(super) fn open(cfg: &CaConfig, state: &OpState) -> Result<OpCa, Error> {
    open_with(cfg, state, false)
}

fn no_ca() -> Error {
    Error::Ca(CaError::BadCa {
        path: DbCa::origin(),
        problem: "the database holds no CA yet; create one with `ward-ca init --config`".into(),
    })
}

/// The stored material and its version.
pub(super) fn material(ca: &DbCa, state: &OpState) -> Result<(CaMaterial, i64), Error> {
    state.block(async { ca.load().await?.ok_or_else(no_ca) })
}

/// The issuer that signs now.
pub(super) fn signing_issuer(ca: &OpCa, state: &OpState) -> Result<Issuer, Error> {
    match ca {
        OpCa::Dir(dir) => Ok(Issuer::load(dir)?),
        OpCa::Db(db) => Ok(Issuer::from_generation(
            &DbCa::origin(),
            &material(db, state)?.0.signing,
        )?),
    }
}

/// How long a change waits for the live replicas to serve it.
pub(super) const ROLLOUT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Applies `step` to the stored material, checks the result loads as a whole, writes it if
/// nothing changed meanwhile, and waits for every live replica to serve it.
pub(super) fn change<R: Send>(
    ca: &DbCa,
    state: &OpState,
    step: impl FnOnce(&mut CaMaterial) -> Result<R, CaError> + Send,
) -> Result<(R, Rollout), Error> {
    state.block(async {
        let (mut m, version) = ca.load().await?.ok_or_else(no_ca)?;
        let r = step(&mut m)?;
        Authority::from_material(&m, ca.trust_domain(), &DbCa::origin())?;
        let stored = ca.save(&m, Some(version)).await?;
        let rollout = ca.wait_for(stored, ROLLOUT_WAIT).await?;
        Ok((r, rollout))
    })
}

/// Tells the operator which replicas serve a change, or fails naming those that do not;
/// warns about replicas that stopped being heard from while it waited.
pub(super) fn report(rollout: &Rollout, status: &mut dyn Write) -> Result<(), Error> {
    for r in &rollout.dropped {
        let _ = writeln!(
            status,
            "warning: replica {} (serving version {}) stopped being heard from while this waited; it is not counted, and if it still runs it serves the old version until it reconnects",
            r.replica, r.ca_version
        );
    }
    if !rollout.lagging.is_empty() {
        let names: Vec<String> = rollout
            .lagging
            .iter()
            .map(|r| format!("{} (serves version {})", r.replica, r.ca_version))
            .collect();
        return Err(crate::authority::rotation::RotationError::Lagging {
            wait: ROLLOUT_WAIT.as_secs(),
            replicas: names.join(", "),
        }
        .into());
    }
    let _ = match rollout.done.len() {
        0 => writeln!(
            status,
            "no replica is running; each loads this when it starts"
        ),
        n => writeln!(
            status,
            "all {n} live replica(s) serve it: {}",
            rollout.done.join(", ")
        ),
    };
    Ok(())
}

/// Tells what `init` made in a directory.
pub(super) fn created_dir(dir: &Path, summary: &dir::InitSummary, status: &mut dyn Write) {
    let _ = writeln!(
        status,
        "created CA for trust domain {} in {}\n  root   valid until {}\n  issuer valid until {}\n  trust bundle: {}",
        summary.trust_domain,
        dir.display(),
        rfc3339(summary.root_not_after),
        rfc3339(summary.issuer_not_after),
        summary.bundle.display()
    );
}

/// `ward-ca init --config`: a new CA where the config keeps its keys.
pub fn init_config(config: &Path, force: bool, status: &mut dyn Write) -> Result<(), Error> {
    let (cfg, state) = load(config)?;
    let td = &cfg.trust_domain;
    match open_with(&cfg, &state, true)? {
        OpCa::Dir(dir) => created_dir(
            &dir,
            &dir::init_with(&dir, td, force, cfg.jwt_algorithm())?,
            status,
        ),
        OpCa::Db(db) => {
            let (material, version) = state.block(async {
                let found = db.load().await?;
                if let (Some((_, v)), false) = (&found, force) {
                    return Err(Error::Ca(CaError::BadCa {
                        path: DbCa::origin(),
                        problem: format!("the database already holds a CA (version {v}); pass --force to replace it (every workload must enroll again)"),
                    }));
                }
                let mut material = CaMaterial::new(td, cfg.jwt_algorithm())?;
                if let Some((old, _)) = &found {
                    material.journal.bundle_version = old.journal.bundle_version + 1;
                }
                let stored = db.save(&material, found.map(|(_, v)| v)).await?;
                Ok((material, stored))
            })?;
            let issuer = Issuer::from_generation(&DbCa::origin(), &material.signing)?;
            let kek = match &cfg.keys {
                CaKeys::Database { kek_file } => kek_file.display().to_string(),
                CaKeys::Dir(_) => String::new(),
            };
            let _ = writeln!(
                status,
                "created CA for trust domain {td} in {} (version {version}); keys sealed under {kek}\n  issuer serial {} valid until {}\n  every replica needs the same kek_file (a Secret); the bundle is served at /v1/bundle",
                cfg.state,
                issuer.issuer_serial(),
                rfc3339(issuer.not_after()),
            );
        }
    }
    Ok(())
}

/// `state copy --ca-dir`: refuses a target that already holds a CA, before anything is
/// copied; returns the directory's material to store after the records.
pub(super) fn check_copy_target(
    ca: &OpCa,
    ca_dir: Option<&Path>,
    cfg: &CaConfig,
    state: &OpState,
) -> Result<Option<CaMaterial>, Error> {
    let arg = |value: String, problem: &str| Error::Argument {
        flag: "--ca-dir",
        value,
        problem: problem.into(),
    };
    match (ca, ca_dir) {
        (OpCa::Dir(_), None) => Ok(None),
        (OpCa::Dir(_), Some(dir)) => Err(arg(dir.display().to_string(), "is only for a target that keeps the CA keys in PostgreSQL; this config names a CA directory (copy that directory instead)")),
        (OpCa::Db(_), None) => Err(arg(String::new(), "required: the target keeps the CA keys in the database; name the single node's CA directory so its replicas sign as it did and no workload enrolls again")),
        (OpCa::Db(db), Some(dir)) => {
            let material = CaMaterial::read_dir(dir)?;
            Authority::from_material(&material, &cfg.trust_domain, dir)?;
            if let Some((_, v)) = state.block(async { Ok(db.load().await?) })? {
                return Err(Error::Ca(CaError::BadCa {
                    path: DbCa::origin(),
                    problem: format!("the target database already holds a CA (version {v}); copy only into a new database"),
                }));
            }
            Ok(Some(material))
        }
    }
}
