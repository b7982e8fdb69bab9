//! The `state:` key of the CA config: a SQLite file path, or a PostgreSQL connection.
//!
//! ```yaml
//! state: /var/lib/ward-ca/state.db          # one node, embedded SQLite
//! state:                                     # any number of replicas on PostgreSQL
//!   postgres:
//!     url: postgres://ward@db.example:5432/ward
//!     password_file: /var/run/secrets/ward-db/password
//!     ca_file: /var/run/secrets/ward-db/ca.crt
//!     pool_size: 8
//!     kek_file: /var/run/secrets/ward-kek/kek # seals the CA keys kept in the database
//! ```
//!
//! Fail closed: a password inside the URL is refused (it would sit in a ConfigMap and in
//! every `ps`; it belongs in a Secret file), and so is plaintext to anything but a loopback
//! address or a Unix socket. With `ca_file`, the server's certificate must chain to it and
//! name the URL's host (libpq's `verify-full`).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use tokio_postgres::config::{Host, SslMode};
use ward_yaml::{Location, Spanned, YamlError};

/// Connections per replica when `pool_size` is not given.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// Where the CA's own keys and certificates are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaKeys {
    /// A CA directory from `ward-ca init` (one node, SQLite state).
    Dir(PathBuf),
    /// In the PostgreSQL state, sealed under the key-encryption key in this file.
    Database {
        /// The key-encryption key file.
        kek_file: PathBuf,
    },
}

/// Where the CA keeps its state.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StateConfig {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by the replicas.
    Postgres(Box<PgConfig>),
}

/// A validated PostgreSQL connection.
#[derive(Clone, Debug)]
pub struct PgConfig {
    /// Host, port, user, database (never a password).
    pub config: tokio_postgres::Config,
    /// The file holding the password, read at every connect.
    pub password_file: Option<PathBuf>,
    /// PEM roots that authenticate the server; `None`: plaintext (loopback only).
    pub ca_file: Option<PathBuf>,
    /// Connections per replica.
    pub pool_size: usize,
}

impl std::fmt::Display for StateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            Self::Postgres(pg) => {
                let hosts: Vec<String> = pg
                    .config
                    .get_hosts()
                    .iter()
                    .map(|h| match h {
                        Host::Tcp(name) => name.clone(),
                        Host::Unix(path) => path.display().to_string(),
                    })
                    .collect();
                write!(
                    f,
                    "PostgreSQL {} database {}",
                    hosts.join(","),
                    pg.config.get_dbname().unwrap_or("-")
                )
            }
        }
    }
}

/// Where a problem of [`StateFile::keys`] is.
pub(crate) enum At<'a> {
    /// At this key.
    Key(&'a Location),
    /// At `state:`.
    State,
    /// In the file as a whole (a missing key).
    File,
}

/// `state:` as written.
pub(crate) enum StateFile {
    Path(String),
    Postgres(PostgresFile),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineFile {
    postgres: PostgresFile,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresFile {
    url: String,
    password_file: Option<String>,
    ca_file: Option<String>,
    pool_size: Option<u32>,
    kek_file: Option<String>,
}

impl<'de> Deserialize<'de> for StateFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = StateFile;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a SQLite file path, or { postgres: { url, password_file, ca_file, pool_size, kek_file } }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StateFile, E> {
                Ok(StateFile::Path(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StateFile, A::Error> {
                let engine = EngineFile::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(StateFile::Postgres(engine.postgres))
            }
        }
        d.deserialize_any(Either)
    }
}

fn is_local(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

impl StateFile {
    /// Where the CA keys are: the CA directory `ca_dir` with SQLite, the database (sealed
    /// under `kek_file`) with PostgreSQL. `Err` names the problem and where it is.
    pub(crate) fn keys<'a>(
        &self,
        base: &Path,
        ca_dir: Option<&'a Spanned<String>>,
    ) -> Result<CaKeys, (At<'a>, String)> {
        match (self, ca_dir) {
            (Self::Path(_), Some(dir)) => Ok(CaKeys::Dir(base.join(&dir.value))),
            (Self::Path(_), None) => Err((At::File, "ca_dir: required: the CA directory made by `ward-ca init`".into())),
            (Self::Postgres(_), Some(dir)) => Err((At::Key(&dir.referenced), "ca_dir: not used with a PostgreSQL state: every replica signs with the CA keys kept in the database (sealed under state.postgres.kek_file); remove ca_dir, and move an existing CA directory in with `ward-ca state copy --ca-dir`".into())),
            (Self::Postgres(PostgresFile { kek_file: Some(f), .. }), None) => Ok(CaKeys::Database { kek_file: base.join(f) }),
            (Self::Postgres(_), None) => Err((At::State, "state.postgres.kek_file: required: the replicas keep the CA keys in the database, sealed under this key-encryption key (32 random bytes from a Secret; `ward-ca init --config` creates the file when it is missing)".into())),
        }
    }

    /// Validates what was written; relative paths are relative to `base`; `bad` places a
    /// problem at the `state:` key's line.
    pub(crate) fn validate(
        &self,
        base: &Path,
        bad: impl Fn(String) -> YamlError,
    ) -> Result<StateConfig, YamlError> {
        let pg = match self {
            Self::Path(path) if path.trim().is_empty() => {
                return Err(bad(
                    "state: give a SQLite file path or a postgres: block".into()
                ))
            }
            Self::Path(path) => return Ok(StateConfig::Sqlite(base.join(path))),
            Self::Postgres(pg) => pg,
        };
        let mut config = tokio_postgres::Config::from_str(&pg.url)
            .map_err(|e| bad(format!("state.postgres.url: not a PostgreSQL URL: {e}")))?;
        if config.get_password().is_some() {
            return Err(bad("state.postgres.url: holds a password; put it in a file named by password_file (a Secret), never in the config".into()));
        }
        if config.get_user().is_none() {
            return Err(bad(
                "state.postgres.url: name the user, e.g. postgres://ward@db:5432/ward".into(),
            ));
        }
        if config.get_hosts().is_empty() {
            return Err(bad("state.postgres.url: name the host".into()));
        }
        let pool_size = match pg.pool_size {
            None => DEFAULT_POOL_SIZE,
            Some(n @ 1..=256) => n as usize,
            Some(n) => {
                return Err(bad(format!(
                    "state.postgres.pool_size: {n} is not between 1 and 256"
                )))
            }
        };
        let ca_file = pg.ca_file.as_ref().map(|f| base.join(f));
        match &ca_file {
            Some(_) => {
                config.ssl_mode(SslMode::Require);
            }
            // Plaintext only when every place the driver may connect to is on this host:
            // each host, and each hostaddr (which, when given, is where it connects).
            None if config.get_hosts().iter().all(is_local)
                && config.get_hostaddrs().iter().all(|ip| ip.is_loopback()) =>
            {
                config.ssl_mode(SslMode::Disable);
            }
            None => {
                return Err(bad("state.postgres: plaintext to a database that is not on this host; give ca_file (the PEM roots of the server's certificate) for verified TLS".into()))
            }
        }
        Ok(StateConfig::Postgres(Box::new(PgConfig {
            config,
            password_file: pg.password_file.as_ref().map(|f| base.join(f)),
            ca_file,
            pool_size,
        })))
    }
}
