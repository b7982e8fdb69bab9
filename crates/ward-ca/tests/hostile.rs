//! The hostile-certificate battery (ward_e2e::hostile) against the CA: no client presenting
//! one of them gets a certificate from `/v1/renew`; each is refused at the TLS handshake and
//! counted in `ward_ca_handshake_failures_total` under its reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use serde_json::json;
use support::*;
use ward_e2e::https::{connector, Conn};

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_client_certificate_is_refused_at_renew_and_counted() {
    let h = Harness::start("").await;
    let (_, csr_pem) = csr();
    let body = json!({ "csr": csr_pem }).to_string();
    let renewals = || h.metric_or_zero("ward_ca_issuances_total{attestor=\"renew\"}");
    let failures = |reason: &str| {
        h.metric_or_zero(&format!(
            "ward_ca_handshake_failures_total{{reason=\"{reason}\"}}"
        ))
    };
    for case in ward_e2e::hostile::battery(&h.ca, FRONTEND) {
        let before = case.reason.map(failures);
        let c = connector(
            h.ca.bundles(),
            "spiffe://example.org/ward/ca",
            Some(case.material),
        );
        // TLS 1.3: the client may finish its side of the handshake before the CA refuses
        // its certificate, so the refusal shows on the request at the latest.
        let outcome = match Conn::open(&c, h.running.addr).await {
            Ok(mut conn) => conn
                .request("POST", "/v1/renew", body.as_bytes())
                .await
                .map(|r| r.status),
            Err(e) => Err(e),
        };
        assert!(
            outcome.is_err(),
            "{}: the CA answered {outcome:?}",
            case.name
        );
        if let (Some(reason), Some(before)) = (case.reason, before) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while failures(reason) != before + 1.0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{}: not counted as {reason}",
                    case.name
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    assert_eq!(renewals(), 0.0, "no hostile client was renewed");
    // The control case: a real SVID renews.
    let (resp, key) = h.enroll(&h.token(FRONTEND, 600)).await;
    let mut conn = h.conn(Some(material(&resp, &key))).await;
    let renewed = conn
        .request("POST", "/v1/renew", body.as_bytes())
        .await
        .unwrap();
    assert_eq!(renewed.status, 200);
}

/// 10,000 enrollments with bad tokens from 20 keep-alive connections: every one answered,
/// each with a 4xx (429 once over the per-IP rate, else 401/400), never a 5xx, nothing
/// issued; afterwards a real token still enrolls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bad_enrollments_are_refused_never_with_a_5xx() {
    let h = Harness::start("limits: { enroll_per_ip_per_sec: 50 }\n").await;
    let (_, csr_pem) = csr();
    let bodies: Vec<String> = [
        json!({ "csr": csr_pem, "token": "wjt_0000000000000000000000000000000000000000000" }),
        json!({ "csr": csr_pem, "token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0." }),
        json!({ "csr": "not a csr", "token": "garbage" }),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let c = connector(h.ca.bundles(), "spiffe://example.org/ward/ca", None);
    let mut tasks = Vec::new();
    for worker in 0..20 {
        let (c, addr, bodies) = (c.clone(), h.running.addr, bodies.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&c, addr).await.unwrap();
            let mut statuses = Vec::with_capacity(500);
            for i in 0..500 {
                let body = &bodies[(worker + i) % bodies.len()];
                let r = conn.request("POST", "/v1/enroll", body.as_bytes()).await;
                let r =
                    r.unwrap_or_else(|e| panic!("request {i} after {:?}: {e}", statuses.last()));
                statuses.push(r.status);
            }
            statuses
        }));
    }
    let mut counts = std::collections::BTreeMap::new();
    for t in tasks {
        for s in t.await.unwrap() {
            *counts.entry(s).or_insert(0) += 1;
        }
    }
    assert_eq!(counts.values().sum::<i32>(), 10_000, "{counts:?}");
    assert!(counts.keys().all(|s| (400..500).contains(s)), "{counts:?}");
    assert!(
        counts.get(&429).copied().unwrap_or(0) >= 5_000,
        "rate limit: {counts:?}"
    );
    for attestor in ["join_token", "kubernetes"] {
        let issued = h.metric_or_zero(&format!(
            "ward_ca_issuances_total{{attestor=\"{attestor}\"}}"
        ));
        assert_eq!(issued, 0.0, "{attestor}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (resp, _) = h.enroll(&h.token(FRONTEND, 600)).await;
    assert_eq!(resp.status, 200, "{:?}", resp.json());
}
