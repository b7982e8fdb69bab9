//! `ward-ca rotate prepare|activate|finish|retire|status`: the operator's side of CA rotation.
//! The directory steps live in [`crate::rotate`]; this adds what needs the config and the
//! state database: the activation wait derived from the bundle refresh hint, and the check
//! that nothing live (and not yet renewed) still depends on the previous issuer before
//! `finish` retires it.

use std::io::Write;
use std::path::Path;

use clap::Subcommand;

use super::ops::{load, when, OpState};
use crate::error::CaError;
use crate::issuer::{rfc3339, Issuer};
use crate::rotate::{self, Journal, Phase, RotationError, NEXT, PREVIOUS};
use crate::state::config::StateConfig;
use crate::state::unix_now;

/// `ward-ca rotate` subcommands.
#[derive(Debug, Subcommand)]
pub enum RotateCommand {
    /// Create the next issuer (with --root, also a new root) and publish its root in the
    /// bundle; the current issuer keeps signing.
    Prepare {
        /// Daemon config file.
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
        /// Rotate the root too, not only the issuing intermediate.
        #[arg(long)]
        root: bool,
    },
    /// Sign with the prepared issuer from now on (the daemon picks it up within a second).
    Activate {
        /// Daemon config file.
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
        /// Activate a new root before workloads have had two bundle refreshes to fetch it.
        #[arg(long)]
        force: bool,
    },
    /// Retire the previous issuer (and an old root) once nothing live chains to it: from
    /// then on a certificate it signed is refused everywhere.
    Finish {
        /// Daemon config file.
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
        /// Retire it even though certificates it signed are still valid and not yet renewed
        /// (they stop working at once).
        #[arg(long)]
        force: bool,
    },
    /// Emergency (a stolen issuer key): retire the previous issuer now. Activates a prepared
    /// generation first if need be, then finishes without waiting; certificates the old issuer
    /// signed are refused everywhere within one bundle refresh.
    Retire {
        /// Daemon config file.
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
        /// Activate a prepared issuer even before workloads had two bundle refreshes to fetch
        /// it (CA-fed sidecars that had not could no longer verify the CA until restarted).
        #[arg(long)]
        force: bool,
    },
    /// Where a rotation stands and what to do next.
    Status {
        /// Daemon config file.
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
    },
}

/// Refuses to change the CA directory of one replica of several: a rotation written into one
/// replica's `ca_dir` would leave the others signing with, and publishing, another generation.
fn refuse_replicated(config: &Path) -> Result<(), CaError> {
    let cfg = crate::config::CaConfig::load(config)?;
    if matches!(cfg.state, StateConfig::Sqlite(_)) {
        return Ok(());
    }
    Err(CaError::Argument {
        flag: "--config",
        value: config.display().to_string(),
        problem: "names a PostgreSQL state shared by replicas; `ward-ca rotate` does not rotate replicas yet (it would change this CA directory only, and replicas with their own copy would go on signing with, and publishing, the old generation); see \"Moving a single node to PostgreSQL\" in docs/operations.md".into(),
    })
}

/// Runs one `rotate` subcommand; the human summary goes to `status`.
pub fn run(command: RotateCommand, status: &mut dyn Write) -> Result<(), CaError> {
    match &command {
        RotateCommand::Prepare { config, .. }
        | RotateCommand::Activate { config, .. }
        | RotateCommand::Finish { config, .. }
        | RotateCommand::Retire { config, .. } => refuse_replicated(config)?,
        RotateCommand::Status { .. } => {}
    }
    match command {
        RotateCommand::Prepare { config, root } => {
            let (cfg, _) = load(&config)?;
            let p = rotate::prepare(&cfg.ca_dir, root, unix_now())?;
            let wait = 2 * cfg.bundle_refresh_hint.as_secs();
            let next_step = if p.new_root {
                format!("new root {} and the next issuer are now in the bundle beside the current ones; run `ward-ca rotate activate` after workloads have fetched them (two bundle refreshes, {wait}s)", p.root_name)
            } else {
                format!("the next issuer is now in the bundle (the root is unchanged); run `ward-ca rotate activate` after workloads have fetched it (two bundle refreshes, {wait}s)")
            };
            let _ = writeln!(
                status,
                "prepared issuer {} in {}; still signing with the current issuer\n{next_step}",
                p.issuer_name,
                cfg.ca_dir.join(NEXT).display()
            );
            Ok(())
        }
        RotateCommand::Activate { config, force } => {
            let (cfg, _) = load(&config)?;
            let hint = cfg.bundle_refresh_hint.as_secs() as i64;
            rotate::activate(&cfg.ca_dir, unix_now(), hint, force)?;
            let issuer = Issuer::load(&cfg.ca_dir)?;
            let _ = writeln!(
                status,
                "activated: new certificates are signed by issuer serial {} (valid until {}); the running daemon switches within a second\nrun `ward-ca rotate finish` once the previous generation's certificates have expired (`ward-ca rotate status` says when)",
                issuer.issuer_serial(),
                rfc3339(issuer.not_after())
            );
            Ok(())
        }
        RotateCommand::Finish { config, force } => {
            let (cfg, state) = load(&config)?;
            let journal = Journal::load(&cfg.ca_dir)?;
            if journal.phase == Phase::Activated {
                let (live, last) = live_under_previous(&cfg.ca_dir, &state)?;
                if live > 0 && !force {
                    return Err(RotationError::StillLive {
                        count: live,
                        last: when(last.unwrap_or(0)),
                    }
                    .into());
                }
                if live > 0 {
                    let _ = writeln!(status, "warning: {live} certificate(s) of the previous issuer stop being trusted now (--force)");
                }
            }
            rotate::finish(&cfg.ca_dir)?;
            let _ = writeln!(
                status,
                "finished: the previous issuer is retired (and an old root dropped); workloads refuse its certificates within one bundle refresh ({}s)",
                cfg.bundle_refresh_hint.as_secs()
            );
            Ok(())
        }
        RotateCommand::Retire { config, force } => {
            let (cfg, state) = load(&config)?;
            let hint = cfg.bundle_refresh_hint.as_secs() as i64;
            let activated = rotate::retire(&cfg.ca_dir, unix_now(), hint, force)?;
            let (live, _) = live_under_previous(&cfg.ca_dir, &state)?;
            let _ = writeln!(
                status,
                "retired the previous issuer{}; the daemon stops accepting its certificates within a second and workloads within one bundle refresh ({}s)\n{live} certificate(s) it signed were still valid and not renewed: CA-fed sidecars enroll again with their token file (a Kubernetes token does; a used join token needs a new one)",
                if activated { " (after activating the prepared generation)" } else { "" },
                cfg.bundle_refresh_hint.as_secs()
            );
            Ok(())
        }
        RotateCommand::Status { config } => {
            let (cfg, state) = load(&config)?;
            rotation_status(&cfg.ca_dir, &state, status)
        }
    }
}

/// Live, not yet renewed certificates not signed by the issuer that signs now.
fn live_under_previous(dir: &Path, state: &OpState) -> Result<(i64, Option<i64>), CaError> {
    let issuer = Issuer::load(dir)?;
    state.run(|s| s.live_certs_not_from(issuer.issuer_serial(), unix_now()))
}

fn describe(dir: &Path, label: &str, out: &mut dyn Write) -> Result<(), CaError> {
    let issuer = Issuer::load(dir)?;
    let (_, root) =
        x509_parser::parse_x509_certificate(issuer.root()).map_err(|e| CaError::BadCa {
            path: dir.to_path_buf(),
            problem: e.to_string(),
        })?;
    let _ = writeln!(
        out,
        "{label:<9} issuer serial {} valid until {}; root {}",
        issuer.issuer_serial(),
        rfc3339(issuer.not_after()),
        root.subject()
    );
    Ok(())
}

fn rotation_status(dir: &Path, state: &OpState, out: &mut dyn Write) -> Result<(), CaError> {
    let journal = Journal::load(dir)?;
    describe(dir, "signing:", out)?;
    if dir.join(NEXT).exists() {
        describe(&dir.join(NEXT), "next:", out)?;
    }
    if dir.join(PREVIOUS).exists() {
        describe(&dir.join(PREVIOUS), "previous:", out)?;
    }
    let roots = rotate::bundle_roots(dir)?.len();
    let next = match journal.phase {
        Phase::Idle => {
            "no rotation in progress; start one with `ward-ca rotate prepare [--root]`".to_owned()
        }
        Phase::Prepared => format!(
            "prepared {} ago; next: `ward-ca rotate activate`",
            unix_now() - journal.prepared_at.unwrap_or(0)
        ),
        Phase::Activating => {
            "an activation was interrupted; rerun `ward-ca rotate activate`".into()
        }
        Phase::Activated => match live_under_previous(dir, state)? {
            (0, _) => "activated; nothing live depends on the previous issuer: run `ward-ca rotate finish`".into(),
            (n, last) => format!(
                "activated; {n} certificate(s) of the previous issuer are still valid and not renewed, the last until {}: `ward-ca rotate finish` after that (or `ward-ca rotate retire` now, in an emergency)",
                when(last.unwrap_or(0))
            ),
        },
    };
    let _ = writeln!(
        out,
        "bundle:   {roots} root(s), version {}\n{next}",
        journal.bundle_version
    );
    Ok(())
}
