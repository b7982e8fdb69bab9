//! Signs Kubernetes-style service-account JWTs for tests, with ES256 (ring-generated P-256)
//! or RS256 (an RSA key made by `openssl genpkey`, since ring cannot generate RSA keys), and
//! writes the matching JWKS.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::json;

/// A JWT signing key and its JWK.
#[derive(Debug)]
pub enum JwtSigner {
    /// ES256.
    Es256(EcdsaKeyPair, String),
    /// RS256.
    Rs256(RsaKeyPair, String),
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl JwtSigner {
    /// A new P-256 key with key id `kid`.
    pub fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let key = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        Self::Es256(key, kid.to_owned())
    }

    /// A new 2048-bit RSA key (via openssl) with key id `kid`.
    pub fn rs256(kid: &str) -> Self {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-outform",
                "DER",
            ])
            .output()
            .expect("openssl must be installed (make test installs it)");
        assert!(out.status.success(), "openssl genpkey failed");
        // `genpkey -outform DER` writes a PKCS#1 RSAPrivateKey.
        let key = RsaKeyPair::from_der(&out.stdout).unwrap();
        Self::Rs256(key, kid.to_owned())
    }

    /// The public JWK.
    pub fn jwk(&self) -> serde_json::Value {
        match self {
            Self::Es256(k, kid) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            Self::Rs256(k, kid) => {
                let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public());
                json!({"kty": "RSA", "kid": kid, "n": b64(&c.n), "e": b64(&c.e)})
            }
        }
    }

    /// Signs `claims` with header `{"alg": <alg>, "kid": <kid>}`.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let (alg, kid) = match self {
            Self::Es256(_, kid) => ("ES256", kid),
            Self::Rs256(_, kid) => ("RS256", kid),
        };
        let signing_input = format!(
            "{}.{}",
            b64(json!({"alg": alg, "kid": kid, "typ": "JWT"})
                .to_string()
                .as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match self {
            Self::Es256(k, _) => k
                .sign(&rng, signing_input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Self::Rs256(k, _) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    signing_input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
        };
        format!("{signing_input}.{}", b64(&sig))
    }
}

/// A JWKS document holding these keys.
pub fn jwks(signers: &[&JwtSigner]) -> String {
    json!({"keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>()}).to_string()
}

/// Kubernetes projected-token claims for `namespace`/`sa`, valid now for `ttl_secs`.
pub fn kube_claims(
    issuer: &str,
    audience: &str,
    namespace: &str,
    sa: &str,
    ttl_secs: i64,
) -> serde_json::Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "iss": issuer,
        "aud": [audience],
        "exp": now + ttl_secs,
        "nbf": now - 5,
        "iat": now - 5,
        "sub": format!("system:serviceaccount:{namespace}:{sa}"),
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": sa, "uid": "0000"}, "pod": {"name": "p", "uid": "1111"}},
    })
}

/// An unsigned (`alg: none`) token with these claims.
pub fn unsigned(claims: &serde_json::Value) -> String {
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}
