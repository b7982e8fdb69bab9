//! The `state:` key (what it refuses, how it resolves paths) and `ward-ca state copy`, the
//! move from a single node's SQLite and CA directory to PostgreSQL.

use std::path::Path;

use ward_ca::authority::records::Revocation;
use ward_ca::config::state::StateConfig;
use ward_ca::state::{unix_now, StateError, Store};
use ward_e2e::postgres::Postgres;

use super::{cert, pg_config, sqlite, token};

/// `state:` refuses what would leak or weaken the database connection, naming file and line.
#[test]
fn state_config_fails_closed() {
    // A SQLite node names its CA directory; replicas keep the CA in the database.
    let parse_full = |state: &str| {
        let keys = if state.contains("postgres") {
            "# keys: in the database\n"
        } else {
            "ca_dir: ca\n"
        };
        let yaml = format!("trust_domain: example.org\n{keys}listen: 127.0.0.1:0\n{state}");
        ward_ca::config::CaConfig::parse("ca.yaml", &yaml, Path::new("/etc/ward"))
            .map_err(|e| e.to_string())
    };
    let parse = |state: &str| parse_full(state).map(|c| c.state);
    let refused = [
        (
            "state:\n  postgres:\n    url: postgres://ward:hunter2@127.0.0.1/ward\n",
            "holds a password",
        ),
        (
            "state:\n  postgres:\n    url: postgres://ward@db.example.org/ward\n",
            "plaintext to a database that is not on this host",
        ),
        // hostaddr is where the driver connects: a loopback host name does not make it local.
        (
            "state:\n  postgres:\n    url: postgres://ward@localhost/ward?hostaddr=192.0.2.10\n",
            "plaintext to a database that is not on this host",
        ),
        (
            "state:\n  postgres:\n    url: \"host=127.0.0.1 hostaddr=192.0.2.10 user=ward dbname=ward\"\n",
            "plaintext to a database that is not on this host",
        ),
        (
            "state:\n  postgres:\n    url: postgres://127.0.0.1/ward\n",
            "name the user",
        ),
        (
            "state:\n  postgres:\n    url: postgres://ward@127.0.0.1/ward\n    pool_size: 0\n",
            "pool_size: 0",
        ),
        (
            "state:\n  postgres:\n    url: postgres://ward@127.0.0.1/ward\n    password: x\n",
            "unknown field `password`",
        ),
        ("state:\n  mysql: {}\n", "unknown field `mysql`"),
        (
            "state:\n  postgres:\n    url: 'not a url ::'\n",
            "not a PostgreSQL URL",
        ),
        (
            "state:\n  postgres:\n    url: postgres://ward@127.0.0.1/ward\n",
            "state.postgres.kek_file: required",
        ),
    ];
    for (state, expected) in refused {
        let err = parse(state).expect_err(state);
        assert!(err.contains(expected), "{state}: {err}");
        let line: u32 = err
            .strip_prefix("ca.yaml:")
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            (4..=7).contains(&line),
            "names the file and the line: {err}"
        );
    }
    match parse("state: state.db\n").unwrap() {
        StateConfig::Sqlite(path) => assert_eq!(path, Path::new("/etc/ward/state.db")),
        other => panic!("{other:?}"),
    }
    let tls = "state:\n  postgres:\n    url: postgres://ward@db.example.org:5433/ward\n    password_file: secret/pw\n    ca_file: secret/ca.crt\n    kek_file: secret/kek\n";
    assert_eq!(
        parse_full(tls).unwrap().keys,
        ward_ca::config::CaKeys::Database {
            kek_file: "/etc/ward/secret/kek".into()
        }
    );
    match parse(tls).unwrap() {
        StateConfig::Postgres(pg) => {
            assert_eq!(
                pg.password_file.as_deref(),
                Some(Path::new("/etc/ward/secret/pw"))
            );
            assert_eq!(
                pg.ca_file.as_deref(),
                Some(Path::new("/etc/ward/secret/ca.crt"))
            );
            assert_eq!(pg.pool_size, ward_ca::config::state::DEFAULT_POOL_SIZE);
        }
        other => panic!("{other:?}"),
    }
}

/// Where the CA keys are follows from the state: a CA directory for SQLite, the database
/// (under a KEK) for PostgreSQL; the other combinations are refused at their line.
#[test]
fn ca_keys_follow_the_state() {
    let parse = |yaml: &str| {
        ward_ca::config::CaConfig::parse("ca.yaml", yaml, Path::new("/etc/ward"))
            .map(|c| c.keys)
            .map_err(|e| e.to_string())
    };
    let head = "trust_domain: example.org\nlisten: 127.0.0.1:0\n";
    let pg = "state:\n  postgres:\n    url: postgres://ward@127.0.0.1/ward\n    kek_file: kek\n";
    let both = parse(&format!("{head}ca_dir: ca\n{pg}")).unwrap_err();
    assert!(
        both.starts_with("ca.yaml:3:") && both.contains("ca_dir: not used with a PostgreSQL state"),
        "{both}"
    );
    let none = parse(&format!("{head}state: state.db\n")).unwrap_err();
    assert!(none.contains("ca_dir: required"), "{none}");
    assert_eq!(
        parse(&format!("{head}ca_dir: ca\nstate: s.db\n")).unwrap(),
        ward_ca::config::CaKeys::Dir("/etc/ward/ca".into())
    );
}

/// `ward-ca state copy` moves a single node's SQLite state into PostgreSQL whole (so no
/// workload enrolls again), keeps the revocation order and sequence, and refuses a target
/// that already holds records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_copy_moves_a_sqlite_state_into_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let source = sqlite(&path);
    let now = unix_now();
    source.create_token(token(1, now + 600)).await.unwrap();
    source.create_token(token(2, now + 600)).await.unwrap();
    let c1 = cert("s1", "spiffe://example.org/ns/t/sa/w1", now);
    source.issue(c1, Some("hash-1".into())).await.unwrap();
    let mut renewed = cert("s2", "spiffe://example.org/ns/t/sa/w1", now);
    renewed.parent_serial = Some("s1".into());
    source.issue(renewed, None).await.unwrap();
    for (i, serial) in ["s1", "zz"].iter().enumerate() {
        let r = Revocation {
            spiffe_id: None,
            serial: Some((*serial).into()),
            reason: format!("r{i}"),
            revoked_at: now + i as i64,
        };
        source.revoke(r).await.unwrap();
    }

    let pg = Postgres::start();
    let db = pg.create_database("copy");
    let config = dir.path().join("ha.yaml");
    std::fs::write(
        &config,
        format!(
            "trust_domain: example.org\nlisten: 127.0.0.1:0\n{}",
            pg.state_yaml(&db)
        ),
    )
    .unwrap();
    // The node's CA, in the middle of a rotation: that moves too.
    let ca_dir = dir.path().join("ca");
    ward_ca::keys::dir::init(&ca_dir, &"example.org".parse().unwrap(), false).unwrap();
    ward_ca::keys::dir::rotation::prepare(&ca_dir, false, now, Default::default()).unwrap();
    let copy = |with_ca: bool| {
        let mut args = vec![
            "ward-ca",
            "state",
            "copy",
            "--from",
            path.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ];
        if with_ca {
            args.extend(["--ca-dir", ca_dir.to_str().unwrap()]);
        }
        let cli = <ward_ca::cli::Cli as clap::Parser>::try_parse_from(args).unwrap();
        let mut status = Vec::new();
        ward_ca::cli::run(cli, &mut Vec::new(), &mut status)
            .map(|()| String::from_utf8_lossy(&status).into_owned())
            .map_err(|e| e.to_string())
    };
    let target = Store::open(&pg_config(&pg, &db)).await.unwrap();
    let without = copy(false).unwrap_err();
    assert!(
        without.contains("--ca-dir") && without.contains("required"),
        "{without}"
    );
    assert!(
        target.snapshot().await.unwrap().certs.is_empty(),
        "nothing copied"
    );
    let said = copy(true).unwrap();
    assert!(
        said.contains("copied 2 join tokens, 2 certificate records and 2 revocations"),
        "{said}"
    );
    assert!(
        said.contains("copied the CA (2 generation(s), rotation prepared)"),
        "{said}"
    );
    let kek = ward_ca::keys::kek::Kek::load(&pg.kek_file()).unwrap();
    let stored = ward_ca::keys::db::DbCa::on(&target, kek, "example.org".parse().unwrap())
        .unwrap()
        .load()
        .await
        .unwrap()
        .expect("a CA in the database");
    let on_disk = ward_ca::authority::material::CaMaterial::read_dir(&ca_dir).unwrap();
    assert_eq!(
        stored.0.journal, on_disk.journal,
        "the rotation state moved"
    );
    for (db_gen, disk_gen) in [
        (Some(&stored.0.signing), Some(&on_disk.signing)),
        (stored.0.next.as_ref(), on_disk.next.as_ref()),
    ] {
        let (a, b) = (db_gen.unwrap(), disk_gen.unwrap());
        assert_eq!(a.issuer_pem, b.issuer_pem);
        assert_eq!(
            a.issuer_key_pem, b.issuer_key_pem,
            "the key opens as it was"
        );
        assert_eq!(a.root_key_pem, b.root_key_pem);
        assert!(a.jwt_key_pem.is_some());
        assert_eq!(a.jwt_key_pem, b.jwt_key_pem, "the JWT-SVID key moves too");
    }
    let (want, got) = (
        source.snapshot().await.unwrap(),
        target.snapshot().await.unwrap(),
    );
    assert_eq!(got.clone().normalized(), want.clone().normalized());
    assert_eq!(
        got.revocations, want.revocations,
        "same order: the bundle lists them alike"
    );
    assert_eq!(
        target.revocations().await.unwrap().1,
        source.revocations().await.unwrap().1,
        "same generation, so the bundle's sequence does not move back"
    );
    let used = target
        .issue(cert("s3", "x", now), Some("hash-1".into()))
        .await;
    assert!(
        matches!(used, Err(StateError::TokenUnusable)),
        "a used token stays used"
    );

    let again = copy(true).unwrap_err();
    assert!(again.contains("already holds a CA"), "{again}");
    assert_eq!(
        target.snapshot().await.unwrap().normalized(),
        got.normalized(),
        "nothing written"
    );
}
