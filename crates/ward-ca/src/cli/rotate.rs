//! `ward-ca rotate prepare|activate|finish|status`: the operator's side of CA rotation.
//! The directory steps live in [`crate::rotate`]; this adds what needs the config and the
//! state database: the activation wait derived from the bundle refresh hint, and the check
//! that nothing live still chains to the old root before `finish` drops it.

use std::io::Write;
use std::path::Path;

use clap::Subcommand;

use super::ops::{db, load, when};
use crate::error::CaError;
use crate::issuer::{rfc3339, Issuer};
use crate::rotate::{self, Journal, Phase, NEXT, PREVIOUS};
use crate::state::{queries, unix_now};

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
    /// Drop the previous generation (and an old root) from the bundle once nothing live
    /// chains to it.
    Finish {
        /// Daemon config file.
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
        /// Drop the old root even though certificates under it are still valid (they stop
        /// working at once).
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

/// Runs one `rotate` subcommand; the human summary goes to `status`.
pub fn run(command: RotateCommand, status: &mut dyn Write) -> Result<(), CaError> {
    match command {
        RotateCommand::Prepare { config, root } => {
            let (cfg, _) = load(&config)?;
            let p = rotate::prepare(&cfg.ca_dir, root, unix_now())?;
            let wait = 2 * cfg.bundle_refresh_hint.as_secs();
            let next_step = if p.new_root {
                format!("new root {} is now in the bundle beside the current one; run `ward-ca rotate activate` after workloads have fetched it (two bundle refreshes, {wait}s)", p.root_name)
            } else {
                "the root is unchanged, so `ward-ca rotate activate` can run at once".into()
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
            let (cfg, conn) = load(&config)?;
            let journal = Journal::load(&cfg.ca_dir)?;
            if journal.phase == Phase::Activated && journal.new_root {
                let issuer = Issuer::load(&cfg.ca_dir)?;
                let (live, last) = db(queries::live_certs_not_from(
                    &conn,
                    issuer.issuer_serial(),
                    unix_now(),
                ))?;
                if live > 0 && !force {
                    return Err(CaError::Rotation(format!(
                        "{live} certificate(s) issued under the old root are still valid (the last expires {}); dropping the root now would break them. Wait, or pass --force",
                        when(last.unwrap_or(0))
                    )));
                }
                if live > 0 {
                    let _ = writeln!(status, "warning: {live} certificate(s) under the old root stop being trusted now (--force)");
                }
            }
            rotate::finish(&cfg.ca_dir)?;
            let _ = writeln!(
                status,
                "finished: the previous generation is gone and bundle.pem holds only the current root; workloads drop the old root within one bundle refresh ({}s)",
                cfg.bundle_refresh_hint.as_secs()
            );
            Ok(())
        }
        RotateCommand::Status { config } => {
            let (cfg, conn) = load(&config)?;
            rotation_status(&cfg.ca_dir, &conn, status)
        }
    }
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

fn rotation_status(
    dir: &Path,
    conn: &rusqlite::Connection,
    out: &mut dyn Write,
) -> Result<(), CaError> {
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
        Phase::Activated if !journal.new_root => {
            "activated; the root is unchanged, so `ward-ca rotate finish` can run now".into()
        }
        Phase::Activated => {
            let issuer = Issuer::load(dir)?;
            match db(queries::live_certs_not_from(conn, issuer.issuer_serial(), unix_now()))? {
                (0, _) => "activated; nothing live chains to the old root: run `ward-ca rotate finish`".into(),
                (n, last) => format!(
                    "activated; {n} certificate(s) under the old root are still valid, the last until {}: `ward-ca rotate finish` after that",
                    when(last.unwrap_or(0))
                ),
            }
        }
    };
    let _ = writeln!(
        out,
        "bundle:   {roots} root(s), version {}\n{next}",
        journal.bundle_version
    );
    Ok(())
}
