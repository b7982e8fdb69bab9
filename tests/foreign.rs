//! A foreign trust domain under a test's control: a bundle endpoint (`https_web`, with a web
//! PKI of the test's own) that serves whatever document the test sets, SPIFFE bundle
//! documents of a test CA's roots, and JWT-SVID signing keys of the kinds other SPIFFE
//! implementations use (SPIRE's `ec-p384` ES384 keys, Ed25519), written and signed by a JWT
//! library nobody here wrote (`jsonwebtoken`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};

use crate::TestCa;

/// A web PKI of the test's own in `dir`: `web.pem`/`web.key`, a certificate for localhost
/// under the returned root (also written as `web-root.pem`).
pub fn web_pki(dir: &Path) -> CertificateDer<'static> {
    let root_key = rcgen::KeyPair::generate().unwrap();
    let mut root_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    root_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let root = root_params.self_signed(&root_key).unwrap();
    let issuer = rcgen::Issuer::new(root_params, &root_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let write = |name: &str, text: String, mode| {
        ward_tls::files::write_atomic(&dir.join(name), text.as_bytes(), mode).unwrap();
    };
    write("web.pem", leaf.pem(), ward_tls::files::PUBLIC_MODE);
    write(
        "web.key",
        leaf_key.serialize_pem(),
        ward_tls::files::KEY_MODE,
    );
    write("web-root.pem", root.pem(), ward_tls::files::PUBLIC_MODE);
    root.der().clone()
}

/// A bundle endpoint (https_web with the certificate [`web_pki`] wrote in its directory) that
/// answers every request with the document last [`set`](Self::set).
#[derive(Debug)]
pub struct FakeEndpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    body: Arc<Mutex<String>>,
}

impl FakeEndpoint {
    /// Starts serving `first` with the certificate in `dir`.
    pub async fn start(dir: &Path, first: String) -> Self {
        let chain = ward_tls::pem::load_certs(&dir.join("web.pem")).unwrap();
        let key = ward_tls::pem::load_private_key(&dir.join("web.key")).unwrap();
        let tls = ward_tls::server_config_web(chain, key, &[b"http/1.1"]).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = Arc::new(Mutex::new(first));
        let served = body.clone();
        crate::https::answer(listener, acceptor, move |_| {
            ("200 OK", served.lock().unwrap().clone())
        });
        Self { addr, body }
    }

    /// Serves `document` from now on.
    pub fn set(&self, document: String) {
        *self.body.lock().unwrap() = document;
    }

    /// Its URL with path `/bundle`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/bundle", self.addr.port())
    }
}

/// A SPIFFE bundle of `ca`'s roots, with `spiffe_sequence` when given, and a 1 s refresh hint.
pub fn document(ca: &TestCa, sequence: Option<u64>) -> String {
    let roots = ward_tls::pem::load_certs(&ca.path().join("bundle.pem")).unwrap();
    let keys: Vec<Value> = roots
        .iter()
        .map(|r| json!({"use": "x509-svid", "kty": "EC", "x5c": [STANDARD.encode(r.as_ref())]}))
        .collect();
    let mut doc = json!({"keys": keys, "spiffe_refresh_hint": 1});
    if let Some(s) = sequence {
        doc["spiffe_sequence"] = json!(s);
    }
    doc.to_string()
}

/// `document` with these keys added (as JSON values).
pub fn with_keys(document: &str, keys: &[Value]) -> String {
    let mut doc: Value = serde_json::from_str(document).unwrap();
    doc["keys"]
        .as_array_mut()
        .unwrap()
        .extend(keys.iter().cloned());
    doc.to_string()
}

/// A JWT-SVID signing key of another SPIFFE implementation: `jsonwebtoken` signs with it and
/// writes its JWK (with `use: jwt-svid`).
pub struct ForeignJwtKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for ForeignJwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForeignJwtKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl ForeignJwtKey {
    /// A P-384 key (ES384), as SPIRE's `ec-p384` JWT key type makes.
    pub fn es384(kid: &str) -> Self {
        let alg = &signature::ECDSA_P384_SHA384_FIXED_SIGNING;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let params = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
            key_type: EllipticCurveKeyType::EC,
            curve: EllipticCurve::P384,
            x: URL_SAFE_NO_PAD.encode(&point[1..49]),
            y: URL_SAFE_NO_PAD.encode(&point[49..]),
        });
        Self::new(
            kid,
            Algorithm::ES384,
            EncodingKey::from_ec_der(pkcs8.as_ref()),
            params,
        )
    }

    /// An Ed25519 key (EdDSA): a key type ward does not verify.
    pub fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let params = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        });
        Self::new(
            kid,
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(pkcs8.as_ref()),
            params,
        )
    }

    fn new(
        kid: &str,
        algorithm: Algorithm,
        encoding: EncodingKey,
        params: AlgorithmParameters,
    ) -> Self {
        let jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Other("jwt-svid".into())),
                key_id: Some(kid.to_owned()),
                ..CommonParameters::default()
            },
            algorithm: params,
        };
        Self {
            kid: kid.to_owned(),
            algorithm,
            encoding,
            jwk,
        }
    }

    /// Its JWK, as `jsonwebtoken` writes it.
    pub fn jwk(&self) -> Value {
        serde_json::to_value(&self.jwk).unwrap()
    }

    /// A JWT-SVID for `sub` and `aud`, valid for `ttl_secs`.
    pub fn sign(&self, sub: &str, aud: &str, ttl_secs: i64) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({"sub": sub, "aud": [aud], "iat": now, "exp": now + ttl_secs});
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap()
    }
}
