//! `ward-ca rotate prepare|activate|finish|retire|status`: the operator's side of CA rotation.
//! The directory steps live in [`crate::keys::dir::rotation`] (the database's in [`super::rotate_db`]);
//! this adds what needs the config and the state database: the activation wait derived from
//! the bundle refresh hint, and the check that nothing live (and not yet renewed) still
//! depends on the previous issuer before `finish` retires it.

use std::io::Write;
use std::path::Path;

use clap::Subcommand;

use super::keys::{self, OpCa};
use super::ops::{load, when, OpState};
use crate::authority::issuer::{rfc3339, Issuer};
use crate::authority::rotation::jwt_live_until;
use crate::cli::Error;
use crate::config::CaConfig;
use crate::keys::dir::rotation::{self, Journal, Phase, RotationError, NEXT, PREVIOUS};
use crate::keys::dir::JWT_KEY;
use crate::state::unix_now;

/// `ward-ca rotate` subcommands.
#[derive(Debug, Subcommand)]
pub enum RotateCommand {
    #[command(after_help = "Example:\n  ward-ca rotate prepare --config /etc/ward/ca.yaml --root")]
    /// Create the next issuer (with --root, also a new root) and publish its root in the
    /// bundle; the current issuer keeps signing.
    Prepare {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: std::path::PathBuf,
        /// Rotate the root too, not only the issuing intermediate.
        #[arg(long)]
        root: bool,
    },
    #[command(after_help = "Example:\n  ward-ca rotate activate --config /etc/ward/ca.yaml")]
    /// Sign with the prepared issuer from now on (the daemon picks it up within a second).
    Activate {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: std::path::PathBuf,
        /// Activate a new root before workloads have had two bundle refreshes to fetch it.
        #[arg(long)]
        force: bool,
    },
    #[command(after_help = "Example:\n  ward-ca rotate finish --config /etc/ward/ca.yaml")]
    /// Retire the previous issuer (and an old root) once nothing live chains to it: from
    /// then on a certificate it signed is refused everywhere.
    Finish {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: std::path::PathBuf,
        /// Retire it even though certificates it signed are still valid and not yet renewed
        /// (they stop working at once).
        #[arg(long)]
        force: bool,
    },
    #[command(after_help = "Example:\n  ward-ca rotate retire --config /etc/ward/ca.yaml --force")]
    /// Emergency (a stolen issuer key): retire the previous issuer now. Activates a prepared
    /// generation first if need be, then finishes without waiting; certificates the old issuer
    /// signed are refused everywhere within one bundle refresh.
    Retire {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: std::path::PathBuf,
        /// Activate a prepared issuer even before workloads had two bundle refreshes to fetch
        /// it (CA-fed sidecars that had not could no longer verify the CA until restarted).
        #[arg(long)]
        force: bool,
    },
    #[command(
        after_help = "Example:\n  ward-ca rotate status --config /etc/ward/ca.yaml --output json"
    )]
    /// Where a rotation stands and what to do next.
    Status {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: std::path::PathBuf,
        /// Text or JSON.
        #[command(flatten)]
        output: ward_cli::OutputArg,
    },
}

/// Runs one `rotate` subcommand; the human summary goes to `status`, `status`'s report to
/// `out`. Against a CA directory, or (with the keys in PostgreSQL) against the database, which
/// moves every replica: see [`super::rotate_db`].
pub fn run(
    command: RotateCommand,
    out: &mut dyn Write,
    status: &mut dyn Write,
) -> Result<(), Error> {
    let (RotateCommand::Prepare { config, .. }
    | RotateCommand::Activate { config, .. }
    | RotateCommand::Finish { config, .. }
    | RotateCommand::Retire { config, .. }
    | RotateCommand::Status { config, .. }) = &command;
    let (cfg, state) = load(config)?;
    let ca = keys::open(&cfg, &state)?;
    match (command, ca) {
        (RotateCommand::Status { output, .. }, OpCa::Dir(dir)) => {
            super::rotate_status::of_dir(&cfg, &dir, &state, output.output, out)
        }
        (RotateCommand::Status { output, .. }, OpCa::Db(db)) => {
            super::rotate_status::of_db(&cfg, &db, &state, output.output, out)
        }
        (command, OpCa::Dir(dir)) => run_dir(command, &cfg, &dir, &state, status),
        (command, OpCa::Db(db)) => super::rotate_db::run(command, &cfg, &db, &state, status),
    }
}

/// What to do after `prepare`.
pub(super) fn prepared_message(cfg: &CaConfig, p: &rotation::Prepared) -> String {
    let wait = 2 * cfg.bundle_refresh_hint.as_secs();
    if p.new_root {
        format!("new root {} and the next issuer are now in the bundle beside the current ones; run `ward-ca rotate activate` after workloads have fetched them (two bundle refreshes, {wait}s)", p.root_name)
    } else {
        format!("the next issuer is now in the bundle (the root is unchanged); run `ward-ca rotate activate` after workloads have fetched it (two bundle refreshes, {wait}s)")
    }
}

/// What `activate` did.
pub(super) fn activated_message(issuer: &Issuer) -> String {
    format!(
        "activated: new certificates are signed by issuer serial {} (valid until {})\nrun `ward-ca rotate finish` once every certificate of the previous issuer has been renewed, revoked or has expired (`ward-ca rotate status` says how many remain)",
        issuer.issuer_serial(),
        rfc3339(issuer.not_after())
    )
}

/// What `finish` must wait for besides certificates: until when JWT-SVIDs of the previous
/// generation's key may be valid (when this CA issues them and that key existed).
pub(super) fn jwt_wait(cfg: &CaConfig, journal: &Journal, previous_had_key: bool) -> Option<i64> {
    let max_ttl = cfg.jwt_svid.as_ref().map(|j| j.max_ttl);
    jwt_live_until(journal, max_ttl, previous_had_key)
}

/// Refuses `finish` while certificates of the previous issuer (`retiring`: its serial), or
/// JWT-SVIDs of the previous key (`jwt_until`, from [`jwt_wait`]), live, unless `force`.
pub(super) fn check_nothing_live(
    retiring: &[String],
    jwt_until: Option<i64>,
    state: &OpState,
    force: bool,
    status: &mut dyn Write,
) -> Result<(), Error> {
    let (live, last) = live_under(retiring, state)?;
    if live > 0 && !force {
        return Err(RotationError::StillLive {
            count: live,
            last: when(last.unwrap_or(0)),
            issuer: retiring.join(" / "),
        }
        .into());
    }
    if live > 0 {
        let _ = writeln!(status, "warning: {live} certificate(s) of the previous issuer stop being trusted now (--force)");
    }
    if let Some(until) = jwt_until.filter(|u| *u > unix_now()) {
        if !force {
            return Err(RotationError::JwtStillLive { until: when(until) }.into());
        }
        let _ = writeln!(status, "warning: JWT-SVIDs of the previous key (valid until {} at the latest) stop verifying now (--force)", when(until));
    }
    Ok(())
}

/// What `finish` did.
pub(super) fn finished_message(cfg: &CaConfig) -> String {
    format!(
        "finished: the previous issuer is retired (and an old root dropped); workloads refuse its certificates within one bundle refresh ({}s)",
        cfg.bundle_refresh_hint.as_secs()
    )
}

/// What `retire` did; `retired` are the serials of the issuers it retired.
pub(super) fn retired_message(
    cfg: &CaConfig,
    retired: &[String],
    state: &OpState,
    activated: bool,
) -> Result<String, Error> {
    let (live, _) = live_under(retired, state)?;
    Ok(format!(
        "retired the previous issuer{}; the CA stops accepting its certificates within a second and workloads within one bundle refresh ({}s)\n{live} certificate(s) it signed were still valid and not renewed: CA-fed sidecars enroll again with their token file (a Kubernetes token does; a used join token needs a new one)",
        if activated { " (after activating the prepared generation)" } else { "" },
        cfg.bundle_refresh_hint.as_secs()
    ))
}

/// What comes next in a rotation, for `status`; `live` is [`live_under`] the previous issuer.
pub(super) fn next_step(
    journal: &Journal,
    jwt_until: Option<i64>,
    live: (i64, Option<i64>),
    previous: Option<&str>,
) -> String {
    let jwt_pending = jwt_until.filter(|u| *u > unix_now());
    match journal.phase {
        Phase::Idle => {
            "no rotation in progress; start one with `ward-ca rotate prepare [--root]`".to_owned()
        }
        Phase::Prepared => format!(
            "prepared {}s ago; next: `ward-ca rotate activate`",
            unix_now() - journal.prepared_at.unwrap_or(0)
        ),
        Phase::Activating => {
            "an activation was interrupted; rerun `ward-ca rotate activate`".into()
        }
        Phase::Activated => match (live, jwt_pending) {
            ((0, _), Some(until)) => format!(
                "activated; JWT-SVIDs of the previous key may be valid until {}: `ward-ca rotate finish` after that",
                when(until)
            ),
            ((0, _), None) => "activated; nothing live depends on the previous issuer: run `ward-ca rotate finish`".into(),
            ((n, last), _) => format!(
                "activated; {n} certificate(s) of the previous issuer are still valid, unrevoked and not renewed, the last until {}: `ward-ca rotate finish` after that (or `ward-ca rotate retire` now, in an emergency); `ward-ca certs list --issuer {}` names them (state valid)",
                when(last.unwrap_or(0)),
                previous.unwrap_or("<previous issuer serial>")
            ),
        },
    }
}

fn run_dir(
    command: RotateCommand,
    cfg: &CaConfig,
    dir: &Path,
    state: &OpState,
    status: &mut dyn Write,
) -> Result<(), Error> {
    let hint = cfg.bundle_refresh_hint.as_secs() as i64;
    match command {
        RotateCommand::Prepare { root, .. } => {
            let p = rotation::prepare(dir, root, unix_now(), cfg.jwt_algorithm())?;
            let _ = writeln!(
                status,
                "prepared issuer {} in {}; still signing with the current issuer\n{}",
                p.issuer_name,
                dir.join(NEXT).display(),
                prepared_message(cfg, &p)
            );
        }
        RotateCommand::Activate { force, .. } => {
            rotation::activate(dir, unix_now(), hint, force)?;
            let _ = writeln!(
                status,
                "{}\nthe running daemon switches within a second",
                activated_message(&Issuer::load(dir)?)
            );
        }
        RotateCommand::Finish { force, .. } => {
            let journal = Journal::load(dir)?;
            if journal.phase == Phase::Activated {
                let jwt = jwt_wait(cfg, &journal, dir.join(PREVIOUS).join(JWT_KEY).exists());
                let previous = of_role(&issuer_serials_dir(dir)?, "previous");
                check_nothing_live(&previous, jwt, state, force, status)?;
            }
            rotation::finish(dir)?;
            let _ = writeln!(status, "{}", finished_message(cfg));
        }
        RotateCommand::Retire { force, .. } => {
            let before = issuer_serials_dir(dir)?;
            let activated = rotation::retire(dir, unix_now(), hint, force)?;
            let retired = retired_between(&before, &issuer_serials_dir(dir)?);
            let message = retired_message(cfg, &retired, state, activated)?;
            let _ = writeln!(status, "{message}");
        }
        // [`run`] reports status itself, to standard output.
        RotateCommand::Status { output, .. } => {
            super::rotate_status::of_dir(cfg, dir, state, output.output, status)?
        }
    }
    Ok(())
}

/// The certificates that still matter (unexpired, unrevoked, not renewed) among those
/// signed by the issuers with serials `retiring`, and when the last of them expires. Those of
/// generations retired before, revoked or expired ones never block a rotation.
pub(super) fn live_under(
    retiring: &[String],
    state: &OpState,
) -> Result<(i64, Option<i64>), Error> {
    let now = unix_now();
    let mut total = (0, None::<i64>);
    for serial in retiring {
        let (n, last) = state.run(|s| s.live_certs_of(serial, now))?;
        total.0 += n;
        total.1 = total.1.max(last);
    }
    Ok(total)
}

/// The issuers' serials of a CA directory, by role (`signing`, `next`, `previous`).
pub(super) fn issuer_serials_dir(dir: &Path) -> Result<Vec<(&'static str, String)>, Error> {
    let mut serials = vec![("signing", Issuer::load(dir)?.issuer_serial().to_owned())];
    for (sub, role) in [(NEXT, "next"), (PREVIOUS, "previous")] {
        if dir.join(sub).exists() {
            serials.push((
                role,
                Issuer::load(&dir.join(sub))?.issuer_serial().to_owned(),
            ));
        }
    }
    Ok(serials)
}

/// The serials of role `role` (the previous issuer's, which `finish` retires).
pub(super) fn of_role(serials: &[(&'static str, String)], role: &str) -> Vec<String> {
    serials
        .iter()
        .filter(|(r, _)| *r == role)
        .map(|(_, s)| s.clone())
        .collect()
}

/// The serials in `before` that are not in `after`: what a step retired.
pub(super) fn retired_between(
    before: &[(&'static str, String)],
    after: &[(&'static str, String)],
) -> Vec<String> {
    before
        .iter()
        .filter(|(_, s)| !after.iter().any(|(_, a)| a == s))
        .map(|(_, s)| s.clone())
        .collect()
}
