//! A small pool of PostgreSQL connections, each with its prepared statements.
//!
//! Connections are made on first use and made again after they break (a database restart, a
//! failover), so a replica recovers by itself when the database returns. The password is read
//! from its file at every connect, so rotating the Secret needs no restart. Every operation has
//! a deadline: a database that does not answer makes the request fail (`503
//! state_unavailable`) instead of hanging it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use tokio_postgres::{Client, NoTls, Statement};

use super::tls::MakeRustls;
use crate::config::state::PgConfig;
use crate::state::error::StateError;

/// Longest one connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One live connection and the statements prepared on it.
pub struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// The client, for statements that are not worth preparing.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `sql` prepared on this connection (once; later calls reuse it).
    pub async fn prepared(&mut self, sql: &'static str) -> Result<Statement, StateError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await.map_err(db)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    /// The client, mutably (transactions).
    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// How to reach the database.
#[derive(Clone)]
pub struct Target {
    /// Host, port, user, database and options, without the password.
    pub config: tokio_postgres::Config,
    /// The password's file, read at each connect.
    pub password_file: Option<PathBuf>,
    /// TLS, when the config names a CA file.
    pub tls: Option<MakeRustls>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("hosts", &self.config.get_hosts())
            .field("user", &self.config.get_user())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The password file's text, refused (like the KEK) when group or others may read it.
fn read_password(path: &std::path::Path) -> std::io::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "readable by group/other (mode {mode:04o}); run `chmod 600 {}` (a Kubernetes \
             Secret volume: defaultMode: 0400)",
            path.display()
        )));
    }
    std::fs::read_to_string(path)
}

impl Target {
    /// Where it connects, for messages: `postgres://ward@db:5432/ward (TLS)`.
    pub fn describe(&self) -> String {
        let c = &self.config;
        let ports = c.get_ports();
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                match h {
                    tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                    tokio_postgres::config::Host::Unix(dir) => {
                        format!("{}/.s.PGSQL.{port}", dir.display())
                    }
                }
            })
            .collect();
        format!(
            "postgres://{}@{}/{}{}",
            c.get_user().unwrap_or_default(),
            hosts.join(","),
            c.get_dbname().unwrap_or_default(),
            if self.tls.is_some() { " (TLS)" } else { "" }
        )
    }

    /// A new connection, its I/O driven by a task of its own.
    pub async fn connect(&self) -> Result<Conn, StateError> {
        let mut config = self.config.clone();
        config.connect_timeout(CONNECT_TIMEOUT);
        if let Some(file) = &self.password_file {
            let path = file.clone();
            let read = tokio::task::spawn_blocking(move || read_password(&path))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            let password = read.map_err(|e| {
                StateError::Unavailable(format!("{}: cannot read: {e}", file.display()))
            })?;
            config.password(password.trim_end_matches(['\n', '\r']));
        }
        let at = |e: tokio_postgres::Error| {
            StateError::Unavailable(format!("{}: {}", self.describe(), explain(&e)))
        };
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = config.connect(tls.clone()).await.map_err(at)?;
                tokio::spawn(drive(connection));
                client
            }
            None => {
                let (client, connection) = config.connect(NoTls).await.map_err(at)?;
                tokio::spawn(drive(connection));
                client
            }
        };
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }
}

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(e) = connection.await {
        tracing::warn!(error = %e, "PostgreSQL connection closed");
    }
}

/// A database error as a state error: the engine's cause, boxed.
pub fn db(e: tokio_postgres::Error) -> StateError {
    if e.is_closed() || e.as_db_error().is_none() {
        StateError::Unavailable(explain(&e))
    } else {
        StateError::Db(Box::new(std::io::Error::other(explain(&e))))
    }
}

/// What PostgreSQL said, for a person: the server's own message with its severity and
/// SQLSTATE (`FATAL 28P01: password authentication failed for user "ward"`), or the client's
/// error with every cause it has (`error connecting to server: Connection refused (os error
/// 111)`, `error performing TLS handshake: invalid peer certificate: UnknownIssuer`), never
/// the bare `db error`.
pub fn explain(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

/// A fixed number of connection slots, used round-robin.
#[derive(Debug)]
pub struct Pool {
    target: Target,
    slots: Vec<Mutex<Option<Conn>>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

/// A connection taken from the pool; it goes back when dropped.
pub type Pooled<'a> = MappedMutexGuard<'a, Conn>;

impl Pool {
    /// `size` slots for `target`; nothing is connected yet.
    pub fn new(target: Target, size: usize) -> Self {
        Self {
            target,
            slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A free connection (a busy one's turn is awaited), connected anew if it broke.
    pub async fn get(&self) -> Result<Pooled<'_>, StateError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        let mut guard = None;
        for i in 0..n {
            if let Ok(g) = self.slots[(start + i) % n].try_lock() {
                guard = Some(g);
                break;
            }
        }
        let mut guard = match guard {
            Some(g) => g,
            None => self.slots[start % n].lock().await,
        };
        if guard.as_ref().is_none_or(|c| c.client.is_closed()) {
            *guard = Some(self.target.connect().await?);
        }
        MutexGuard::try_map(guard, Option::as_mut)
            .map_err(|_| StateError::Unavailable("no PostgreSQL connection".into()))
    }
}

impl Target {
    /// How to connect to `pg`: the roots of its `ca_file` read now.
    pub fn from_config(pg: &PgConfig) -> Result<Self, StateError> {
        let tls = match &pg.ca_file {
            None => None,
            Some(file) => {
                let roots = ward_tls::pem::load_certs(file)
                    .map_err(|e| StateError::Unavailable(e.to_string()))?;
                let config = ward_https::ServerAuth::Roots(roots)
                    .client_config()
                    .map_err(|e| StateError::Unavailable(format!("{}: {e}", file.display())))?;
                Some(MakeRustls::new(Arc::new(config)))
            }
        };
        Ok(Target {
            config: pg.config.clone(),
            password_file: pg.password_file.clone(),
            tls,
        })
    }
}
