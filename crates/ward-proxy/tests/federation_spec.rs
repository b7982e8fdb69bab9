//! Foreign bundles as the SPIFFE Trust Domain and Bundle specification reads them, end to end:
//! a foreign trust domain (`c.example`) whose bundle endpoint serves documents written by a
//! JWT library nobody here wrote (`jsonwebtoken`), a real ward-ca following it (https_web),
//! and a sidecar whose Workload API validates the domain's JWT-SVIDs, called by the `spiffe`
//! crate. A bundle holding an ES384 key (SPIRE's `ec-p384`) and an Ed25519 key is taken with
//! the ES384 key and without the other, at start and on refresh; a document without
//! `spiffe_sequence` after one with it is taken; a document with no keys revokes everything
//! of that domain, is counted, shown by `ward-ca federation list`, and survives a restart
//! until the operator re-bootstraps with `ward-ca federation forget`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use support::ca::start_ca;
use support::workload::{client, config, own_uid, CA_EXTRA};
use support::Pki;
use ward_e2e::foreign::{document, web_pki, with_keys, FakeEndpoint, ForeignJwtKey};
use ward_e2e::TestCa;

const FOREIGN: &str = "spiffe://c.example/billing";

/// Polls `check` until it holds, or fails the test with `what`.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_bundles_follow_the_spec_through_to_the_workload_api() {
    let test_ca = TestCa::new("example.org");
    let foreign = TestCa::new("c.example");
    let pki = Pki::new();
    web_pki(&pki.path(""));
    let p384 = ForeignJwtKey::es384("spire-ec-p384");
    let ed = ForeignJwtKey::ed25519("ed25519");
    let first = with_keys(&document(&foreign, Some(5)), &[p384.jwk(), ed.jwk()]);
    let bundle_file = pki.file("c.example.json", &first);
    let endpoint = FakeEndpoint::start(&pki.path(""), first).await;
    let federation = format!(
        "federation:\n  federates_with:\n    - {{ trust_domain: c.example, url: \"{}\", profile: https_web, ca_file: {}, bundle_file: {} }}\n",
        endpoint.url(),
        pki.path("web-root.pem").display(),
        bundle_file.display(),
    );
    // The bundle_file alone used to stop the CA at start (an Ed25519 key refused it whole).
    let ca = start_ca(&test_ca, &format!("{CA_EXTRA}{federation}")).await;
    let socket = pki.path("workload.sock");
    let proxy = ward_proxy::start(config(&pki, &ca, &socket, &[own_uid(&pki.path(""))]))
        .await
        .unwrap();
    let api = client(&socket).await;

    // ES384 is validated; EdDSA (its key ignored) is not.
    let token = p384.sign(FOREIGN, "sts.example", 300);
    until("an ES384 JWT-SVID of c.example validates", || {
        let (api, token) = (api.clone(), token.clone());
        async move { api.validate_jwt_token("sts.example", &token).await.is_ok() }
    })
    .await;
    let checked = api.validate_jwt_token("sts.example", &token).await.unwrap();
    assert_eq!(checked.spiffe_id().to_string(), FOREIGN);
    let eddsa = ed.sign(FOREIGN, "sts.example", 300);
    assert!(api.validate_jwt_token("sts.example", &eddsa).await.is_err());

    // A document without spiffe_sequence after one with it (sequence 5) is taken: a new key.
    let p384_next = ForeignJwtKey::es384("spire-ec-p384-next");
    endpoint.set(with_keys(&document(&foreign, None), &[p384_next.jwk()]));
    let next = p384_next.sign(FOREIGN, "sts.example", 300);
    until("the document without a sequence is followed", || {
        let (api, next) = (api.clone(), next.clone());
        async move { api.validate_jwt_token("sts.example", &next).await.is_ok() }
    })
    .await;

    // An empty key set: every key of c.example revoked, its SVIDs refused from then on.
    endpoint.set(r#"{"keys": [], "spiffe_refresh_hint": 1}"#.into());
    until("an empty key set revokes the domain's keys", || {
        let (api, next) = (api.clone(), next.clone());
        async move { api.validate_jwt_token("sts.example", &next).await.is_err() }
    })
    .await;
    let bundles = api.fetch_jwt_bundles().await.unwrap();
    let c_example: spiffe::TrustDomain = "c.example".try_into().unwrap();
    assert!(
        bundles.get(&c_example).is_none(),
        "the revoked domain is still handed to workloads"
    );
    let emptied = ward_e2e::metrics::sample_or_zero(
        &ca.running.service.metrics.encode(),
        "ward_ca_federation_emptied_total{trust_domain=\"c.example\"}",
    );
    assert_eq!(emptied, 1.0);
    let listed = ca.cli(&["federation", "list"]).unwrap();
    let row = listed
        .lines()
        .find(|l| l.starts_with("c.example"))
        .unwrap_or_default();
    assert_eq!(row.split_whitespace().nth(1), Some("revoked"), "{listed}");
    assert!(listed.contains("every key revoked"), "{listed}");

    // A restart keeps it revoked (the bundle_file, with the old keys, is not taken again).
    let again = || {
        ward_ca::config::CaConfig::parse(
            "ca.yaml",
            &std::fs::read_to_string(ca.dir.path().join("ca.yaml")).unwrap(),
            ca.dir.path(),
        )
        .unwrap()
    };
    let restarted = ward_ca::server::start(again()).await.unwrap();
    let td: ward_identity::TrustDomain = "c.example".parse().unwrap();
    assert!(restarted.service.foreign.get(&td).unwrap().revokes_all());
    restarted.shutdown().await;
    // The operator re-bootstraps: forget the stored bundle, and the next start takes
    // bundle_file again (the endpoint, fetched at once, serves the same document by then).
    endpoint.set(std::fs::read_to_string(&bundle_file).unwrap());
    let err = ca
        .cli(&["federation", "forget", "--trust-domain", "d.example"])
        .unwrap_err();
    assert!(
        err.contains("not a trust domain this CA federates with"),
        "{err}"
    );
    let forgot = ca
        .cli(&["federation", "forget", "--trust-domain", "c.example"])
        .unwrap();
    assert!(forgot.contains("restart every ward-ca"), "{forgot}");
    let restarted = ward_ca::server::start(again()).await.unwrap();
    let b = restarted.service.foreign.get(&td).unwrap();
    assert!(!b.revokes_all());
    assert_eq!(b.sequence, Some(5), "bundle_file is in force again");
    restarted.shutdown().await;
    proxy.shutdown().await;
    ca.running.shutdown().await;
}
