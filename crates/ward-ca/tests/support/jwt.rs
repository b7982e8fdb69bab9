//! The JWT-SVID side of the CA tests: a config with JWT-SVIDs and OIDC discovery, the
//! relying party's steps (discovery, keys, verification with `jsonwebtoken`), and `/v1/jwt`.

use std::net::SocketAddr;

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ward_e2e::Material;

use super::Harness;

pub const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
pub const ISSUER: &str = "https://oidc.example.test";
pub const CONFIG: &str = "jwt_svid: { default_ttl: 5m, max_ttl: 10m }\noidc: { listen: \"127.0.0.1:0\", issuer: \"https://oidc.example.test/\" }\nbundle_refresh_hint: 1s\n";

/// A plain HTTP GET to the discovery listener: (status, Cache-Control, JSON body).
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String, Value) {
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
pub async fn verify(addr: SocketAddr, token: &str, audience: &str) -> Result<Value, String> {
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
pub async fn bundle_keys(h: &Harness) -> Vec<Value> {
    let doc = h
        .conn(None)
        .await
        .request("GET", "/v1/bundle", b"")
        .await
        .unwrap()
        .json();
    doc["spiffe_bundle"]["keys"].as_array().unwrap().clone()
}

pub fn copy(m: &Material) -> Material {
    Material {
        chain: m.chain.clone(),
        key: m.key.clone_key(),
    }
}

pub async fn jwt(h: &Harness, client: Option<Material>, body: Value) -> ward_e2e::https::Response {
    h.conn(client)
        .await
        .request("POST", "/v1/jwt", body.to_string().as_bytes())
        .await
        .unwrap()
}

/// A self-signed certificate for `localhost` made by `openssl req`, as an operator makes one
/// for a lab: `<name>.pem` and `<name>.key` (0600) in `dir`.
pub fn self_signed_localhost(dir: &std::path::Path, name: &str) {
    let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-keyout", &key, "-out", &cert, "-days", "1"])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .output()
        .expect("openssl (make test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(
        dir.join(key),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
}
