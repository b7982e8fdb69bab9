//! `ward-ca check`: the config parses and validates (one summary line); with `--connect`, the
//! state it names is reached and its schema version read, and the CA keys are opened (the
//! CA directory loaded, or the database's CA unsealed with the KEK), changing nothing. Each
//! finding is a line; the first failure is the error, in the words of what failed.

use std::io::Write;

use crate::authority::issuer::rfc3339;
use crate::authority::Authority;
use crate::cli::Error;
use crate::config::{CaConfig, CaKeys};
use crate::state::{self, StateError, Store};

/// `ward-ca check [--connect]`.
pub fn check(config: &std::path::Path, connect: bool, out: &mut dyn Write) -> Result<(), Error> {
    let cfg = CaConfig::load(config)?;
    let attestors: Vec<&str> = [
        cfg.join_token.then_some("join_token"),
        cfg.kubernetes.as_ref().map(|_| "kubernetes"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let _ = writeln!(
        out,
        "ok: {} (trust domain {}, listen {}, attestors: {}, {} admins)",
        config.display(),
        cfg.trust_domain,
        cfg.listen,
        if attestors.is_empty() {
            "none".to_owned()
        } else {
            attestors.join(", ")
        },
        cfg.admins.len(),
    );
    if !connect {
        return Ok(());
    }
    let runtime = super::ops::runtime(&mut tokio::runtime::Builder::new_current_thread())?;
    runtime.block_on(connect_and_open(&cfg, out))
}

async fn connect_and_open(cfg: &CaConfig, out: &mut dyn Write) -> Result<(), Error> {
    let probe = state::probe(&cfg.state).await?;
    if probe.schema > probe.known {
        return Err(StateError::TooNew {
            found: probe.schema,
            known: probe.known,
        }
        .into());
    }
    let schema = match probe.schema {
        0 => "no schema yet (`ward-ca serve` or `init` creates it)".to_owned(),
        n if n < probe.known => format!(
            "schema version {n}, older than this ward-ca's {} (`ward-ca serve` migrates it forward)",
            probe.known
        ),
        n => format!("schema version {n} (current)"),
    };
    let _ = writeln!(out, "ok: state {}: reached; {schema}", probe.engine);
    match &cfg.keys {
        CaKeys::Dir(dir) => {
            let authority = Authority::load(dir, &cfg.trust_domain)?;
            let _ = writeln!(
                out,
                "ok: CA directory {}: issuer {} valid until {}, {} root(s) published",
                dir.display(),
                authority.issuer.issuer_serial(),
                rfc3339(authority.issuer.not_after()),
                authority.roots.len()
            );
        }
        CaKeys::Database { kek_file } if probe.schema == probe.known => {
            let kek = crate::keys::kek::Kek::load(kek_file)?;
            let store = Store::open(&cfg.state).await?;
            let ca = crate::keys::db::DbCa::on(&store, kek, cfg.trust_domain.clone())?;
            match ca.load().await? {
                None => {
                    let _ = writeln!(
                        out,
                        "note: the database holds no CA yet (`ward-ca init --config` stores one)"
                    );
                }
                Some((material, version)) => {
                    let authority = Authority::from_material(
                        &material,
                        &cfg.trust_domain,
                        &crate::keys::db::DbCa::origin(),
                    )?;
                    let _ = writeln!(
                        out,
                        "ok: CA version {version} in the database opened with {}: issuer {} valid until {}, {} root(s) published",
                        kek_file.display(),
                        authority.issuer.issuer_serial(),
                        rfc3339(authority.issuer.not_after()),
                        authority.roots.len()
                    );
                }
            }
        }
        CaKeys::Database { .. } => {
            let _ = writeln!(
                out,
                "note: the CA keys in the database are checked once the schema is current"
            );
        }
    }
    Ok(())
}
