//! JWT-SVIDs from `POST /v1/jwt` and their keys through OIDC discovery, checked by a relying
//! party nobody here wrote (the `jsonwebtoken` crate) that knows only the issuer URL: it reads
//! `/.well-known/openid-configuration`, fetches `jwks_uri`, and verifies signature, audience,
//! issuer and expiry. Also: what is refused, the keys in `/v1/bundle`, and rotation (a token of
//! the previous key verifies until `finish`, then no longer).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use support::{refused, Harness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ward_e2e::Material;

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const ISSUER: &str = "https://oidc.example.test";
const CONFIG: &str = "jwt_svid: { default_ttl: 5m, max_ttl: 10m }\noidc: { listen: \"127.0.0.1:0\", issuer: \"https://oidc.example.test/\" }\nbundle_refresh_hint: 1s\n";

/// A plain HTTP GET to the discovery listener: (status, Cache-Control, JSON body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: oidc.example.test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let cache = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("cache-control: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (
        status,
        cache,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// What a relying party does: discovery, then the keys, then verification.
async fn verify(addr: SocketAddr, token: &str, audience: &str) -> Result<Value, String> {
    let (_, _, doc) = get(addr, "/.well-known/openid-configuration").await;
    assert_eq!(doc["issuer"], ISSUER);
    let jwks_uri = doc["jwks_uri"].as_str().unwrap();
    let path = jwks_uri.strip_prefix(ISSUER).unwrap();
    let (_, _, keys) = get(addr, path).await;
    let kid = decode_header(token)
        .map_err(|e| e.to_string())?
        .kid
        .unwrap();
    let jwk = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or_else(|| format!("no key {kid} in the issuer's JWKS"))?;
    let s = |k: &str| jwk[k].as_str().unwrap();
    let (key, alg) = match s("kty") {
        "RSA" => (
            DecodingKey::from_rsa_components(s("n"), s("e")).unwrap(),
            Algorithm::RS256,
        ),
        _ => (
            DecodingKey::from_ec_components(s("x"), s("y")).unwrap(),
            Algorithm::ES256,
        ),
    };
    assert_eq!(
        jwk["alg"],
        format!("{alg:?}"),
        "the JWK names its algorithm"
    );
    let mut validation = Validation::new(alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[ISSUER]);
    decode::<Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

/// The keys of the CA's `/v1/bundle` SPIFFE bundle.
async fn bundle_keys(h: &Harness) -> Vec<Value> {
    let doc = h
        .conn(None)
        .await
        .request("GET", "/v1/bundle", b"")
        .await
        .unwrap()
        .json();
    doc["spiffe_bundle"]["keys"].as_array().unwrap().clone()
}

fn copy(m: &Material) -> Material {
    Material {
        chain: m.chain.clone(),
        key: m.key.clone_key(),
    }
}

async fn jwt(h: &Harness, client: Option<Material>, body: Value) -> ward_e2e::https::Response {
    h.conn(client)
        .await
        .request("POST", "/v1/jwt", body.to_string().as_bytes())
        .await
        .unwrap()
}

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
        .revoke(ward_ca::state::records::Revocation {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_verifies_until_finish_and_then_no_longer() {
    let h = Harness::start(CONFIG).await;
    let oidc = h.running.oidc_addr.unwrap();
    let me = h.recorded(FRONTEND);
    let old = jwt(&h, Some(copy(&me)), json!({"audience": ["rp"]}))
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = h.ca.path();
    ward_ca::rotate::prepare(&dir, false, 0, Default::default()).unwrap();
    ward_ca::rotate::activate(&dir, 1000, 1, false).unwrap();
    // The daemon picks the directory up within a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let new = loop {
        let t = jwt(&h, Some(copy(&me)), json!({"audience": ["rp"]}))
            .await
            .json()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        if decode_header(&t).unwrap().kid != decode_header(&old).unwrap().kid {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new key never signed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    verify(oidc, &new, "rp").await.unwrap();
    verify(oidc, &old, "rp")
        .await
        .expect("the previous key still verifies");
    ward_ca::rotate::finish(&dir).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while verify(oidc, &old, "rp").await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the retired key is still published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    verify(oidc, &new, "rp").await.unwrap();
}

/// Moving to RS256 (for relying parties that accept only RSA) is one rotation: `prepare`
/// makes an RSA key and publishes it beside the EC one, `activate` signs RS256 with it, and
/// `finish` retires the EC key; discovery names the algorithms in use throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_to_rs256_is_one_rotation() {
    let h = Harness::start(&CONFIG.replace("max_ttl: 10m", "max_ttl: 10m, algorithm: RS256")).await;
    let oidc = h.running.oidc_addr.unwrap();
    let me = h.recorded(FRONTEND);
    let algs = |doc: &Value| doc["id_token_signing_alg_values_supported"].clone();
    let (_, _, doc) = get(oidc, "/.well-known/openid-configuration").await;
    assert_eq!(
        algs(&doc),
        json!(["ES256"]),
        "the CA was made with an EC key"
    );
    let dir = h.ca.path();
    ward_ca::rotate::prepare(&dir, false, 0, ward_ca::jwt_svid::JwtAlgorithm::Rs256).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !bundle_keys(&h).await.iter().any(|k| k["kty"] == "RSA") {
        assert!(
            std::time::Instant::now() < deadline,
            "the RSA key was never published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, _, doc) = get(oidc, "/.well-known/openid-configuration").await;
    assert_eq!(algs(&doc), json!(["ES256", "RS256"]));
    ward_ca::rotate::activate(&dir, 1000, 1, false).unwrap();
    let token = loop {
        let t = jwt(&h, Some(copy(&me)), json!({"audience": ["entra"]}))
            .await
            .json()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        if decode_header(&t).unwrap().alg == Algorithm::RS256 {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "RS256 never signed");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let claims = verify(oidc, &token, "entra").await.unwrap();
    assert_eq!(claims["sub"], FRONTEND);
    ward_ca::rotate::finish(&dir).unwrap();
    while bundle_keys(&h)
        .await
        .iter()
        .any(|k| k["kty"] == "EC" && k["use"] == "jwt-svid")
    {
        assert!(
            std::time::Instant::now() < deadline + std::time::Duration::from_secs(10),
            "the EC key stayed published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, _, doc) = get(oidc, "/.well-known/openid-configuration").await;
    assert_eq!(algs(&doc), json!(["RS256"]));
    verify(oidc, &token, "entra").await.unwrap();
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
