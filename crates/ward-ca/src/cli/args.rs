//! The `ward-ca` command line as clap sees it: every subcommand, its flags, and an example of
//! each in its `--help` (checked by a test, so a new subcommand cannot come without one).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use super::federation::FederationCommand;
pub use super::rotate::RotateCommand;

/// ward's certificate authority.
#[derive(Debug, Parser)]
#[command(
    name = "ward-ca",
    version = ward_cli::LONG_VERSION,
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
    #[command(
        after_help = "Example:\n  ward-ca init --dir /etc/ward/ca --trust-domain example.org\n  ward-ca init --config /etc/ward/ca.yaml"
    )]
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
    #[command(
        after_help = "Example (the init container of deploy/kubernetes/ca):\n  ward-ca seed --from /seed --dir /var/lib/ward/ca"
    )]
    /// Install a CA made elsewhere with `ward-ca init` (e.g. the ward-ca-keys Secret as
    /// Kubernetes mounts it) as the daemon's CA directory, with 0600 keys, checked as `serve`
    /// checks it: the first time only. Does nothing when DIR already holds a CA (after a
    /// rotation, say), so it is safe on every start.
    Seed {
        /// Where the CA's files are (root.pem, issuer.pem, issuer.key, bundle.pem, and
        /// root.key, jwt.key, rotation.json when present).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The CA directory to create (its parent must exist).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    #[command(
        after_help = "Example:\n  ward-ca issue --config /etc/ward/ca.yaml --csr admin.csr --id spiffe://example.org/ward/admin --ttl 8h --out admin.pem"
    )]
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
    #[command(
        after_help = "Examples:\n  ward-ca check --config /etc/ward/ca.yaml\n  ward-ca check --config /etc/ward/ca.yaml --connect"
    )]
    /// Validate a daemon config file: keys, values, trust domain, lifetimes, attestors.
    /// Errors name file, line and column. With --connect, also reach the state (its schema
    /// version) and open the CA keys (the CA directory, or the database's CA with the KEK),
    /// changing nothing.
    Check {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
        /// Also connect to the state and open the CA keys.
        #[arg(long)]
        connect: bool,
    },
    #[command(
        after_help = "Example:\n  WARD_CA_CONFIG=/etc/ward/ca.yaml ward-ca serve --log-format json --log-level info,ward::audit=info"
    )]
    /// Run the enrollment daemon (HTTPS API) until SIGTERM/SIGINT.
    Serve {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
        /// Logging.
        #[command(flatten)]
        log: ward_cli::LogArgs,
    },
    #[command(
        after_help = "Examples:\n  ward-ca token create --config /etc/ward/ca.yaml --id spiffe://example.org/ns/web/sa/frontend\n  ward-ca token list --config /etc/ward/ca.yaml"
    )]
    /// Join tokens: create, list, revoke.
    Token {
        /// Token subcommand.
        #[command(subcommand)]
        command: TokenCommand,
    },
    #[command(
        after_help = "Example:\n  ward-ca revoke --config /etc/ward/ca.yaml --id spiffe://example.org/ns/web/sa/frontend --reason \"node compromised\""
    )]
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
    #[command(after_help = "Examples:\n  ward-ca federation list --config /etc/ward/ca.yaml")]
    /// Trust-domain federation: this CA's bundle document, the foreign bundles in force.
    Federation {
        /// Federation subcommand.
        #[command(subcommand)]
        command: FederationCommand,
    },
    #[command(
        after_help = "Examples:\n  ward-ca rotate status --config /etc/ward/ca.yaml\n  ward-ca rotate prepare --config /etc/ward/ca.yaml"
    )]
    /// Rotate the CA's issuer (and with --root its root) without an outage:
    /// prepare, then activate, then finish.
    Rotate {
        /// Rotation step.
        #[command(subcommand)]
        command: RotateCommand,
    },
    #[command(
        after_help = "Examples:\n  ward-ca state copy --from /var/lib/ward/state.db --ca-dir /var/lib/ward/ca --config /etc/ward/ca-ha.yaml"
    )]
    /// Operations on the state as a whole.
    State {
        /// What to do.
        #[command(subcommand)]
        command: StateCommand,
    },
    #[command(
        after_help = "Examples:\n  ward-ca certs list --config /etc/ward/ca.yaml --id spiffe://example.org/ns/web/sa/frontend"
    )]
    /// Issued certificates.
    Certs {
        /// Certs subcommand.
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  ward-ca completions bash > /etc/bash_completion.d/ward-ca\n  ward-ca completions zsh > \"${fpath[1]}/_ward-ca\""
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: ward_cli::Shell,
    },
}

/// `ward-ca token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    #[command(
        after_help = "Example:\n  ward-ca token create --config /etc/ward/ca.yaml --id spiffe://example.org/ns/web/sa/frontend --ttl 30m"
    )]
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
    #[command(
        after_help = "Example:\n  ward-ca token list --config /etc/ward/ca.yaml --output json | jq '.tokens[] | select(.state == \"unused\")'"
    )]
    /// List tokens (ids and states, never the tokens).
    List {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
        /// Text or JSON.
        #[command(flatten)]
        output: ward_cli::OutputArg,
    },
    #[command(
        after_help = "Example:\n  ward-ca token revoke --config /etc/ward/ca.yaml --token-id 3f9c1a7e2b4d6f80"
    )]
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
    #[command(
        after_help = "Example:\n  ward-ca state copy --from /var/lib/ward/state.db --ca-dir /etc/ward/ca --config /etc/ward/ca-postgres.yaml"
    )]
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
    #[command(
        after_help = "Examples:\n  ward-ca certs list --config /etc/ward/ca.yaml --id spiffe://example.org/ns/web/sa/frontend --output json\n  ward-ca certs list --config /etc/ward/ca.yaml --issuer 5dbd61e9eccdc23b564860a75a5d8e2f"
    )]
    /// List issued certificates, newest first, with the issuer that signed each and its
    /// state (valid, renewed, expired, revoked).
    List {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
        /// Only this SPIFFE ID.
        #[arg(long, value_name = "SPIFFE_ID")]
        id: Option<String>,
        /// Only certificates signed by the issuer with this serial (`rotate status` shows
        /// each generation's); those `valid` are what `rotate finish` waits for.
        #[arg(long, value_name = "SERIAL")]
        issuer: Option<String>,
        /// Text or JSON.
        #[command(flatten)]
        output: ward_cli::OutputArg,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_subcommand_shows_an_example() {
        let missing = ward_cli::missing_examples(&super::Cli::command());
        assert!(missing.is_empty(), "no example in --help of: {missing:?}");
    }
}
