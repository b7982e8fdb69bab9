//! `ward-ca rotate` against a CA kept in PostgreSQL: one command, run anywhere the config
//! and the KEK are, moves every replica.
//!
//! Each step reads the stored generations, applies the same step as a CA directory's
//! ([`crate::authority::material`]), checks that the result loads, and writes it in one transaction that
//! fails if another step got there first. Replicas check the stored version every second and
//! report the one they serve; the command then waits until every live replica serves the new
//! one (up to [`keys::ROLLOUT_WAIT`]) and names any that do not. That wait is also why
//! `activate`'s publication delay is honest: `prepare` returned only once every replica
//! published the next issuer.

use std::io::Write;

use super::keys::{self, report};
use super::ops::OpState;
use super::rotate::{
    activated_message, check_nothing_live, finished_message, jwt_wait, of_role, prepared_message,
    retired_between, retired_message, RotateCommand,
};
use crate::authority::error::CaError;
use crate::authority::issuer::Issuer;
use crate::authority::material::CaMaterial;
use crate::cli::Error;
use crate::config::CaConfig;
use crate::keys::db::DbCa;
use crate::keys::dir::rotation::Phase;
use crate::state::unix_now;

fn signing(m: &CaMaterial) -> Result<Issuer, CaError> {
    Issuer::from_generation(&DbCa::origin(), &m.signing)
}

/// The issuers' serials of a CA held in the database, by role.
pub(super) fn issuer_serials(m: &CaMaterial) -> Result<Vec<(&'static str, String)>, Error> {
    m.generations()
        .map(|(role, g)| {
            let issuer = Issuer::from_generation(&DbCa::origin().join(role.as_str()), g)?;
            Ok((role.as_str(), issuer.issuer_serial().to_owned()))
        })
        .collect()
}

/// Runs one `rotate` subcommand against the database.
pub(super) fn run(
    command: RotateCommand,
    cfg: &CaConfig,
    db: &DbCa,
    state: &OpState,
    status: &mut dyn Write,
) -> Result<(), Error> {
    let hint = cfg.bundle_refresh_hint.as_secs() as i64;
    let td = cfg.trust_domain.clone();
    match command {
        RotateCommand::Prepare { root, .. } => {
            let jwt = cfg.jwt_algorithm();
            let (p, rollout) = keys::change(db, state, |m| m.prepare(&td, root, unix_now(), jwt))?;
            let _ = writeln!(
                status,
                "prepared issuer {} in the database; still signing with the current issuer\n{}",
                p.issuer_name,
                prepared_message(cfg, &p)
            );
            report(&rollout, status)
        }
        RotateCommand::Activate { force, .. } => {
            let (message, rollout) = keys::change(db, state, |m| {
                m.activate(unix_now(), hint, force)?;
                Ok(activated_message(&signing(m)?))
            })?;
            let _ = writeln!(status, "{message}");
            report(&rollout, status)
        }
        RotateCommand::Finish { force, .. } => {
            let (m, _) = keys::material(db, state)?;
            if m.journal.phase == Phase::Activated {
                let had_key = m.previous.as_ref().is_some_and(|g| g.jwt_key_pem.is_some());
                let jwt = jwt_wait(cfg, &m.journal, had_key);
                let previous = of_role(&issuer_serials(&m)?, "previous");
                check_nothing_live(&previous, jwt, state, force, status)?;
            }
            let ((), rollout) = keys::change(db, state, CaMaterial::finish)?;
            let _ = writeln!(status, "{}", finished_message(cfg));
            report(&rollout, status)
        }
        RotateCommand::Retire { force, .. } => {
            let before = issuer_serials(&keys::material(db, state)?.0)?;
            let (activated, rollout) =
                keys::change(db, state, |m| m.retire(unix_now(), hint, force))?;
            let (m, _) = keys::material(db, state)?;
            let retired = retired_between(&before, &issuer_serials(&m)?);
            let message = retired_message(cfg, &retired, state, activated)?;
            let _ = writeln!(status, "{message}");
            report(&rollout, status)
        }
        // [`super::rotate::run`] reports status itself, to standard output.
        RotateCommand::Status { output, .. } => {
            super::rotate_status::of_db(cfg, db, state, output.output, status)
        }
    }
}
