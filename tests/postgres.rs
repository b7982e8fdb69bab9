//! A real PostgreSQL server for tests: `initdb` into a temporary directory, `pg_ctl start` on
//! a free loopback port, stopped and removed when the value is dropped (a failing test too).
//!
//! PostgreSQL refuses to run as root; when the tests run as root (CI), the server's commands
//! run as the `postgres` system user that Debian's package creates (or `nobody`), through
//! `runuser`. The
//! superuser `ward` authenticates over TCP with SCRAM and a password from a file, as a CA
//! replica does in production. The server binaries come from `WARD_PG_BINDIR`, else the
//! newest `/usr/lib/postgresql/*/bin`, else `PATH`; `make test` installs Debian's
//! `postgresql` package when none is found.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use crate::kit::free_port;

/// The database superuser the tests connect as.
pub const USER: &str = "ward";

/// A running PostgreSQL server.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
}

fn bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WARD_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|bin| bin.join("pg_ctl").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_default()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

impl Postgres {
    /// Creates and starts a fresh server; panics with the server's own log if it cannot.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ward-pg")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let run_as = is_root().then(|| {
            let has_postgres = Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success());
            if has_postgres {
                "postgres"
            } else {
                "nobody"
            }
        });
        let pg = Self {
            bindir: bindir(),
            port: free_port(),
            run_as,
            dir,
        };
        let data = pg.data();
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(pg.run_dir()).unwrap();
        std::fs::write(pg.password_file(), "ward-test-password\n").unwrap();
        std::fs::set_permissions(pg.password_file(), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        // The replicas' key-encryption key (32 random bytes), private as a Secret file is.
        let mut kek = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut kek)
            .unwrap();
        std::fs::write(pg.kek_file(), kek).unwrap();
        std::fs::set_permissions(pg.kek_file(), std::fs::Permissions::from_mode(0o600)).unwrap();
        if let Some(user) = run_as {
            // The server writes its data, log and socket as that user.
            for dir in [&data, &pg.run_dir()] {
                let status = Command::new("chown")
                    .args([&format!("{user}:"), dir.to_str().unwrap()])
                    .status()
                    .unwrap();
                assert!(status.success(), "chown {user} {}", dir.display());
            }
        }
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        let pwfile = pg.password_file();
        pg.server_cmd(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                USER,
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
        );
        // initdb (as the server's user) has read it; the CA refuses a password file that
        // group or others may read, as it would a Secret mounted without defaultMode 0400.
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600)).unwrap();
        // `free_port` only found a port that was free a moment ago: another test may take it
        // first, and then the server cannot bind. Try another.
        let mut pg = pg;
        for _ in 0..4 {
            match pg.try_start() {
                Ok(()) => return pg,
                Err(log) if log.contains("could not bind") || log.contains("already in use") => {
                    pg.port = free_port();
                }
                Err(log) => panic!("PostgreSQL did not start:\n{log}"),
            }
        }
        pg.pg_ctl_start();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log file and socket.
    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The file holding `ward`'s password (as a Secret would).
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    /// The CA replicas' key-encryption key file (`state.postgres.kek_file`).
    pub fn kek_file(&self) -> PathBuf {
        self.dir.path().join("kek")
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL (without password) for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// The `state:` block of a CA config for database `db`.
    pub fn state_yaml(&self, db: &str) -> String {
        format!(
            "state:\n  postgres:\n    url: {}\n    password_file: {}\n    kek_file: {}\n",
            self.url(db),
            self.password_file().display(),
            self.kek_file().display()
        )
    }

    /// Creates an empty database and returns its name.
    pub fn create_database(&self, name: &str) -> String {
        self.psql(&format!("CREATE DATABASE \"{name}\""));
        name.to_owned()
    }

    /// Runs one SQL command as `ward` in database `postgres`; panics on failure.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Runs one SQL command as `ward` in database `db`; returns its unaligned output.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = self.psql_command(db, sql).output().unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The psql command that runs `sql` as `ward` in database `db` (to spawn and leave
    /// running, e.g. a transaction holding a lock).
    pub fn psql_command(&self, db: &str, sql: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join("psql"));
        cmd.env("PGPASSWORD", "ward-test-password").args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            USER,
            "-d",
            db,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]);
        cmd
    }

    /// Stops the server at once (as a crash or a failover would), keeping its data.
    pub fn kill(&self) {
        self.server_cmd(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// Starts the server again on the same port with the same data.
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    fn pg_ctl_start(&self) {
        if let Err(log) = self.try_start() {
            panic!("PostgreSQL did not start:\n{log}");
        }
    }

    /// Starts the server; `Err` is its log.
    fn try_start(&self) -> Result<(), String> {
        let log = self.run_dir().join("server.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200 -c fsync=on -c synchronous_commit=on",
            self.port,
            self.run_dir().display()
        );
        let ok = self.try_server_cmd(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if ok {
            return Ok(());
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // The next attempt writes a fresh log.
        let _ = std::fs::remove_file(&log);
        Err(text)
    }

    fn server_cmd(&self, name: &str, args: &[&str]) {
        assert!(
            self.try_server_cmd(name, args),
            "{name} {args:?} failed (server binaries from {})",
            self.bindir.display()
        );
    }

    fn try_server_cmd(&self, name: &str, args: &[&str]) -> bool {
        let program = self.bindir.join(name);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        cmd.args(args).current_dir(self.dir.path());
        let out = cmd.output().unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): install PostgreSQL (make tools) or set WARD_PG_BINDIR",
                program.display()
            )
        });
        if !out.status.success() {
            eprintln!(
                "{name}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.try_server_cmd(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap_or(""),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

/// The roots a CA kept in PostgreSQL publishes (what a client of its replicas trusts), read
/// through the library with the config's state and KEK.
pub async fn db_ca_roots(config: &ward_ca::config::CaConfig) -> ward_tls::BundleStore {
    let ward_ca::config::CaKeys::Database { kek_file } = &config.keys else {
        panic!("keys in the database")
    };
    let store = ward_ca::state::Store::open(&config.state).await.unwrap();
    let kek = ward_ca::keys::kek::Kek::load(kek_file).unwrap();
    let ca = ward_ca::keys::db::DbCa::on(&store, kek, config.trust_domain.clone()).unwrap();
    let (material, _) = ca.load().await.unwrap().unwrap();
    ward_tls::BundleStore::new(
        ward_tls::TrustBundles::single(config.trust_domain.clone(), material.roots().unwrap())
            .unwrap(),
    )
}
