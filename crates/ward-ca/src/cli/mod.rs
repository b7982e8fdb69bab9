//! The `ward-ca` command line: argument types and the dispatch the thin binary calls.
//!
//! Values with rules (SPIFFE IDs, trust domains, durations) are taken as text and parsed here,
//! so a bad one produces a single `ward-ca: error: ...` line naming the flag and the rule.

use std::io::Write;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use ward_identity::{SpiffeId, TrustDomain};
use ward_tls::files::{write_atomic, PUBLIC_MODE};

mod args;
mod check;
mod error;
mod federation;
mod keys;
mod listing;
mod ops;
mod rotate;
mod rotate_db;
mod rotate_status;

pub use args::{CertsCommand, Cli, Command, StateCommand, TokenCommand};
pub use error::Error;
pub use federation::FederationCommand;
pub use rotate::RotateCommand;

use crate::authority::csr;
use crate::authority::error::CaError;
use crate::authority::issuer::{check_ttl, rfc3339, Issuer};
use crate::authority::records::CertRecord;
use crate::keys::dir;

/// Runs a parsed command. Normal output goes to `out`, the human summary to `status`.
pub fn run(cli: Cli, out: &mut dyn Write, status: &mut dyn Write) -> Result<(), Error> {
    match cli.command {
        Command::Init {
            config: Some(config),
            force,
            ..
        } => keys::init_config(&config, force, status),
        Command::Init {
            dir,
            trust_domain,
            force,
            ..
        } => {
            let (dir, trust_domain) = (dir.unwrap_or_default(), trust_domain.unwrap_or_default());
            let td = TrustDomain::new(&trust_domain).map_err(|e| Error::Argument {
                flag: "--trust-domain",
                value: trust_domain.clone(),
                problem: e.to_string(),
            })?;
            let summary = dir::init(&dir, &td, force)?;
            keys::created_dir(&dir, &summary, status);
            Ok(())
        }
        Command::Seed { from, dir } => {
            let _ = match dir::seed::seed(&from, &dir)? {
                dir::seed::Seeded::Present => writeln!(
                    status,
                    "CA directory {} present: nothing copied",
                    dir.display()
                ),
                dir::seed::Seeded::Copied {
                    trust_domain,
                    issuer_not_after,
                } => writeln!(
                    status,
                    "CA directory {} seeded from {} (trust domain {trust_domain}, issuer valid until {})",
                    dir.display(),
                    from.display(),
                    rfc3339(issuer_not_after)
                ),
            };
            Ok(())
        }
        Command::Issue {
            dir,
            config,
            csr,
            id,
            dns,
            ttl,
            out: out_path,
        } => {
            let id = SpiffeId::parse(&id).map_err(|e| Error::Argument {
                flag: "--id",
                value: id.clone(),
                problem: e.to_string(),
            })?;
            let ttl_value = ward_yaml::parse_duration(&ttl).map_err(|e| Error::Argument {
                flag: "--ttl",
                value: ttl.clone(),
                problem: e.to_string(),
            })?;
            check_ttl(ttl_value)?;
            let recorded = match &config {
                Some(path) => Some(ops::load(path)?),
                None => None,
            };
            let issuer = match (&recorded, dir) {
                (Some((cfg, state)), _) => keys::signing_issuer(&keys::open(cfg, state)?, state)?,
                (None, Some(dir)) => Issuer::load(&dir)?,
                // clap requires one of the two; say so should it ever not.
                (None, None) => {
                    return Err(Error::Argument {
                        flag: "--dir",
                        value: String::new(),
                        problem: "give --dir or --config".into(),
                    })
                }
            };
            let csr_der = read_csr(&csr)?;
            let issued = issuer.issue(&csr_der, &id, &dns, ttl_value, OffsetDateTime::now_utc())?;
            if let Some((_, state)) = &recorded {
                let record = CertRecord::issued(&issued, "cli", "cli".into(), None);
                state.run(|s| s.issue(record, None))?;
            }
            let pem = issued.chain_pem();
            match &out_path {
                Some(path) => {
                    write_atomic(path, pem.as_bytes(), PUBLIC_MODE).map_err(CaError::from)?
                }
                None => out.write_all(pem.as_bytes()).map_err(|source| {
                    Error::Ca(CaError::Io {
                        path: PathBuf::from("<stdout>"),
                        source,
                    })
                })?,
            }
            let _ = writeln!(
                status,
                "issued {} serial {} valid {} .. {}{}",
                issued.leaf.id,
                issued.leaf.serial_hex,
                unix_rfc3339(issued.leaf.not_before),
                unix_rfc3339(issued.leaf.not_after),
                out_path
                    .map(|p| format!(" -> {}", p.display()))
                    .unwrap_or_default()
            );
            Ok(())
        }
        Command::Check { config, connect } => check::check(&config, connect, out),
        Command::State {
            command:
                StateCommand::Copy {
                    from,
                    ca_dir,
                    config,
                },
        } => ops::state_copy(&from, ca_dir.as_deref(), &config, status),
        Command::Serve { config, log } => {
            ward_cli::init_logging(&log);
            ops::serve(&config)
        }
        Command::Token { command } => match command {
            TokenCommand::Create { config, id, ttl } => {
                ops::token_create(&config, &id, &ttl, out, status)
            }
            TokenCommand::List { config, output } => listing::tokens(&config, output.output, out),
            TokenCommand::Revoke { config, token_id } => {
                ops::token_revoke(&config, &token_id, status)
            }
        },
        Command::Revoke {
            config,
            id,
            serial,
            reason,
        } => ops::revoke(&config, id, serial, reason, status),
        Command::Certs {
            command:
                CertsCommand::List {
                    config,
                    id,
                    issuer,
                    output,
                },
        } => listing::certs(
            &config,
            id.as_deref(),
            issuer.as_deref(),
            output.output,
            out,
        ),
        Command::Rotate { command } => rotate::run(command, out, status),
        Command::Completions { shell } => {
            ward_cli::completions(
                shell,
                <Cli as clap::CommandFactory>::command(),
                "ward-ca",
                out,
            );
            Ok(())
        }
        Command::Federation { command } => federation::run(command, out),
    }
}

fn read_csr(path: &Path) -> Result<Vec<u8>, Error> {
    let refuse = |problem: String| Error::Argument {
        flag: "--csr",
        value: path.display().to_string(),
        problem,
    };
    // Check the size before reading, so a wrong path (a disk image, /dev/zero) is refused
    // instead of read into memory.
    let meta = std::fs::metadata(path).map_err(|e| refuse(format!("cannot read: {e}")))?;
    if !meta.is_file() || meta.len() > csr::MAX_CSR_BYTES as u64 {
        return Err(refuse(format!(
            "not a CSR file of at most {} bytes",
            csr::MAX_CSR_BYTES
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| refuse(format!("cannot read: {e}")))?;
    csr::decode(&bytes).map_err(Error::from)
}

fn unix_rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .map(rfc3339)
        .unwrap_or_else(|_| secs.to_string())
}
