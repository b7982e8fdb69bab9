//! What one workload can make the CA record: renewals are limited per SPIFFE ID
//! (`limits.renew_per_id_per_minute`), a young certificate renews at most five times, and
//! the records of certificates expired for over a week are pruned (those of recent ones
//! kept), so no workload can fill the CA's disk.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use ward_ca::authority::records::CertRecord;
use ward_ca::state::{unix_now, Store};

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const BACKEND: &str = "spiffe://example.org/ns/api/sa/backend";

fn copy(m: &ward_e2e::Material) -> ward_e2e::Material {
    ward_e2e::Material {
        chain: m.chain.clone(),
        key: m.key.clone_key(),
    }
}

/// One renewal with `cert`: the response, and the new certificate.
async fn renew(
    h: &Harness,
    cert: &ward_e2e::Material,
) -> (u16, serde_json::Value, ward_e2e::Material) {
    let mut conn = h.conn(Some(copy(cert))).await;
    let (key, csr_pem) = csr();
    let resp = conn
        .request(
            "POST",
            "/v1/renew",
            json!({"csr": csr_pem}).to_string().as_bytes(),
        )
        .await
        .unwrap();
    let status = resp.status;
    let body = resp.json();
    let next = if status == 200 {
        material(&resp, &key)
    } else {
        copy(cert)
    };
    (status, body, next)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_are_limited_per_id_and_per_young_certificate() {
    let h = Harness::start("limits: { renew_per_id_per_minute: 10 }\n").await;
    let first = h.recorded(FRONTEND);
    let mut fresh = Vec::new();
    // A young certificate renews five times...
    for _ in 0..5 {
        let (status, body, next) = renew(&h, &first).await;
        assert_eq!(status, 200, "{body}");
        fresh.push(next);
    }
    // ...and no more.
    let (status, body, _) = renew(&h, &first).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("first third"),
        "{body}"
    );
    // The certificates it obtained renew, until the ID has used its ten a minute.
    for cert in &fresh[..4] {
        let (status, body, _) = renew(&h, cert).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body, _) = renew(&h, &fresh[4]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("renew_per_id_per_minute"),
        "{body}"
    );
    // Another workload is not affected.
    let (status, body, _) = renew(&h, &h.recorded(BACKEND)).await;
    assert_eq!(status, 200, "{body}");
}

fn record(serial: &str, not_after: i64) -> CertRecord {
    CertRecord {
        serial: serial.into(),
        spiffe_id: FRONTEND.into(),
        not_before: not_after - 3600,
        not_after,
        attestor: "renew".into(),
        client: "127.0.0.1".into(),
        issued_at: not_after - 3600,
        parent_serial: None,
        issuer: None,
        fingerprint: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_certificates_long_expired_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let now = unix_now();
    {
        let store = Store::open_sqlite(&dir.path().join("state.db")).unwrap();
        store
            .issue(record("0a", now - 8 * 86_400), None)
            .await
            .unwrap();
        store.issue(record("0b", now - 86_400), None).await.unwrap();
    }
    let h = Harness::start_with("jwks_file: jwks.json", "", dir).await;
    let state = &h.running.service.state;
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.cert("0a").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "a record expired 8 days ago was kept"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        state.cert("0b").await.unwrap().is_some(),
        "a record expired a day ago is kept"
    );
}
