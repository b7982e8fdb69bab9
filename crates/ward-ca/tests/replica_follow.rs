//! A replica that cannot load a new CA version at once (the database's read of the CA
//! material too slow, as under a lock) is not ready and signs nothing until it has
//! installed it, and tries again until it does: it never stays on the issuer the CA moved
//! away from. Real `ward-ca` binaries, a real PostgreSQL, and a psql session holding a lock
//! on the CA material table longer than the replica's database timeout. A stored version
//! older than the one it serves is never installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ward_e2e::kit::free_port;
use ward_e2e::postgres::Postgres;

const BIN: &str = env!("CARGO_BIN_EXE_ward-ca");

struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ward_ca(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn config(dir: &Path, pg: &Postgres, db: &str, name: &str, port: u16) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "trust_domain: example.org\nlisten: \"127.0.0.1:{port}\"\ndns_names: [localhost]\n{}",
            pg.state_yaml(db)
        ),
    )
    .unwrap();
    path
}

/// The roles and serials of the issuers `addr` publishes, and its `/readyz` status.
async fn view(trust: &ward_tls::BundleStore, addr: SocketAddr) -> (Vec<String>, u16) {
    let c = ward_e2e::https::connector(trust.clone(), "spiffe://example.org/ward/ca", None);
    let mut conn = ward_e2e::https::Conn::open(&c, addr).await.unwrap();
    let bundle = conn.request("GET", "/v1/bundle", b"").await.unwrap();
    let issuers = bundle.json()["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["role"].as_str().unwrap().to_owned())
        .collect();
    let ready = conn.request("GET", "/readyz", b"").await.unwrap().status;
    (issuers, ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_load_a_new_version_retries_and_is_unready_meanwhile() {
    let pg = Postgres::start();
    let db = pg.create_database("follow");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let admin = config(dir, &pg, &db, "ca.yaml", 1);
    let admin = admin.to_str().unwrap();
    let out = ward_ca(dir, &["init", "--config", admin]);
    assert!(out.status.success(), "{}", said(&out));

    let port = free_port();
    let cfg = config(dir, &pg, &db, "replica.yaml", port);
    let replica = Replica(
        Command::new(BIN)
            .current_dir(dir)
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .stderr(std::fs::File::create(dir.join("replica.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let trust =
        ward_e2e::postgres::db_ca_roots(&ward_ca::config::CaConfig::load(&cfg).unwrap()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let anon = ward_e2e::https::connector(trust.clone(), "spiffe://example.org/ward/ca", None);
    while ward_e2e::https::Conn::open(&anon, addr).await.is_err() {
        assert!(Instant::now() < deadline, "the replica did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(view(&trust, addr).await, (vec!["signing".into()], 200));

    // The replica is paused while a new version (the next issuer) is stored: it stops being
    // live, so `prepare` stops waiting for it, and says so.
    let pid = replica.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let out = ward_ca(dir, &["rotate", "prepare", "--config", admin]);
    assert!(out.status.success(), "{}", said(&out));
    // It was live and behind when the wait began: its dropping out is said, not hidden.
    assert!(
        said(&out).contains("stopped being heard from while this waited"),
        "{}",
        said(&out)
    );

    // Its read of the CA material now stalls past its database timeout (10 s).
    let lock_for = 14;
    let mut psql = pg
        .psql_command(
            &db,
            &format!("BEGIN; LOCK TABLE ca_generations IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({lock_for}); COMMIT;"),
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let locked_at = Instant::now();
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());

    // While it cannot install the stored version it is not ready.
    let mut unready = false;
    while locked_at.elapsed() < Duration::from_secs(lock_for - 1) {
        let (roles, ready) = view(&trust, addr).await;
        assert_eq!(
            roles,
            vec!["signing".to_owned()],
            "nothing new installed yet"
        );
        unready |= ready == 503;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        unready,
        "a replica behind the stored CA version said it was ready"
    );
    let _ = psql.wait();

    // Once the database answers, it installs the version it missed.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (roles, ready) = view(&trust, addr).await;
        if roles == ["signing", "next"] && ready == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never retried the version it missed: {roles:?} {ready}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A database set back to an older version (a restored backup) is never followed: the
    // replica keeps what it has and says it is not ready.
    let current = pg.psql_in(&db, "SELECT version FROM ca_rotation");
    pg.psql_in(&db, "UPDATE ca_rotation SET version = 1");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (roles, ready) = view(&trust, addr).await;
        assert_eq!(roles, ["signing", "next"]);
        if ready == 503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an older stored version went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    pg.psql_in(&db, &format!("UPDATE ca_rotation SET version = {current}"));

    // Its log is for operators: the schema check at start (`CREATE TABLE IF NOT EXISTS` on a
    // database `init` made) is not news, and no field prints a Rust Option.
    let log = std::fs::read_to_string(dir.join("replica.log")).unwrap();
    assert!(log.contains("not ready") || log.contains("behind"), "{log}");
    assert!(!log.contains("already exists, skipping"), "{log}");
    assert!(!log.contains("NOTICE"), "{log}");
    let options = ward_e2e::kit::debug_options_in_logs(dir);
    assert!(options.is_empty(), "{options:#?}");
}
