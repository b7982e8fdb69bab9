//! The CA kept in PostgreSQL for replicas, against a real server: its keys are unreadable in
//! the database (sealed, and bound to their row and role, so swapping sealed blobs is caught),
//! two changes made from the same read cannot both apply, and a retired generation loses its
//! keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ward_ca::authority::material::CaMaterial;
use ward_ca::config::{CaConfig, CaKeys};
use ward_ca::keys::db::DbCa;
use ward_ca::keys::kek::Kek;
use ward_ca::keys::KeysError;
use ward_ca::state::{StateError, Store};
use ward_e2e::postgres::Postgres;

async fn db_ca(pg: &Postgres, db: &str) -> DbCa {
    let text = format!(
        "trust_domain: example.org\nlisten: 127.0.0.1:0\n{}",
        pg.state_yaml(db)
    );
    let config = CaConfig::parse("ca.yaml", &text, std::path::Path::new(".")).unwrap();
    let CaKeys::Database { kek_file } = &config.keys else {
        panic!("keys in the database")
    };
    let store = Store::open(&config.state).await.unwrap();
    DbCa::on(&store, Kek::load(kek_file).unwrap(), config.trust_domain).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_ca_is_sealed_bound_and_changed_only_from_its_current_version() {
    let pg = Postgres::start();
    let db = pg.create_database("castore");
    let ca = db_ca(&pg, &db).await;
    let td = "example.org".parse().unwrap();
    let mut material = CaMaterial::new(&td, Default::default()).unwrap();
    let v1 = ca.save(&material, None).await.unwrap();
    assert!(
        matches!(
            ca.save(&material, None).await,
            Err(KeysError::State(StateError::Conflict(_)))
        ),
        "a second init from the same (empty) read is refused"
    );

    // No private key is readable in the database.
    let dump = pg.psql_in(
        &db,
        "SELECT encode(root_key, 'escape') || encode(issuer_key, 'escape') FROM ca_generations",
    );
    assert!(!dump.contains("PRIVATE KEY"), "{dump}");
    assert!(!dump.contains(material.signing.issuer_key_pem.lines().nth(1).unwrap()));

    // Two rotation steps from the same read: the first applies, the second is refused.
    let (mut a, va) = ca.load().await.unwrap().unwrap();
    let (mut b, vb) = ca.load().await.unwrap().unwrap();
    assert_eq!((va, vb), (v1, v1));
    a.prepare(&td, false, 1, Default::default()).unwrap();
    b.prepare(&td, false, 1, Default::default()).unwrap();
    let v2 = ca.save(&a, Some(va)).await.unwrap();
    assert!(matches!(
        ca.save(&b, Some(vb)).await,
        Err(KeysError::State(StateError::Conflict(_)))
    ));
    let (stored, v) = ca.load().await.unwrap().unwrap();
    assert_eq!(v, v2);
    assert_eq!(
        stored.next.unwrap().issuer_pem,
        a.next.clone().unwrap().issuer_pem,
        "the first writer's next issuer, not the second's"
    );

    // Sealed keys are bound to their row and role: swapping them is caught, not used.
    pg.psql_in(
        &db,
        "UPDATE ca_generations SET issuer_key = root_key, root_key = issuer_key WHERE role = 'signing'",
    );
    let swapped = ca.load().await.unwrap_err().to_string();
    assert!(swapped.contains("does not open"), "{swapped}");
    pg.psql_in(
        &db,
        "UPDATE ca_generations SET issuer_key = root_key, root_key = issuer_key WHERE role = 'signing'",
    );
    pg.psql_in(
        &db,
        "UPDATE ca_generations SET issuer_key = (SELECT issuer_key FROM ca_generations WHERE role = 'next') WHERE role = 'signing'",
    );
    let moved = ca.load().await.unwrap_err().to_string();
    assert!(moved.contains("does not open"), "{moved}");

    // A fresh start: a finished rotation wipes the retired generation's keys.
    let db2 = pg.create_database("castore2");
    let ca = db_ca(&pg, &db2).await;
    let v = ca.save(&material, None).await.unwrap();
    material.prepare(&td, false, 1, Default::default()).unwrap();
    let v = ca.save(&material, Some(v)).await.unwrap();
    material.activate(10, 1, false).unwrap();
    let v = ca.save(&material, Some(v)).await.unwrap();
    material.finish().unwrap();
    ca.save(&material, Some(v)).await.unwrap();
    let rows = pg.psql_in(
        &db2,
        "SELECT coalesce(role, 'retired'), root_key IS NULL, issuer_key IS NULL, jwt_key IS NULL, retired_at IS NULL FROM ca_generations ORDER BY role NULLS LAST",
    );
    assert_eq!(rows.trim(), "signing|f|f|f|t\nretired|t|t|t|f", "{rows}");
}
