//! The `state:` key (what it refuses, how it resolves paths) and `ward-ca state copy`, the
//! move from a single node's SQLite to PostgreSQL.

use std::path::Path;

use ward_ca::state::config::StateConfig;
use ward_ca::state::records::Revocation;
use ward_ca::state::{unix_now, StateError, Store};
use ward_e2e::postgres::Postgres;

use super::{cert, pg_config, sqlite, token};

/// `state:` refuses what would leak or weaken the database connection, naming file and line.
#[test]
fn state_config_fails_closed() {
    let parse = |state: &str| {
        let yaml = format!("trust_domain: example.org\nca_dir: ca\nlisten: 127.0.0.1:0\n{state}");
        ward_ca::config::CaConfig::parse("ca.yaml", &yaml, Path::new("/etc/ward"))
            .map(|c| c.state)
            .map_err(|e| e.to_string())
    };
    let refused = [
        (
            "state:\n  postgres:\n    url: postgres://ward:hunter2@127.0.0.1/ward\n",
            "holds a password",
        ),
        (
            "state:\n  postgres:\n    url: postgres://ward@db.example.org/ward\n",
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
    let tls = "state:\n  postgres:\n    url: postgres://ward@db.example.org:5433/ward\n    password_file: secret/pw\n    ca_file: secret/ca.crt\n";
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
            assert_eq!(pg.pool_size, ward_ca::state::config::DEFAULT_POOL_SIZE);
        }
        other => panic!("{other:?}"),
    }
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
            "trust_domain: example.org\nca_dir: ca\nlisten: 127.0.0.1:0\n{}",
            pg.state_yaml(&db)
        ),
    )
    .unwrap();
    let copy = || {
        let args = [
            "ward-ca",
            "state",
            "copy",
            "--from",
            path.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ];
        let cli = <ward_ca::cli::Cli as clap::Parser>::try_parse_from(args).unwrap();
        let mut status = Vec::new();
        ward_ca::cli::run(cli, &mut Vec::new(), &mut status)
            .map(|()| String::from_utf8_lossy(&status).into_owned())
            .map_err(|e| e.to_string())
    };
    let said = copy().unwrap();
    assert!(
        said.contains("copied 2 join tokens, 2 certificate records and 2 revocations"),
        "{said}"
    );

    let target = Store::open(&pg_config(&pg, &db)).await.unwrap();
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

    let again = copy().unwrap_err();
    assert!(again.contains("not empty"), "{again}");
    assert_eq!(
        target.snapshot().await.unwrap().normalized(),
        got.normalized(),
        "nothing written"
    );
}

/// `ward-ca rotate` refuses to change one replica's CA directory (the others would go on with
/// another generation) and says what to do instead; `status` still answers.
#[test]
fn rotation_refuses_a_replicated_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ha.yaml");
    std::fs::write(
        &config,
        "trust_domain: example.org\nca_dir: ca\nlisten: 127.0.0.1:0\nstate:\n  postgres:\n    url: postgres://ward@127.0.0.1:1/ward\n",
    )
    .unwrap();
    for step in ["prepare", "activate", "finish", "retire"] {
        let args = [
            "ward-ca",
            "rotate",
            step,
            "--config",
            config.to_str().unwrap(),
        ];
        let cli = <ward_ca::cli::Cli as clap::Parser>::try_parse_from(args).unwrap();
        let err = ward_ca::cli::run(cli, &mut Vec::new(), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not rotate replicas yet"),
            "{step}: {err}"
        );
    }
    assert!(
        !dir.path().join("ca").exists(),
        "nothing was written where a CA directory would be"
    );
}
