//! The SPIFFE bundle endpoint (federation): the CA serves its trust domain's bundle as the
//! SPIFFE Trust Domain and Bundle specification defines it, without client authentication,
//! under the `https_spiffe` profile (its own SVID) or `https_web` (an operator's certificate),
//! and a SPIFFE library nobody here wrote (the `spiffe` crate) reads the roots and the JWT
//! keys out of it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hyper::{Method, StatusCode, Uri};
use serde_json::Value;
use support::Harness;
use ward_e2e::foreign::{document, web_pki, FakeEndpoint};
use ward_https::{HttpsRequest, Limits, ServerAuth};

const LIMITS: Limits = Limits {
    timeout: Duration::from_secs(10),
    max_body: 1 << 20,
};

async fn fetch(
    auth: &ServerAuth,
    url: &str,
    method: Method,
    path: &str,
) -> ward_https::HttpsResponse {
    let url: Uri = url.parse().unwrap();
    let req = HttpsRequest {
        method,
        url: &url,
        path,
        headers: Vec::new(),
        body: None,
    };
    ward_https::send(auth, req, LIMITS).await.unwrap()
}

fn spiffe_auth(h: &Harness) -> ServerAuth {
    ServerAuth::Spiffe {
        bundles: h.ca.bundles(),
        expected: vec!["spiffe://example.org/ward/ca".parse().unwrap()],
        identity: None,
    }
}

fn url(addr: SocketAddr) -> String {
    format!("https://localhost:{}", addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundle_endpoint_serves_the_spiffe_bundle_that_a_spiffe_library_reads() {
    let h = Harness::start(
        "jwt_svid: {}\nbundle_refresh_hint: 7s\nfederation:\n  bundle_endpoint: { listen: \"127.0.0.1:0\", profile: https_spiffe }\n",
    )
    .await;
    let addr = h
        .running
        .bundle_endpoint_addr
        .expect("the endpoint listens");
    // No client certificate: anyone may read a bundle.
    let resp = fetch(&spiffe_auth(&h), &url(addr), Method::GET, "/bundle").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(
        resp.header(&hyper::header::CONTENT_TYPE),
        Some("application/json")
    );
    assert_eq!(
        resp.header(&hyper::header::CACHE_CONTROL),
        Some("public, max-age=7")
    );
    let doc: Value = serde_json::from_slice(&resp.body).unwrap();
    assert!(doc["spiffe_sequence"].as_u64().unwrap() > 0);
    assert_eq!(doc["spiffe_refresh_hint"], 7);
    // The same document as the one inside /v1/bundle.
    let inner = h
        .conn(None)
        .await
        .request("GET", "/v1/bundle", b"")
        .await
        .unwrap()
        .json();
    assert_eq!(doc, inner["spiffe_bundle"]);

    // The spiffe crate reads the X.509 authorities and the JWT authorities.
    let td = spiffe::TrustDomain::new("example.org").unwrap();
    let keys = doc["keys"].as_array().unwrap();
    let der: Vec<u8> = keys
        .iter()
        .filter(|k| k["use"] == "x509-svid")
        .flat_map(|k| STANDARD.decode(k["x5c"][0].as_str().unwrap()).unwrap())
        .collect();
    let x509 = spiffe::X509Bundle::parse_from_der(td.clone(), &der).unwrap();
    let roots = ward_tls::pem::load_certs(&h.ca.path().join("bundle.pem")).unwrap();
    assert_eq!(
        x509.authorities()
            .iter()
            .map(|c| c.as_ref().to_vec())
            .collect::<Vec<_>>(),
        roots
            .iter()
            .map(|c| c.as_ref().to_vec())
            .collect::<Vec<_>>()
    );
    let jwt_keys: Vec<&Value> = keys.iter().filter(|k| k["use"] == "jwt-svid").collect();
    assert_eq!(jwt_keys.len(), 1, "{doc}");
    let jwks = serde_json::json!({ "keys": jwt_keys }).to_string();
    let jwt = spiffe::JwtBundle::from_jwt_authorities(td, jwks.as_bytes()).unwrap();
    let kid = jwt_keys[0]["kid"].as_str().unwrap();
    assert!(jwt.find_jwt_authority(kid).is_some());

    // Nothing else is served there.
    let other = fetch(&spiffe_auth(&h), &url(addr), Method::GET, "/v1/bundle").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let post = fetch(&spiffe_auth(&h), &url(addr), Method::POST, "/bundle").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_web_serves_the_bundle_with_the_operators_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let root = web_pki(dir.path());
    let extra = format!(
        "federation:\n  bundle_endpoint: {{ listen: \"127.0.0.1:0\", path: /spiffe/bundle, profile: https_web, cert_file: {}, key_file: {} }}\n",
        dir.path().join("web.pem").display(),
        dir.path().join("web.key").display()
    );
    let h = Harness::start(&extra).await;
    let addr = h.running.bundle_endpoint_addr.unwrap();
    let web = ServerAuth::Roots(vec![root]);
    let resp = fetch(&web, &url(addr), Method::GET, "/spiffe/bundle").await;
    assert_eq!(resp.status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&resp.body).unwrap();
    assert!(doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["use"] == "x509-svid"));
    // Under https_web, the CA's own SVID is not what it serves: a SPIFFE client refuses it.
    let url: Uri = url(addr).parse().unwrap();
    let spiffe = ward_https::send(
        &spiffe_auth(&h),
        HttpsRequest {
            method: Method::GET,
            url: &url,
            path: "/spiffe/bundle",
            headers: Vec::new(),
            body: None,
        },
        LIMITS,
    )
    .await;
    assert!(spiffe.is_err());
}

/// A foreign endpoint that serves garbage, an older sequence, another domain's bundle, and
/// at last a good newer bundle: only the last is accepted, the rest are counted, and the
/// bundle in force never changes (or empties) in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_endpoint_serving_garbage_or_going_backwards_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    web_pki(dir.path());
    let c = ward_e2e::TestCa::new("c.example");
    let other = ward_e2e::TestCa::new("d.example");
    std::fs::write(dir.path().join("c.json"), document(&c, Some(5))).unwrap();
    let endpoint = FakeEndpoint::start(dir.path(), "{ not json".to_string()).await;
    let extra = format!(
        "bundle_refresh_hint: 1s\nfederation:\n  federates_with:\n    - {{ trust_domain: c.example, url: \"{}\", profile: https_web, ca_file: {}, bundle_file: {} }}\n",
        endpoint.url(),
        dir.path().join("web-root.pem").display(),
        dir.path().join("c.json").display()
    );
    let h = Harness::start(&extra).await;
    let td: ward_identity::TrustDomain = "c.example".parse().unwrap();
    let sequence = || h.running.service.foreign.get(&td).and_then(|b| b.sequence);
    let failures = || {
        ward_e2e::metrics::sample_or_zero(
            &h.running.service.metrics.encode(),
            "ward_ca_federation_failures_total{trust_domain=\"c.example\"}",
        )
    };
    assert_eq!(sequence(), Some(5), "the bundle_file is in force at start");
    for bad in [document(&c, Some(3)), document(&other, Some(9))] {
        let before = failures();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while failures() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "a bad document was not refused"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            sequence(),
            Some(5),
            "a refused document changed the bundle in force"
        );
        endpoint.set(bad);
    }
    let before = failures();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while failures() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the other domain's bundle was not refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    endpoint.set(document(&c, Some(6)));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sequence() != Some(6) {
        assert!(
            std::time::Instant::now() < deadline,
            "the good newer bundle was not accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Sidecars get it; the operator sees it.
    let doc = h
        .conn(None)
        .await
        .request("GET", "/v1/bundle", b"")
        .await
        .unwrap()
        .json();
    assert_eq!(doc["federated"][0]["trust_domain"], "c.example");
    assert_eq!(doc["federated"][0]["spiffe_sequence"], 6);
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_ward-ca"))
        .current_dir(h.dir.path())
        .args(["federation", "list", "--config", "ca.yaml"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("c.example"))
        .unwrap_or_default();
    assert!(row.split_whitespace().nth(2) == Some("6"), "{out}");
    // Columns line up under their headers, whatever the values' widths.
    let header = out.lines().next().unwrap_or_default();
    assert_eq!(row.find("https://"), header.find("ENDPOINT"), "{out}");
    let json = std::process::Command::new(env!("CARGO_BIN_EXE_ward-ca"))
        .current_dir(h.dir.path())
        .args([
            "federation",
            "list",
            "--config",
            "ca.yaml",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["federations"][0]["trust_domain"], "c.example");
    assert_eq!(v["federations"][0]["state"], "in_force");
    assert_eq!(v["federations"][0]["sequence"], 6);
}

/// `federation:` refuses, at the line, what could only fail later or trust the wrong party.
#[test]
fn federation_config_fails_closed() {
    let parse = |extra: &str| {
        let yaml = format!(
            "trust_domain: a.example\nca_dir: ca\nlisten: 127.0.0.1:0\nstate: s.db\nfederation:\n{extra}"
        );
        ward_ca::config::CaConfig::parse("ca.yaml", &yaml, std::path::Path::new("/etc/ward"))
            .map_err(|e| e.to_string())
    };
    let peer = |rest: &str| {
        format!("  federates_with:\n    - {{ trust_domain: b.example, url: \"https://b:8445/bundle\", {rest} }}\n")
    };
    let ok = parse(&peer(
        "profile: https_spiffe, endpoint_spiffe_id: \"spiffe://b.example/ward/ca\", bundle_file: b.json",
    ))
    .unwrap();
    assert_eq!(ok.federation.federates_with.len(), 1);
    assert_eq!(
        ok.federation.federates_with[0].bundle_file.as_deref(),
        Some(std::path::Path::new("/etc/ward/b.json"))
    );
    let refused = [
        (peer("profile: https_spiffe").replace("b.example,", "a.example,"), "own trust domain"),
        (peer("profile: https_spiffe"), "needs endpoint_spiffe_id"),
        (peer("profile: https_spiffe, endpoint_spiffe_id: \"spiffe://a.example/ward/ca\""), "is not in b.example"),
        (peer("profile: https_web"), "needs ca_file"),
        (peer("profile: https_web, ca_file: x.pem").replace("https://b", "http://b"), "url"),
        (peer("profile: ftp"), "unknown variant `ftp`"),
        (peer("profile: https_web, ca_file: x.pem, token: t"), "unknown field `token`"),
        (
            format!(
                "{}    - {{ trust_domain: b.example, url: \"https://c:1/b\", profile: https_web, ca_file: x.pem }}\n",
                peer("profile: https_web, ca_file: x.pem")
            ),
            "listed twice",
        ),
        ("  bundle_endpoint: { listen: \"127.0.0.1:0\", profile: https_web }\n".into(), "needs cert_file and key_file"),
        ("  bundle_endpoint: { listen: \"127.0.0.1:0\", profile: https_spiffe, cert_file: c.pem }\n".into(), "belong to https_web"),
        ("  bundle_endpoint: { listen: \"127.0.0.1:0\", path: bundle, profile: https_spiffe }\n".into(), "must start with /"),
        ("  bundle_endpoint: { listen: nowhere, profile: https_spiffe }\n".into(), "not an IP:port"),
    ];
    for (extra, want) in refused {
        let err = parse(&extra).unwrap_err();
        assert!(
            err.contains("ca.yaml:") && err.contains(want),
            "want {want:?} in {err}\n{extra}"
        );
    }
}
