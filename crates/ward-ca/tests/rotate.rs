//! CA rotation: the steps refuse to run out of order, an interrupted activation is completed
//! by rerunning it, and a running daemon follows prepare, activate and finish on its own:
//! it publishes the new root before signing with it, signs with the new issuer after
//! activation (its own serving certificate too), keeps accepting certificates under the old
//! root until finish, and finish refuses while any of them is still valid.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use ward_ca::keys::dir::rotation::{self, Journal, Phase, NEXT, PREVIOUS};
use ward_ca::keys::dir::{BUNDLE, ISSUER_CERT, ISSUER_KEY, ROOT_CERT};
use ward_ca::Issuer;
use ward_e2e::https::{connector, Conn};
use ward_tls::pem::{certs_from_pem, load_certs};
use ward_tls::{BundleStore, TrustBundles};

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";

fn roots(ca: &Path) -> usize {
    load_certs(&ca.join(BUNDLE)).unwrap().len()
}

#[test]
fn steps_refuse_to_run_out_of_order_and_an_interrupted_activation_completes() {
    let ca = ward_e2e::TestCa::new("example.org");
    let dir = ca.path();
    let err = |r: Result<(), ward_ca::CaError>| r.unwrap_err().to_string();
    assert!(err(rotation::activate(&dir, 0, 30, false)).contains("rotate prepare"));
    assert!(err(rotation::finish(&dir)).contains("nothing to finish"));

    // Intermediate only: the root and the bundle's roots stay; the next issuer is published
    // and may not sign before workloads had two refreshes to learn it.
    let first = Issuer::load(&dir).unwrap();
    let p = rotation::prepare(&dir, false, 100, Default::default()).unwrap();
    assert!(!p.new_root);
    assert_eq!(roots(&dir), 1);
    assert!(rotation::prepare(&dir, false, 100, Default::default()).is_err());
    assert!(err(rotation::finish(&dir)).contains("rotate activate"));
    assert!(err(rotation::activate(&dir, 101, 30, false)).contains("wait 59s more"));
    rotation::activate(&dir, 160, 30, false).unwrap();
    let second = Issuer::load(&dir).unwrap();
    assert_ne!(first.issuer_serial(), second.issuer_serial());
    assert_eq!(first.root(), second.root());
    assert!(!dir.join(NEXT).exists() && dir.join(PREVIOUS).exists());
    assert!(
        err(rotation::prepare(&dir, true, 102, Default::default()).map(|_| ()))
            .contains("rotate finish")
    );
    rotation::finish(&dir).unwrap();
    assert!(!dir.join(PREVIOUS).exists());

    // A new root is published at once and may not sign before workloads had two refreshes.
    let before = Journal::load(&dir).unwrap().bundle_version;
    rotation::prepare(&dir, true, 1000, Default::default()).unwrap();
    assert_eq!(roots(&dir), 2);
    assert!(Journal::load(&dir).unwrap().bundle_version > before);
    let early = err(rotation::activate(&dir, 1010, 30, false));
    assert!(early.contains("wait 50s more"), "{early}");

    // Crash in the middle of an activation: journal says activating, previous/ is written,
    // one top-level file is already the new one. The directory does not load; a rerun of
    // activate completes it.
    let mut journal = Journal::load(&dir).unwrap();
    journal.phase = Phase::Activating;
    std::fs::write(
        dir.join(rotation::JOURNAL),
        serde_json::to_vec(&journal).unwrap(),
    )
    .unwrap();
    std::fs::create_dir(dir.join(PREVIOUS)).unwrap();
    for f in [
        ROOT_CERT,
        ISSUER_CERT,
        ISSUER_KEY,
        ward_ca::keys::dir::ROOT_KEY,
    ] {
        std::fs::copy(dir.join(f), dir.join(PREVIOUS).join(f)).unwrap();
    }
    std::fs::copy(dir.join(NEXT).join(ISSUER_KEY), dir.join(ISSUER_KEY)).unwrap();
    assert!(Issuer::load(&dir).is_err());
    rotation::activate(&dir, 1011, 30, false).unwrap();
    let third = Issuer::load(&dir).unwrap();
    assert_ne!(third.root(), second.root());
    assert_eq!(
        Issuer::load(&dir.join(PREVIOUS)).unwrap().root(),
        second.root()
    );
    assert_eq!(roots(&dir), 2, "old and new root until finish");
    rotation::finish(&dir).unwrap();
    assert_eq!(
        load_certs(&dir.join(BUNDLE)).unwrap(),
        vec![third.root().clone()]
    );
}

/// Polls `/v1/bundle` until it lists `n` roots; returns the document.
async fn bundle_with(h: &Harness, n: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut conn = h.conn(None).await;
        let doc = conn.request("GET", "/v1/bundle", b"").await.unwrap().json();
        if doc["spiffe_bundle"]["keys"].as_array().unwrap().len() == n {
            return doc;
        }
        assert!(
            Instant::now() < deadline,
            "bundle never had {n} roots: {doc}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn issuer_of(resp: &ward_e2e::https::Response) -> Vec<u8> {
    let chain = certs_from_pem("chain", resp.json()["chain"].as_str().unwrap().as_bytes()).unwrap();
    chain[1].to_vec()
}

#[tokio::test]
async fn a_running_daemon_follows_prepare_activate_and_finish() {
    let h = Harness::start("").await;
    let dir = h.ca.path();
    let config = h.dir.path().join("ca.yaml");
    let config = config.to_str().unwrap();
    let old_issuer = std::fs::read(dir.join(ISSUER_CERT)).unwrap();
    let (old, old_key) = h.enroll(&h.token(FRONTEND, 600)).await;
    assert_eq!(old.status, 200);
    let seq0 = bundle_with(&h, 1).await["spiffe_bundle"]["spiffe_sequence"]
        .as_u64()
        .unwrap();

    let (code, out) = ward(
        h.dir.path(),
        &["rotate", "prepare", "--config", config, "--root"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("new root"), "{out}");
    let doc = bundle_with(&h, 2).await;
    assert!(doc["spiffe_bundle"]["spiffe_sequence"].as_u64().unwrap() > seq0);
    // Published, not signing: enrollment still gets the old issuer, with both roots.
    let (resp, _) = h.enroll(&h.token(FRONTEND, 600)).await;
    let ders = certs_from_pem("old", &old_issuer).unwrap();
    assert_eq!(issuer_of(&resp), ders[0].to_vec());
    assert_eq!(
        certs_from_pem("b", resp.json()["bundle"].as_str().unwrap().as_bytes())
            .unwrap()
            .len(),
        2
    );

    let (code, out) = ward(h.dir.path(), &["rotate", "activate", "--config", config]);
    assert_eq!(
        code, 1,
        "activation must wait for workloads to fetch the new root"
    );
    assert!(out.contains("--force"), "{out}");
    let (code, out) = ward(
        h.dir.path(),
        &["rotate", "activate", "--config", config, "--force"],
    );
    assert_eq!(code, 0, "{out}");
    let new_root = load_certs(&dir.join(ROOT_CERT)).unwrap();
    let new_issuer = load_certs(&dir.join(ISSUER_CERT)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let resp = loop {
        let (resp, _) = h.enroll(&h.token(FRONTEND, 600)).await;
        if issuer_of(&resp) == new_issuer[0].to_vec() {
            break resp;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon never signed with the new issuer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(resp.status, 200);
    // Its own serving certificate moved too: a client trusting only the new root connects.
    let only_new = BundleStore::new(
        TrustBundles::single("example.org".parse().unwrap(), new_root.clone()).unwrap(),
    );
    let c = connector(only_new.clone(), "spiffe://example.org/ward/ca", None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Conn::open(&c, h.running.addr).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "CA still serves under the old root"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A workload still on the old root renews (and gets the new issuer).
    let mut conn = h.conn(Some(material(&old, &old_key))).await;
    let (_, csr_pem) = csr();
    let renewed = conn
        .request(
            "POST",
            "/v1/renew",
            json!({"csr": csr_pem}).to_string().as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(renewed.status, 200, "{:?}", renewed.json());
    assert_eq!(issuer_of(&renewed), new_issuer[0].to_vec());

    let (code, out) = ward_all(h.dir.path(), &["rotate", "status", "--config", config]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("still valid"), "{out}");
    let (code, out) = ward(h.dir.path(), &["rotate", "finish", "--config", config]);
    assert_eq!(
        code, 1,
        "finish must wait for the old root's certificates to expire"
    );
    assert!(
        out.contains("still valid") && out.contains("--force"),
        "{out}"
    );
    assert_eq!(roots(&dir), 2);
    let (code, out) = ward(
        h.dir.path(),
        &["rotate", "finish", "--config", config, "--force"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning"), "{out}");
    bundle_with(&h, 1).await;
    // The old root is gone for the CA too: the old certificate no longer authenticates.
    let c = connector(
        only_new,
        "spiffe://example.org/ward/ca",
        Some(material(&old, &old_key)),
    );
    let refused = match Conn::open(&c, h.running.addr).await {
        Err(_) => true,
        Ok(mut conn) => conn
            .request(
                "POST",
                "/v1/renew",
                json!({"csr": csr_pem}).to_string().as_bytes(),
            )
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a certificate under the dropped root still authenticated"
    );
}
