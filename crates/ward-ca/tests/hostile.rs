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
    let renewals = || h.metric("ward_ca_issuances_total{attestor=\"renew\"}");
    let failures = |reason: &str| {
        h.metric(&format!(
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
