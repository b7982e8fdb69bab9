//! JWT-SVIDs from `POST /v1/jwt` and their keys through OIDC discovery, checked by a relying
//! party nobody here wrote (the `jsonwebtoken` crate) that knows only the issuer URL: it reads
//! `/.well-known/openid-configuration`, fetches `jwks_uri`, and verifies signature, audience,
//! issuer and expiry. Also: what is refused, and the keys in `/v1/bundle`. (Rotation of the
//! keys: jwt_rotation.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use jsonwebtoken::decode_header;
use serde_json::json;
use support::jwt::*;
use support::{refused, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_svid_verifies_through_discovery_and_bad_requests_are_refused() {
    let h = Harness::start(CONFIG).await;
    let oidc = h.running.oidc_addr.expect("OIDC listener");
    let me = h.recorded(FRONTEND);

    let resp = jwt(&h, Some(copy(&me)), json!({"audience": ["sts.example"]})).await;
    assert_eq!(resp.status, 200, "{}", resp.json());
    let token = resp.json()["token"].as_str().unwrap().to_owned();
    let claims = verify(oidc, &token, "sts.example").await.unwrap();
    assert_eq!(claims["sub"], FRONTEND, "sub is the caller's verified ID");
    assert_eq!(claims["aud"], "sts.example", "one audience is a string");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 300, "the default ttl");
    assert!(
        verify(oidc, &token, "another").await.is_err(),
        "audience is checked"
    );

    let two = jwt(
        &h,
        Some(copy(&me)),
        json!({"audience": ["a", "b"], "ttl": 60}),
    )
    .await;
    let claims = verify(oidc, two.json()["token"].as_str().unwrap(), "b")
        .await
        .unwrap();
    assert_eq!(claims["aud"], json!(["a", "b"]));

    // The discovery listener: cacheable for one refresh hint, keys only, nothing else.
    let (status, cache, keys) = get(oidc, "/keys").await;
    assert_eq!((status, cache.as_str()), (200, "public, max-age=1"));
    assert!(keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k.get("x5c").is_none() && k["alg"] == "ES256"));
    assert_eq!(get(oidc, "/v1/bundle").await.0, 404);
    // The same key in the SPIFFE bundle, as `jwt-svid`.
    let kid = decode_header(&token).unwrap().kid.unwrap();
    assert!(bundle_keys(&h)
        .await
        .iter()
        .any(|k| k["use"] == "jwt-svid" && k["kid"] == kid.as_str()));

    // Refusals.
    refused(
        &jwt(&h, None, json!({"audience": ["x"]})).await,
        401,
        "client_cert_required",
    );
    refused(
        &jwt(&h, Some(copy(&me)), json!({"audience": []})).await,
        400,
        "invalid_audience",
    );
    let many: Vec<String> = (0..17).map(|i| format!("a{i}")).collect();
    refused(
        &jwt(&h, Some(copy(&me)), json!({"audience": many})).await,
        400,
        "invalid_audience",
    );
    refused(
        &jwt(&h, Some(copy(&me)), json!({"audience": ["x".repeat(257)]})).await,
        400,
        "invalid_audience",
    );
    refused(
        &jwt(&h, Some(copy(&me)), json!({"audience": ["x"], "ttl": 5})).await,
        400,
        "invalid_ttl",
    );
    refused(
        &jwt(&h, Some(copy(&me)), json!({"audience": ["x"], "ttl": 601})).await,
        400,
        "invalid_ttl",
    );
    refused(
        &jwt(
            &h,
            Some(copy(&me)),
            json!({"audience": ["x"], "sub": "spiffe://example.org/admin"}),
        )
        .await,
        400,
        "malformed_json",
    );
    // A revoked caller gets nothing.
    let leaf = ward_identity::SvidProfile::check(&me.chain[0]).unwrap();
    h.running
        .service
        .state
        .revoke(ward_ca::authority::records::Revocation {
            spiffe_id: None,
            serial: Some(leaf.serial_hex.clone()),
            reason: "test".into(),
            revoked_at: ward_ca::state::unix_now(),
        })
        .await
        .unwrap();
    refused(
        &jwt(&h, Some(me), json!({"audience": ["x"]})).await,
        403,
        "revoked",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_without_jwt_svid_issues_none_and_publishes_no_jwt_key() {
    let h = Harness::start("").await;
    assert!(h.running.oidc_addr.is_none());
    let me = h.recorded(FRONTEND);
    refused(
        &jwt(&h, Some(me), json!({"audience": ["x"]})).await,
        403,
        "jwt_svid_disabled",
    );
    assert!(bundle_keys(&h)
        .await
        .iter()
        .all(|k| k["use"] == "x509-svid"));
}

/// `jwt_svid:` and `oidc:` refuse what would make tokens no relying party can check, at the
/// line.
#[test]
fn jwt_config_fails_closed() {
    let parse = |extra: &str| {
        let yaml = format!(
            "trust_domain: example.org\nca_dir: ca\nlisten: 127.0.0.1:0\nstate: s.db\n{extra}"
        );
        ward_ca::config::CaConfig::parse("ca.yaml", &yaml, std::path::Path::new("/etc/ward"))
            .map_err(|e| e.to_string())
    };
    let refused = [
        (
            "jwt_svid: { max_ttl: 2h }\n",
            "ca.yaml:5:",
            "between 10s and 1h",
        ),
        (
            "jwt_svid: { default_ttl: 20m, max_ttl: 10m }\n",
            "ca.yaml:5:",
            "longer than max_ttl",
        ),
        (
            "jwt_svid: { lifetime: 5m }\n",
            "ca.yaml:5:",
            "unknown field `lifetime`",
        ),
        (
            "jwt_svid: { algorithm: HS256 }\n",
            "ca.yaml:5:",
            "unknown variant `HS256`, expected one of ES256, RS256",
        ),
        (
            "oidc: { listen: \"127.0.0.1:0\", issuer: https://x.test }\n",
            "ca.yaml:5:",
            "enable jwt_svid",
        ),
        (
            "jwt_svid: {}\noidc: { listen: \"127.0.0.1:0\", issuer: http://x.test }\n",
            "ca.yaml:6:",
            "an https:// URL",
        ),
        (
            "jwt_svid: {}\noidc: { listen: \"127.0.0.1:0\", issuer: \"https://x.test/?a=b\" }\n",
            "ca.yaml:6:",
            "without query",
        ),
        (
            "jwt_svid: {}\noidc: { listen: nowhere, issuer: https://x.test }\n",
            "ca.yaml:6:",
            "oidc.listen",
        ),
        (
            "jwt_svid: {}\noidc: { listen: \"127.0.0.1:0\", issuer: https://x.test, cert_file: c.pem }\n",
            "ca.yaml:6:",
            "both cert_file and key_file",
        ),
    ];
    for (extra, at, expected) in refused {
        let err = parse(extra).expect_err(extra);
        assert!(
            err.starts_with(at) && err.contains(expected),
            "{extra}: {err}"
        );
    }
    let ok = parse(
        "jwt_svid: {}\noidc: { listen: \"0.0.0.0:8444\", issuer: \"https://oidc.example.com/\" }\n",
    )
    .unwrap();
    assert_eq!(ok.jwt_svid.unwrap().default_ttl.as_secs(), 300);
    assert_eq!(
        ok.oidc.unwrap().issuer,
        "https://oidc.example.com",
        "one issuer spelling"
    );
}

/// With `cert_file` and `key_file` the discovery listener serves HTTPS itself: curl, trusting
/// only that certificate, follows the discovery document to `jwks_uri`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_can_serve_https_itself() {
    let dir = tempfile::tempdir().unwrap();
    self_signed_localhost(dir.path(), "oidc");
    let config = CONFIG.replace(
        "issuer: \"https://oidc.example.test/\" }",
        "issuer: \"https://oidc.example.test/\", cert_file: oidc.pem, key_file: oidc.key }",
    );
    assert_ne!(config, CONFIG);
    let h = Harness::start_with("jwks_file: jwks.json", &config, dir).await;
    let port = h.running.oidc_addr.expect("OIDC listener").port();
    let curl = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(h.dir.path().join("oidc.pem"))
            .arg(format!("https://localhost:{port}{path}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let doc = curl("/.well-known/openid-configuration");
    assert_eq!(doc["issuer"], "https://oidc.example.test");
    let keys = curl("/keys");
    assert!(!keys["keys"].as_array().unwrap().is_empty(), "{keys}");
    // Plain HTTP is not served there any more.
    let plain = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://localhost:{port}/keys"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("\"keys\""));
}
