//! `ward-ca federation bundle|list|show`: the operator's view of federation. `bundle` prints
//! this CA's SPIFFE bundle document (what its bundle endpoint serves; hand it to a partner as
//! their `bundle_file`); `list` and `show` read the foreign bundles the daemon has accepted
//! from the state, so they work while it runs and on any replica's config.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::keys::{self, OpCa};
use super::ops::{load, when};
use crate::error::CaError;
use crate::server::authority::Authority;

/// `ward-ca federation` subcommands.
#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    #[command(
        after_help = "Example:\n  ward-ca federation bundle --config /etc/ward/ca.yaml > example.org.bundle.json"
    )]
    /// Print this CA's SPIFFE bundle document (roots, and JWT keys with jwt_svid), for a
    /// partner's `bundle_file`.
    Bundle {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
    },
    #[command(after_help = "Example:\n  ward-ca federation list --config /etc/ward/ca.yaml")]
    /// The foreign trust domains: configured, and the bundle of each in force.
    List {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
    },
    #[command(
        after_help = "Example:\n  ward-ca federation show --config /etc/ward/ca.yaml --trust-domain partner.example"
    )]
    /// One foreign trust domain's bundle document, as accepted.
    Show {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
        /// The foreign trust domain.
        #[arg(long, value_name = "TD")]
        trust_domain: String,
    },
}

/// Runs one `federation` subcommand; documents and tables go to `out`.
pub fn run(command: FederationCommand, out: &mut dyn Write) -> Result<(), CaError> {
    match command {
        FederationCommand::Bundle { config } => {
            let (cfg, state) = load(&config)?;
            let td = &cfg.trust_domain;
            let authority = match keys::open(&cfg, &state)? {
                OpCa::Dir(dir) => Authority::load(&dir, td)?,
                OpCa::Db(db) => {
                    let (m, _) = keys::material(&db, &state)?;
                    Authority::from_material(&m, td, &crate::ca_store::DbCa::origin())?
                }
            };
            let mut keys = authority.jwks.clone();
            if cfg.jwt_svid.is_some() {
                keys.extend(authority.jwt_jwks());
            }
            // Sequence 0: any document the endpoint serves later (from 1 up) supersedes it.
            let doc = json!({
                "keys": keys,
                "spiffe_sequence": 0,
                "spiffe_refresh_hint": cfg.bundle_refresh_hint.as_secs(),
            });
            let _ = writeln!(out, "{doc:#}");
        }
        FederationCommand::List { config } => {
            let (cfg, state) = load(&config)?;
            let stored = state.run(|s| s.federated_bundles())?;
            let _ = writeln!(
                out,
                "{:<28} {:<10} {:<22} {:<6} {:<5} ENDPOINT",
                "TRUST DOMAIN", "SEQUENCE", "REFRESHED", "ROOTS", "JWT"
            );
            for f in &cfg.federation.federates_with {
                let td = &f.trust_domain;
                let row = stored
                    .iter()
                    .find(|r| r.trust_domain == td.as_str())
                    .map(|r| {
                        (
                            r,
                            crate::federation::bundle::parse(td, r.document.as_bytes()),
                        )
                    });
                let (seq, at, roots, jwt) = match row {
                    Some((r, Ok(b))) => (
                        r.sequence.to_string(),
                        when(r.refreshed_at),
                        b.roots.len().to_string(),
                        b.jwt_keys.len().to_string(),
                    ),
                    Some((_, Err(e))) => {
                        (format!("unusable: {e}"), "-".into(), "-".into(), "-".into())
                    }
                    None => ("none yet".into(), "-".into(), "-".into(), "-".into()),
                };
                let _ = writeln!(
                    out,
                    "{td:<28} {seq:<10} {at:<22} {roots:<6} {jwt:<5} {}",
                    f.url
                );
            }
        }
        FederationCommand::Show {
            config,
            trust_domain,
        } => {
            let (_, state) = load(&config)?;
            let stored = state.run(|s| s.federated_bundles())?;
            let r = stored
                .iter()
                .find(|r| r.trust_domain == trust_domain)
                .ok_or_else(|| CaError::Argument {
                    flag: "--trust-domain",
                    value: trust_domain.clone(),
                    problem: "no bundle of this trust domain has been accepted".into(),
                })?;
            let _ = writeln!(out, "{}", r.document);
        }
    }
    Ok(())
}
