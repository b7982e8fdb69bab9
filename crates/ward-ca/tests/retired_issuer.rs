//! A stolen issuer key is useless against the CA, and an issuer retired by an issuer-only
//! rotation is refused by it.
//!
//! Before any rotation, leaves forged with the real issuer key chain to the trusted root, but
//! the CA acts only on certificates it recorded: a forged leaf (even one copying the serial
//! and ID of a live certificate) gets neither `/v1/renew` nor `/v1/revoke`. After
//! `rotate prepare` / `activate` / `finish` without `--root`, the root stays but the old
//! issuer is gone from the bundle's allowed issuers, and the CA's TLS refuses every
//! certificate it signed, forged or genuine.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use rcgen::SerialNumber;
use serde_json::json;
use support::*;
use ward_e2e::https::Conn;
use ward_e2e::Material;

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";

/// The status and error code of `path` called with `client`, or `None` when the TLS layer
/// refused the certificate (at the handshake or, in TLS 1.3, on the first request).
async fn call(
    h: &Harness,
    client: Material,
    path: &str,
    body: &serde_json::Value,
) -> Option<(u16, String)> {
    let c =
        ward_e2e::https::connector(h.ca.bundles(), "spiffe://example.org/ward/ca", Some(client));
    let mut conn = Conn::open(&c, h.running.addr).await.ok()?;
    let resp = conn
        .request("POST", path, body.to_string().as_bytes())
        .await
        .ok()?;
    let code = resp.json()["error"].as_str().unwrap_or("").to_owned();
    Some((resp.status, code))
}

fn serial_of(resp: &ward_e2e::https::Response) -> Vec<u8> {
    let hex = resp.json()["serial"].as_str().unwrap().to_owned();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_retired_issuer_certificates_get_nothing_from_the_ca() {
    let h = Harness::start("").await;
    let config = h.dir.path().join("ca.yaml");
    let config = config.to_str().unwrap();
    let (_, csr_pem) = csr();
    let renew_body = json!({ "csr": csr_pem });
    let stolen = h.ca.steal_issuer();

    let (genuine, genuine_key) = h.enroll(&h.token(FRONTEND, 600)).await;
    assert_eq!(genuine.status, 200);

    // Forged with the current issuer's key: a fresh serial, then a copy of the genuine serial.
    let forged = stolen.forge(&ward_e2e::leaf_params(FRONTEND));
    assert_eq!(
        call(&h, forged, "/v1/renew", &renew_body).await,
        Some((401, "unknown_certificate".into()))
    );
    let mut copy = ward_e2e::leaf_params(FRONTEND);
    copy.serial_number = Some(SerialNumber::from_slice(&serial_of(&genuine)));
    assert_eq!(
        call(&h, stolen.forge(&copy), "/v1/renew", &renew_body).await,
        Some((401, "unknown_certificate".into())),
        "a forged leaf copying a live serial and ID was renewed"
    );
    let forged_admin = stolen.forge(&ward_e2e::leaf_params(ADMIN));
    let revoke = json!({ "spiffe_id": FRONTEND, "reason": "forged" });
    assert_eq!(
        call(&h, forged_admin, "/v1/revoke", &revoke).await,
        Some((401, "unknown_certificate".into()))
    );
    // The genuine certificate and an admin certificate made by `ward-ca issue --config` work.
    assert_eq!(
        call(
            &h,
            material(&genuine, &genuine_key),
            "/v1/renew",
            &renew_body
        )
        .await
        .map(|r| r.0),
        Some(200)
    );
    let (second, second_key) = h.enroll(&h.token(FRONTEND, 600)).await;
    let admin = h.recorded(ADMIN);
    let serial = second.json()["serial"].as_str().unwrap().to_owned();
    let revoke_second = json!({ "serial": serial, "reason": "test" });
    assert_eq!(
        call(&h, admin, "/v1/revoke", &revoke_second)
            .await
            .map(|r| r.0),
        Some(200)
    );
    drop(second_key);

    // An issuer-only rotation, finished: the root stays, the old issuer is retired.
    let (live, live_key) = h.enroll(&h.token(FRONTEND, 600)).await;
    // (--force: no sidecar here needs two bundle refreshes to learn the next issuer.)
    for step in [
        &["rotate", "prepare", "--config", config][..],
        &["rotate", "activate", "--config", config, "--force"],
    ] {
        let (code, out) = ward(h.dir.path(), step);
        assert_eq!(code, 0, "{step:?}: {out}");
    }
    let (code, out) = ward(h.dir.path(), &["rotate", "finish", "--config", config]);
    assert_eq!(code, 1, "finish must wait for the live certificate: {out}");
    assert!(out.contains("not yet renewed"), "{out}");
    let (code, out) = ward(
        h.dir.path(),
        &["rotate", "finish", "--config", config, "--force"],
    );
    assert_eq!(code, 0, "{out}");
    let old_issuer = ward_tls::SpkiHash::of_cert(&stolen.cert).unwrap().to_hex();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut conn = h.conn(None).await;
        let doc = conn.request("GET", "/v1/bundle", b"").await.unwrap().json();
        let issuers = doc["issuers"].as_array().unwrap().clone();
        // (The daemon looks at its directory once a second.)
        if issuers.len() == 1 && issuers[0]["spki_sha256"] != old_issuer.as_str() {
            assert_eq!(issuers[0]["role"], "signing");
            assert_eq!(
                doc["spiffe_bundle"]["keys"].as_array().unwrap().len(),
                1,
                "the root stays"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old issuer stayed in the bundle: {doc}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Refused at the TLS layer, counted as retired_issuer: forged and genuine alike.
    let retired =
        || h.metric_or_zero("ward_ca_handshake_failures_total{reason=\"retired_issuer\"}");
    let forged = stolen.forge(&ward_e2e::leaf_params(FRONTEND));
    assert_eq!(call(&h, forged, "/v1/renew", &renew_body).await, None);
    assert_eq!(
        call(&h, material(&live, &live_key), "/v1/renew", &renew_body).await,
        None
    );
    let forged_admin = stolen.forge(&ward_e2e::leaf_params(ADMIN));
    assert_eq!(call(&h, forged_admin, "/v1/revoke", &revoke).await, None);
    let deadline = Instant::now() + Duration::from_secs(5);
    while retired() < 3.0 {
        assert!(
            Instant::now() < deadline,
            "retired_issuer refusals not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A certificate from the new issuer renews.
    let (fresh, fresh_key) = h.enroll(&h.token(FRONTEND, 600)).await;
    assert_eq!(
        call(&h, material(&fresh, &fresh_key), "/v1/renew", &renew_body)
            .await
            .map(|r| r.0),
        Some(200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retire_stops_trusting_the_previous_issuer_at_once() {
    let h = Harness::start("").await;
    let config = h.dir.path().join("ca.yaml");
    let config = config.to_str().unwrap();
    let (code, out) = ward(h.dir.path(), &["rotate", "retire", "--config", config]);
    assert_eq!(code, 1, "nothing to retire without a rotation: {out}");
    assert!(out.contains("rotate prepare"), "{out}");

    let (live, live_key) = h.enroll(&h.token(FRONTEND, 600)).await;
    let (code, out) = ward(h.dir.path(), &["rotate", "prepare", "--config", config]);
    assert_eq!(code, 0, "{out}");
    // One command activates the prepared issuer and retires the old one; like `activate` it
    // waits until workloads could have fetched the next issuer, unless forced.
    let (code, out) = ward(h.dir.path(), &["rotate", "retire", "--config", config]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--force"), "{out}");
    let (code, out) = ward(
        h.dir.path(),
        &["rotate", "retire", "--config", config, "--force"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 certificate(s)"), "{out}");
    let (code, out) = ward_all(h.dir.path(), &["rotate", "status", "--config", config]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no rotation in progress"), "{out}");
    let (_, csr_pem) = csr();
    let body = json!({ "csr": csr_pem });
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(&h, material(&live, &live_key), "/v1/renew", &body)
        .await
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the retired issuer's certificate still renews"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Re-onboarding right after `ward-ca revoke --id`: the new certificate is not born revoked
/// (revocation compares with when a certificate was issued, not with its backdated notBefore),
/// while the revoked one stays refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_re_onboarded_after_revocation_gets_a_working_certificate() {
    let h = Harness::start("").await;
    let config = h.dir.path().join("ca.yaml");
    let config = config.to_str().unwrap();
    let (old, old_key) = h.enroll(&h.token(FRONTEND, 600)).await;
    let (code, out) = ward(
        h.dir.path(),
        &["revoke", "--config", config, "--id", FRONTEND],
    );
    assert_eq!(code, 0, "{out}");
    let (fresh, fresh_key) = h.enroll(&h.token(FRONTEND, 600)).await;
    assert_eq!(fresh.status, 200);
    let (_, csr_pem) = csr();
    let body = json!({ "csr": csr_pem });
    assert_eq!(
        call(&h, material(&fresh, &fresh_key), "/v1/renew", &body).await,
        Some((200, String::new())),
        "the re-onboarded certificate was born revoked"
    );
    assert_eq!(
        call(&h, material(&old, &old_key), "/v1/renew", &body).await,
        Some((403, "revoked".into()))
    );
    // Sidecars judge it the same way from the published list.
    let mut conn = h.conn(None).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // the document is cached for 1 s
    let doc = conn.request("GET", "/v1/bundle", b"").await.unwrap().json();
    let r = &doc["revocations"][0];
    let revocation = ward_tls::Revocation {
        spiffe_id: r["spiffe_id"].as_str().map(str::to_owned),
        serial: None,
        revoked_at: r["revoked_at"].as_i64().unwrap(),
    };
    let leaf = |resp: &ward_e2e::https::Response| {
        let chain = ward_tls::pem::certs_from_pem(
            "chain",
            resp.json()["chain"].as_str().unwrap().as_bytes(),
        )
        .unwrap();
        ward_identity::SvidProfile::check(&chain[0]).unwrap()
    };
    assert!(revocation.covers(&leaf(&old)));
    assert!(!revocation.covers(&leaf(&fresh)));
}
