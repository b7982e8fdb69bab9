//! The behavioural suite of the CA's state: what every engine behind [`Store`] must do,
//! written against the interface only and run against each engine (SQLite in a temporary
//! directory, a real PostgreSQL server started for the test). A behaviour only one engine
//! passes is a bug in the other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ward_ca::authority::records::{CertRecord, FederatedRecord, Revocation, TokenRecord};
use ward_ca::config::state::StateConfig;
use ward_ca::state::{sqlite, unix_now, StateError, Store};
use ward_e2e::postgres::Postgres;

/// What the errors of a PostgreSQL state say.
#[path = "state/errors.rs"]
mod errors;

/// The `state:` key and `ward-ca state copy`.
#[path = "state/config_and_copy.rs"]
mod config_and_copy;

fn cert(serial: &str, id: &str, issued_at: i64) -> CertRecord {
    CertRecord {
        serial: serial.into(),
        spiffe_id: id.into(),
        not_before: issued_at,
        not_after: issued_at + 3600,
        attestor: "join_token".into(),
        client: "127.0.0.1".into(),
        issued_at,
        parent_serial: None,
        issuer: Some("i1".into()),
        fingerprint: Some(format!("fp-{serial}")),
    }
}

fn token(n: u32, expires_at: i64) -> TokenRecord {
    TokenRecord {
        hash: format!("hash-{n}"),
        token_id: format!("tok-{n}"),
        spiffe_id: format!("spiffe://example.org/ns/t/sa/w{n}"),
        created_at: unix_now(),
        expires_at,
        used_at: None,
        revoked_at: None,
    }
}

/// Every behaviour, against a fresh store; `reopen` opens the same state again (as a restart
/// or a second replica would).
async fn suite(store: Store, reopen: impl Fn() -> Store) {
    tokens_are_single_use(&store).await;
    certificates_are_recorded_once(&store).await;
    revocations_cover_what_they_say(&store).await;
    rotation_counts_only_live_unrenewed_certificates(&store).await;
    concurrent_use_of_one_token_issues_once(&store).await;
    foreign_bundles_never_go_backwards(&store).await;
    let again = reopen();
    assert!(
        again.cert("c1").await.unwrap().is_some(),
        "a committed record survives a reopen"
    );
    assert_eq!(
        again.revocations().await.unwrap(),
        store.revocations().await.unwrap(),
        "two handles on the same state read the same revocations and generation"
    );
}

/// Federation: a foreign bundle is kept per trust domain, replaced by a newer sequence (or
/// the same), never by an older one.
async fn foreign_bundles_never_go_backwards(store: &Store) {
    let rec = |td: &str, doc: &str, sequence: i64| FederatedRecord {
        trust_domain: td.into(),
        document: doc.into(),
        sequence,
        refreshed_at: 100 + sequence,
    };
    store
        .store_federated(rec("b.example", "v5", 5))
        .await
        .unwrap();
    store
        .store_federated(rec("c.example", "c1", 1))
        .await
        .unwrap();
    store
        .store_federated(rec("b.example", "v3", 3))
        .await
        .unwrap();
    store
        .store_federated(rec("b.example", "v6", 6))
        .await
        .unwrap();
    store
        .store_federated(rec("c.example", "c1b", 1))
        .await
        .unwrap();
    let all = store.federated_bundles().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|r| (r.trust_domain.as_str(), r.document.as_str(), r.sequence))
            .collect::<Vec<_>>(),
        vec![("b.example", "v6", 6), ("c.example", "c1b", 1)]
    );
}

async fn tokens_are_single_use(store: &Store) {
    let now = unix_now();
    store.create_token(token(1, now + 600)).await.unwrap();
    store.create_token(token(2, now - 1)).await.unwrap();
    store.create_token(token(3, now + 600)).await.unwrap();
    let found = store.token("hash-1").await.unwrap().unwrap();
    assert_eq!(found.token_id, "tok-1");
    assert!(store.token("hash-none").await.unwrap().is_none());

    store
        .issue(cert("t1", &found.spiffe_id, now), Some("hash-1".into()))
        .await
        .unwrap();
    let used = store.token("hash-1").await.unwrap().unwrap();
    assert_eq!(
        used.used_at,
        Some(now),
        "consumed at the certificate's issued_at"
    );
    let replay = store
        .issue(cert("t1b", &found.spiffe_id, now), Some("hash-1".into()))
        .await;
    assert!(
        matches!(replay, Err(StateError::TokenUnusable)),
        "{replay:?}"
    );
    assert!(
        store.cert("t1b").await.unwrap().is_none(),
        "a refused token records no certificate"
    );
    let expired = store
        .issue(
            cert("t2", "spiffe://example.org/ns/t/sa/w2", now),
            Some("hash-2".into()),
        )
        .await;
    assert!(
        matches!(expired, Err(StateError::TokenUnusable)),
        "{expired:?}"
    );

    store.revoke_token("tok-3", now).await.unwrap();
    let again = store.revoke_token("tok-3", now).await;
    assert!(matches!(again, Err(StateError::NotFound(_))), "{again:?}");
    let revoked = store
        .issue(
            cert("t3", "spiffe://example.org/ns/t/sa/w3", now),
            Some("hash-3".into()),
        )
        .await;
    assert!(
        matches!(revoked, Err(StateError::TokenUnusable)),
        "{revoked:?}"
    );

    let listed: Vec<String> = store
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.token_id)
        .collect();
    for id in ["tok-1", "tok-2", "tok-3"] {
        assert!(listed.contains(&id.to_owned()), "{listed:?}");
    }
}

async fn certificates_are_recorded_once(store: &Store) {
    let now = unix_now();
    let id = "spiffe://example.org/ns/c/sa/one";
    store.issue(cert("c1", id, now - 10), None).await.unwrap();
    store.issue(cert("c2", id, now), None).await.unwrap();
    let duplicate = store.issue(cert("c1", id, now), None).await;
    assert!(duplicate.is_err(), "a serial is recorded once");
    assert_eq!(
        store.cert("c1").await.unwrap(),
        Some(cert("c1", id, now - 10))
    );
    let of_id: Vec<String> = store
        .certs(Some(id))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.serial)
        .collect();
    assert_eq!(of_id, ["c2", "c1"], "newest first");
    assert!(store.certs(None).await.unwrap().len() >= 3);
}

async fn revocations_cover_what_they_say(store: &Store) {
    let now = unix_now();
    let (before, generation) = store.revocations().await.unwrap();
    let by_serial = Revocation {
        spiffe_id: None,
        serial: Some("r1".into()),
        reason: "lost".into(),
        revoked_at: now,
    };
    store.revoke(by_serial.clone()).await.unwrap();
    let (after, next) = store.revocations().await.unwrap();
    assert!(next > generation, "the generation grows with the list");
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after.last(), Some(&by_serial), "oldest first");

    let id = "spiffe://example.org/ns/r/sa/x";
    let by_id = Revocation {
        spiffe_id: Some(id.into()),
        serial: None,
        reason: "compromised".into(),
        revoked_at: now,
    };
    store.revoke(by_id.clone()).await.unwrap();
    let hit = store
        .revocation_for("r1", "spiffe://other", 0)
        .await
        .unwrap();
    assert_eq!(hit, Some(by_serial));
    let hit = store.revocation_for("zz", id, now).await.unwrap();
    assert_eq!(
        hit,
        Some(by_id.clone()),
        "issued in the revocation's second: covered"
    );
    let miss = store.revocation_for("zz", id, now + 1).await.unwrap();
    assert_eq!(miss, None, "issued after: not covered (re-onboarding)");

    // `standing` is the record and the covering revocation in one read.
    let mut recorded = cert("r2", id, now);
    recorded.issuer = None;
    store.issue(recorded.clone(), None).await.unwrap();
    assert_eq!(
        store.standing("r2", id, now).await.unwrap(),
        (Some(recorded.clone()), Some(by_id.clone()))
    );
    assert_eq!(
        store.standing("r2", id, now + 1).await.unwrap(),
        (Some(recorded), None)
    );
    assert_eq!(
        store.standing("r1", "spiffe://other", 0).await.unwrap(),
        (
            None,
            store
                .revocation_for("r1", "spiffe://other", 0)
                .await
                .unwrap()
        )
    );
    assert_eq!(
        store
            .standing("nothing", "spiffe://other", 0)
            .await
            .unwrap(),
        (None, None)
    );
}

async fn rotation_counts_only_live_unrenewed_certificates(store: &Store) {
    // What blocks retiring issuer "r1": its own certificates that still matter.
    let now = unix_now();
    let base = store.live_certs_of("r1", now).await.unwrap().0;
    let of = |serial: &str, sa: &str, issuer: &str| {
        let mut c = cert(serial, &format!("spiffe://example.org/ns/o/sa/{sa}"), now);
        c.issuer = Some(issuer.into());
        c
    };
    let mut old = of("o1", "a", "r1");
    old.not_after = now + 7200;
    store.issue(old, None).await.unwrap();
    let mut renewed = of("o2", "b", "r1");
    renewed.not_after = now + 9000;
    store.issue(renewed, None).await.unwrap();
    let mut child = of("o3", "b", "i2");
    child.parent_serial = Some("o2".into());
    store.issue(child, None).await.unwrap();
    let mut expired = of("o4", "c", "r1");
    expired.not_after = now - 1;
    store.issue(expired, None).await.unwrap();
    let mut own = of("o5", "ca", "r1");
    own.attestor = "ca".into();
    store.issue(own, None).await.unwrap();
    // Revoked by serial, and by an ID revocation after its issuance: dead, however long
    // their notAfter.
    store.issue(of("o6", "d", "r1"), None).await.unwrap();
    store.issue(of("o7", "e", "r1"), None).await.unwrap();
    let revoke = |spiffe_id: Option<&str>, serial: Option<&str>| Revocation {
        spiffe_id: spiffe_id.map(str::to_owned),
        serial: serial.map(str::to_owned),
        reason: "test".into(),
        revoked_at: now + 1,
    };
    store.revoke(revoke(None, Some("o6"))).await.unwrap();
    store
        .revoke(revoke(Some("spiffe://example.org/ns/o/sa/e"), None))
        .await
        .unwrap();
    // A generation retired long ago does not block this one.
    store.issue(of("o8", "f", "r0"), None).await.unwrap();
    let (count, last) = store.live_certs_of("r1", now).await.unwrap();
    assert_eq!(
        count,
        base + 1,
        "only o1: o2 was renewed, o3 is i2's, o4 expired, o5 is the CA's, o6 and o7 revoked, o8 r0's"
    );
    assert!(last.is_some_and(|l| l >= now + 7200), "{last:?}");
}

async fn concurrent_use_of_one_token_issues_once(store: &Store) {
    let now = unix_now();
    store.create_token(token(9, now + 600)).await.unwrap();
    // Concurrent lookups of one token (a replay racing the first use) all find it.
    let lookups: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.token("hash-9").await })
        })
        .collect();
    for l in lookups {
        let found = l.await.unwrap().unwrap();
        assert_eq!(found.map(|t| t.token_id), Some("tok-9".to_owned()));
    }
    let attempts = (0..64).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let c = cert(&format!("race-{i}"), "spiffe://example.org/ns/t/sa/w9", now);
            store.issue(c, Some("hash-9".into())).await
        })
    });
    let mut ok = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        match attempt.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StateError::TokenUnusable) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(
        ok, 1,
        "64 concurrent uses of one token: exactly one certificate"
    );
    let recorded = store
        .certs(Some("spiffe://example.org/ns/t/sa/w9"))
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1, "and exactly one record");
}

fn sqlite(path: &Path) -> Store {
    Store::open_sqlite(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    suite(sqlite(&path), || sqlite(&path)).await;
}

/// The `state:` config of database `db` on `pg`, parsed the way the CA parses its config.
fn pg_config(pg: &Postgres, db: &str) -> StateConfig {
    let yaml = format!(
        "trust_domain: example.org\nlisten: 127.0.0.1:0\n{}",
        pg.state_yaml(db)
    );
    ward_ca::config::CaConfig::parse("ca.yaml", &yaml, Path::new("."))
        .unwrap()
        .state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_suite() {
    let pg = Postgres::start();
    let db = pg.create_database("suite");
    let config = pg_config(&pg, &db);
    // A password file others may read is refused, like the KEK, naming the fix.
    let mode = |m| std::os::unix::fs::PermissionsExt::from_mode(m);
    std::fs::set_permissions(pg.password_file(), mode(0o640)).unwrap();
    let err = Store::open(&config).await.unwrap_err().to_string();
    assert!(err.contains("readable by group/other (mode 0640)"), "{err}");
    assert!(err.contains("password"), "{err}");
    std::fs::set_permissions(pg.password_file(), mode(0o600)).unwrap();
    let store = Store::open(&config).await.unwrap();
    let again = Store::open(&config).await.unwrap();
    suite(store, move || again.clone()).await;
}

#[test]
fn sqlite_processes_starting_together_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || sqlite::open(&path).map(drop))
        })
        .collect();
    for o in opened {
        o.join().unwrap().unwrap();
    }
    let conn = sqlite::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, sqlite::SCHEMA_VERSION);
}

/// Replicas starting at once: the advisory lock makes one migrate and the others wait and
/// find the schema current (without it, concurrent `CREATE TABLE`s fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_starting_together_migrate_once() {
    let pg = Postgres::start();
    let db = pg.create_database("race");
    let config = pg_config(&pg, &db);
    let opened: Vec<_> = (0..6)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move { Store::open(&config).await.map(drop) })
        })
        .collect();
    for o in opened {
        o.await.unwrap().unwrap();
    }
    assert_eq!(
        pg.psql_in(&db, "SELECT version FROM ward_schema"),
        ward_ca::state::postgres::schema::SCHEMA_VERSION.to_string()
    );
    assert_eq!(pg.psql_in(&db, "SELECT count(*) FROM ward_schema"), "1");
}
