//! The CA's HTTPS API in-process over real TLS: enrollment with join tokens and Kubernetes
//! JWTs, renewal, revocation, the bundle, limits, and every error code.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use serde_json::json;
use support::*;
use ward_e2e::jwt::{kube_claims, unsigned, JwtSigner};
use ward_identity::SvidProfile;

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";

#[tokio::test]
async fn join_token_enrollment_and_its_refusals() {
    let h = Harness::start("").await;
    let token = h.token(FRONTEND, 600);
    let (resp, _) = h.enroll(&token).await;
    assert_eq!(resp.status, 200, "{:?}", resp.json());
    let body = resp.json();
    let chain =
        ward_tls::pem::certs_from_pem("chain", body["chain"].as_str().unwrap().as_bytes()).unwrap();
    let leaf = SvidProfile::check(&chain[0]).unwrap();
    assert_eq!(
        leaf.id.as_str(),
        FRONTEND,
        "the ID comes from the token, never the CSR"
    );
    assert_eq!(body["spiffe_id"], FRONTEND);
    assert_eq!(body["not_after"], leaf.not_after);
    let (_, parsed) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let sans = &parsed
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert_eq!(sans.len(), 1, "CSR SANs must be ignored: {sans:?}");
    assert!(!parsed.is_ca());
    assert!(body["bundle"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));

    refused(&h.enroll(&token).await.0, 401, "token_used");
    refused(
        &h.enroll(&h.token(FRONTEND, -1)).await.0,
        401,
        "token_expired",
    );
    refused(
        &h.enroll(&h.token("spiffe://other.org/ns/web/sa/frontend", 600))
            .await
            .0,
        403,
        "wrong_trust_domain",
    );
    refused(
        &h.enroll(&ward_ca::authority::tokens::generate().unwrap().secret)
            .await
            .0,
        401,
        "invalid_token",
    );
    refused(&h.enroll("not-a-token").await.0, 400, "malformed_token");
    assert_eq!(
        h.metric("ward_ca_issuances_total{attestor=\"join_token\"}"),
        1.0
    );
    assert_eq!(
        h.metric("ward_ca_denials_total{reason=\"token_used\"}"),
        1.0
    );
}

#[tokio::test]
async fn malformed_requests_are_400_with_codes() {
    let h = Harness::start("").await;
    let token = h.token(FRONTEND, 600);
    let mut conn = h.conn(None).await;
    let raw = |b: &'static str| b.as_bytes().to_vec();
    for (body, code) in [
        (raw("{not json"), "malformed_json"),
        (raw(r#"{"csr": "x"}"#), "malformed_json"),
        (
            json!({"csr": "x", "token": token, "extra": 1})
                .to_string()
                .into_bytes(),
            "malformed_json",
        ),
        (
            json!({"csr": "garbage", "token": token})
                .to_string()
                .into_bytes(),
            "malformed_csr",
        ),
    ] {
        refused(
            &conn.request("POST", "/v1/enroll", &body).await.unwrap(),
            400,
            code,
        );
    }
    // A CSR whose signature was tampered with, and a P-384 CSR.
    let (_, pem) = csr();
    let mut der = ward_tls::pem::certs_from_pem(
        "x",
        pem.replace("CERTIFICATE REQUEST", "CERTIFICATE").as_bytes(),
    )
    .unwrap()[0]
        .to_vec();
    let n = der.len();
    der[n - 3] ^= 1;
    let tampered = ward_tls::pem::encode_block("CERTIFICATE REQUEST", &der);
    refused(
        &h.post("/v1/enroll", &json!({"csr": tampered, "token": token}))
            .await,
        400,
        "bad_csr_signature",
    );
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let p384_csr = rcgen::CertificateParams::default()
        .serialize_request(&p384)
        .unwrap()
        .pem()
        .unwrap();
    refused(
        &h.post("/v1/enroll", &json!({"csr": p384_csr, "token": token}))
            .await,
        400,
        "unsupported_key",
    );
    // The token survived all of that: refusals before issuance consume nothing.
    assert_eq!(h.enroll(&token).await.0.status, 200);
    refused(
        &conn.request("GET", "/v1/enroll", b"").await.unwrap(),
        405,
        "method_not_allowed",
    );
    refused(
        &conn.request("GET", "/nope", b"").await.unwrap(),
        404,
        "not_found",
    );
}

#[tokio::test]
async fn kubernetes_tokens_enroll_and_bad_ones_are_refused() {
    let h = Harness::start("").await;
    let (resp, _) = h.enroll(&h.kube_token("shop", "api")).await;
    assert_eq!(resp.status, 200, "{:?}", resp.json());
    assert_eq!(
        resp.json()["spiffe_id"],
        "spiffe://example.org/ns/shop/sa/api"
    );

    let claims = |iss: &str, aud: &str, ttl: i64| kube_claims(iss, aud, "shop", "api", ttl);
    let stranger = JwtSigner::es256("k1"); // same kid, different key
    let mut not_yet = claims(ISSUER, AUDIENCE, 600);
    not_yet["nbf"] = json!(time::OffsetDateTime::now_utc().unix_timestamp() + 3600);
    let mut no_ns = claims(ISSUER, AUDIENCE, 600);
    no_ns["kubernetes.io"] = json!({});
    let hs256 = {
        let t = h.signer.sign(&claims(ISSUER, AUDIENCE, 600));
        let body = t.split('.').nth(1).unwrap().to_owned();
        use base64::Engine;
        format!(
            "{}.{body}.c2ln",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#)
        )
    };
    for (token, status, code) in [
        (
            h.signer.sign(&claims(ISSUER, "someone-else", 600)),
            401,
            "wrong_audience",
        ),
        (
            h.signer.sign(&claims("https://evil.test", AUDIENCE, 600)),
            401,
            "wrong_issuer",
        ),
        (
            h.signer.sign(&claims(ISSUER, AUDIENCE, -3600)),
            401,
            "token_expired",
        ),
        (h.signer.sign(&not_yet), 401, "token_not_yet_valid"),
        (
            stranger.sign(&claims(ISSUER, AUDIENCE, 600)),
            401,
            "bad_signature",
        ),
        (
            unsigned(&claims(ISSUER, AUDIENCE, 600)),
            401,
            "unsupported_algorithm",
        ),
        (hs256, 401, "unsupported_algorithm"),
        (h.signer.sign(&no_ns), 401, "missing_claims"),
        ("a.b.c".to_owned(), 400, "malformed_token"),
    ] {
        refused(&h.enroll(&token).await.0, status, code);
    }
}

#[tokio::test]
async fn rs256_tokens_verify_against_an_rsa_jwks() {
    let h = Harness::start("").await;
    let rsa = JwtSigner::rs256("r1");
    std::fs::write(
        h.dir.path().join("jwks.json"),
        ward_e2e::jwt::jwks(&[&h.signer, &rsa]),
    )
    .unwrap();
    // The JWKS file is re-read within a few seconds; wait for the new key by retrying.
    let token = rsa.sign(&kube_claims(ISSUER, AUDIENCE, "shop", "rsa", 600));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (resp, _) = h.enroll(&token).await;
        if resp.status == 200 {
            assert_eq!(
                resp.json()["spiffe_id"],
                "spiffe://example.org/ns/shop/sa/rsa"
            );
            break;
        }
        refused(&resp, 401, "unknown_key");
        assert!(
            std::time::Instant::now() < deadline,
            "JWKS change never picked up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn renewal_over_mtls_and_revocation() {
    let h = Harness::start("").await;
    let (resp, key) = h.enroll(&h.token(FRONTEND, 600)).await;
    let first = resp.json()["serial"].as_str().unwrap().to_owned();
    let mut conn = h.conn(Some(material(&resp, &key))).await;
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
    assert_eq!(renewed.json()["spiffe_id"], FRONTEND);
    assert_ne!(renewed.json()["serial"].as_str().unwrap(), first);

    refused(
        &h.post("/v1/renew", &json!({"csr": csr_pem})).await,
        401,
        "client_cert_required",
    );

    // Only admins may revoke.
    refused(
        &conn
            .request(
                "POST",
                "/v1/revoke",
                json!({"serial": first}).to_string().as_bytes(),
            )
            .await
            .unwrap(),
        403,
        "not_admin",
    );
    let mut admin = h.conn(Some(h.recorded(ADMIN))).await;
    let before = admin.request("GET", "/v1/bundle", b"").await.unwrap();
    let etag = before.header("etag").unwrap().to_owned();
    let r = admin
        .request(
            "POST",
            "/v1/revoke",
            json!({"serial": first, "reason": "key leaked"})
                .to_string()
                .as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.json());
    refused(
        &conn
            .request(
                "POST",
                "/v1/renew",
                json!({"csr": csr_pem}).to_string().as_bytes(),
            )
            .await
            .unwrap(),
        403,
        "revoked",
    );
    for (body, code) in [
        (json!({}), "invalid_revocation"),
        (json!({"spiffe_id": "spiffe://other.org/x"}), "invalid_id"),
        (json!({"serial": "zz"}), "invalid_serial"),
    ] {
        refused(
            &admin
                .request("POST", "/v1/revoke", body.to_string().as_bytes())
                .await
                .unwrap(),
            400,
            code,
        );
    }

    // The bundle publishes the revocation; the ETag moves, and a matching If-None-Match is 304.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // the document is cached for 1s
    let after = admin.request("GET", "/v1/bundle", b"").await.unwrap();
    assert_ne!(after.header("etag").unwrap(), etag);
    let doc = after.json();
    assert_eq!(doc["revocations"][0]["serial"], first.as_str());
    assert_eq!(doc["revocations"][0]["reason"], "key leaked");
    assert!(doc["spiffe_bundle"]["spiffe_sequence"].as_i64().unwrap() >= 2);
    assert_eq!(doc["spiffe_bundle"]["keys"][0]["use"], "x509-svid");
    assert!(doc["bundle_pem"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let etag = after.header("etag").unwrap().to_owned();
    admin
        .send_raw(
            format!("GET /v1/bundle HTTP/1.1\r\nhost: x\r\nif-none-match: {etag}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(admin.read_response().await.unwrap().status, 304);

    // An expired client certificate does not even complete the TLS handshake.
    let mut params = ward_e2e::leaf_params(FRONTEND);
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(3);
    params.not_after = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let c = ward_e2e::https::connector(
        h.ca.bundles(),
        "spiffe://example.org/ward/ca",
        Some(h.ca.forge(&params)),
    );
    let outcome = match ward_e2e::https::Conn::open(&c, h.running.addr).await {
        Err(e) => Err(e),
        Ok(mut conn) => {
            conn.request(
                "POST",
                "/v1/renew",
                json!({"csr": csr_pem}).to_string().as_bytes(),
            )
            .await
        }
    };
    assert!(
        outcome.is_err(),
        "expired client certificate was accepted: {outcome:?}"
    );
}

#[tokio::test]
async fn body_limit_slow_body_and_rate_limit() {
    let h = Harness::start(
        "limits: { max_body_bytes: 2048, enroll_per_ip_per_sec: 1, request_timeout: 300ms }\n",
    )
    .await;
    let big = json!({"csr": "x".repeat(4096), "token": "t"});
    refused(&h.post("/v1/enroll", &big).await, 413, "body_too_large");

    // Slow body on /v1/renew (authenticated, and not rate limited).
    let mut slow = h.conn(Some(h.ca.issue(FRONTEND))).await;
    slow.send_raw(b"POST /v1/renew HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
        .await
        .unwrap();
    refused(&slow.read_response().await.unwrap(), 408, "request_timeout");

    // A burst of 1 per second, drained over one keep-alive connection (fast whatever the
    // machine's load): the next request is refused with 429 and a Retry-After.
    let mut conn = h.conn(None).await;
    let body = json!({"csr": "x", "token": "x"}).to_string();
    let mut refusal = None;
    for _ in 0..5 {
        let r = conn
            .request("POST", "/v1/enroll", body.as_bytes())
            .await
            .unwrap();
        if r.status == 429 {
            refusal = Some(r);
            break;
        }
        refused(&r, 400, "malformed_token");
    }
    let r = refusal.expect("never rate limited");
    refused(&r, 429, "rate_limited");
    assert_eq!(r.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn health_and_metrics() {
    let h = Harness::start("").await;
    let mut c = h.conn(None).await;
    assert_eq!(c.request("GET", "/healthz", b"").await.unwrap().status, 200);
    assert_eq!(c.request("GET", "/readyz", b"").await.unwrap().status, 200);
    let m = c.request("GET", "/metrics", b"").await.unwrap();
    assert_eq!(
        m.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "Prometheus 3 refuses a scrape without its format"
    );
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    assert!(
        text.contains("ward_ca_issuances_total{attestor=\"ca\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("ward_ca_issuer_expiry_timestamp_seconds"),
        "{text}"
    );
    assert!(text.contains("ward_ca_request_duration_seconds"), "{text}");
}
