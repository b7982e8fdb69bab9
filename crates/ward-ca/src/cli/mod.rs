//! The `ward-ca` command line: argument types and the dispatch the thin binary calls.
//!
//! Values with rules (SPIFFE IDs, trust domains, durations) are taken as text and parsed here,
//! so a bad one produces a single `ward-ca: error: ...` line naming the flag and the rule.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use time::OffsetDateTime;
use ward_cli::LogFormat;
use ward_identity::{SpiffeId, TrustDomain};
use ward_tls::files::{write_atomic, PUBLIC_MODE};

mod federation;
mod keys;
mod ops;
mod rotate;
mod rotate_db;

pub use rotate::RotateCommand;

use crate::ca_dir;
use crate::csr;
use crate::error::CaError;
use crate::issuer::{check_ttl, rfc3339, Issuer};
use crate::state::records::CertRecord;

/// ward's certificate authority.
#[derive(Debug, Parser)]
#[command(
    name = "ward-ca",
    version,
    about = "ward certificate authority: issues short-lived SPIFFE X.509 SVIDs"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `ward-ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new root CA (10 years) and issuer (1 year): in DIR (plus bundle.pem), or
    /// where a daemon config keeps its keys (its ca_dir, or its PostgreSQL state, sealed
    /// under state.postgres.kek_file, which is created if missing).
    Init {
        /// Directory for the CA files (created 0700 if missing).
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "config",
            conflicts_with = "config",
            requires = "trust_domain"
        )]
        dir: Option<PathBuf>,
        /// Trust domain, e.g. example.org.
        #[arg(long, value_name = "TD", conflicts_with = "config")]
        trust_domain: Option<String>,
        /// Daemon config file: create the CA where it keeps its keys.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Replace an existing CA (every workload must enroll again).
        #[arg(long)]
        force: bool,
    },
    /// Sign a PKCS#10 CSR; prints (or writes) the chain, leaf first. With --dir it is signed
    /// offline and not recorded (for file-fed sidecars); with --config it is recorded in the
    /// daemon's state, which the CA requires before it renews or takes an admin call from it
    /// (how admin certificates are made: no attestor issues an admin ID).
    Issue {
        /// CA directory from `ward-ca init` (offline: the certificate is not recorded).
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "config",
            conflicts_with = "config"
        )]
        dir: Option<PathBuf>,
        /// Daemon config file: sign with its CA (directory or database) and record the
        /// certificate.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// CSR file, PEM or DER. Only its public key is used.
        #[arg(long, value_name = "FILE")]
        csr: PathBuf,
        /// SPIFFE ID to certify, e.g. spiffe://example.org/ns/web/sa/frontend.
        #[arg(long, value_name = "SPIFFE_ID")]
        id: String,
        /// Also certify this DNS name (repeatable), for clients that check host names.
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// Lifetime, between 1m and 24h.
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        ttl: String,
        /// Write the chain here (atomically) instead of to standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Validate a daemon config file without touching the CA directory or the state: keys,
    /// values, trust domain, lifetimes, attestors. Errors name file, line and column.
    Check {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
    },
    /// Run the enrollment daemon (HTTPS API) until SIGTERM/SIGINT.
    Serve {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
        /// Log format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Join tokens: create, list, revoke.
    Token {
        /// Token subcommand.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Revoke every certificate of an ID (issued before now), or one certificate by serial.
    Revoke {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
        /// SPIFFE ID to revoke.
        #[arg(
            long,
            value_name = "SPIFFE_ID",
            conflicts_with = "serial",
            required_unless_present = "serial"
        )]
        id: Option<String>,
        /// Certificate serial (hex) to revoke.
        #[arg(long, value_name = "HEX")]
        serial: Option<String>,
        /// Why (recorded and published).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Trust-domain federation: this CA's bundle document, the foreign bundles in force.
    Federation {
        /// Federation subcommand.
        #[command(subcommand)]
        command: federation::FederationCommand,
    },
    /// Rotate the CA's issuer (and with --root its root) without an outage:
    /// prepare, then activate, then finish.
    Rotate {
        /// Rotation step.
        #[command(subcommand)]
        command: RotateCommand,
    },
    /// Operations on the state as a whole.
    State {
        /// What to do.
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Issued certificates.
    Certs {
        /// Certs subcommand.
        #[command(subcommand)]
        command: CertsCommand,
    },
}

/// `ward-ca token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a single-use join token for one SPIFFE ID; prints it once.
    Create {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
        /// The ID the token enrolls.
        #[arg(long, value_name = "SPIFFE_ID")]
        id: String,
        /// Lifetime of the token.
        #[arg(long, value_name = "DURATION", default_value = "10m")]
        ttl: String,
    },
    /// List tokens (ids and states, never the tokens).
    List {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
    },
    /// Revoke an unused token by its id.
    Revoke {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
        /// Token id from `token list`.
        #[arg(long, value_name = "ID")]
        token_id: String,
    },
}

/// `ward-ca state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy every token, certificate record and revocation of a SQLite state into the state
    /// the config names (a new PostgreSQL database, say), in one transaction, and the CA
    /// directory (every generation and the rotation state) into the database: moving a single
    /// node to replicas without any workload enrolling again. Refused when the target already
    /// holds records or a CA.
    Copy {
        /// The SQLite state file to copy from (left unchanged).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The single node's CA directory (left unchanged); required when the target keeps
        /// the CA keys in PostgreSQL.
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
        /// Daemon config whose `state:` receives the copy.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
    },
}

/// `ward-ca certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List issued certificates, newest first.
    List {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
        /// Only this SPIFFE ID.
        #[arg(long, value_name = "SPIFFE_ID")]
        id: Option<String>,
    },
}

/// Runs a parsed command. Normal output goes to `out`, the human summary to `status`.
pub fn run(cli: Cli, out: &mut dyn Write, status: &mut dyn Write) -> Result<(), CaError> {
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
            let td = TrustDomain::new(&trust_domain).map_err(|e| CaError::Argument {
                flag: "--trust-domain",
                value: trust_domain.clone(),
                problem: e.to_string(),
            })?;
            let summary = ca_dir::init(&dir, &td, force)?;
            keys::created_dir(&dir, &summary, status);
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
            let id = SpiffeId::parse(&id).map_err(|e| CaError::Argument {
                flag: "--id",
                value: id.clone(),
                problem: e.to_string(),
            })?;
            let ttl_value = ward_yaml::parse_duration(&ttl).map_err(|e| CaError::Argument {
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
                    return Err(CaError::Argument {
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
                Some(path) => write_atomic(path, pem.as_bytes(), PUBLIC_MODE)?,
                None => out
                    .write_all(pem.as_bytes())
                    .map_err(|source| CaError::Io {
                        path: PathBuf::from("<stdout>"),
                        source,
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
        Command::Check { config } => ops::check(&config, out),
        Command::State {
            command:
                StateCommand::Copy {
                    from,
                    ca_dir,
                    config,
                },
        } => ops::state_copy(&from, ca_dir.as_deref(), &config, status),
        Command::Serve { config, log_format } => {
            ward_cli::init_logging(log_format);
            ops::serve(&config)
        }
        Command::Token { command } => match command {
            TokenCommand::Create { config, id, ttl } => {
                ops::token_create(&config, &id, &ttl, out, status)
            }
            TokenCommand::List { config } => ops::token_list(&config, out),
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
            command: CertsCommand::List { config, id },
        } => ops::certs_list(&config, id.as_deref(), out),
        Command::Rotate { command } => rotate::run(command, status),
        Command::Federation { command } => federation::run(command, out),
    }
}

fn read_csr(path: &Path) -> Result<Vec<u8>, CaError> {
    let refuse = |problem: String| CaError::Argument {
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
    csr::decode(&bytes).map_err(CaError::from)
}

fn unix_rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .map(rfc3339)
        .unwrap_or_else(|_| secs.to_string())
}
