//! JWT-SVID signing keys of a trust domain (a SPIFFE bundle's `use: jwt-svid` entries), and
//! the one check a JWS signature gets: the token's `alg` must be one the key was made for
//! (ES256 for a P-256 key, ES384 for a P-384 key; RS256, RS384, RS512, PS256, PS384 or PS512
//! for an RSA key of 2048 bits or more: the algorithms of the JWT-SVID specification that
//! `ring` verifies). `none`, HMAC and every other algorithm are refused by construction: there
//! is no key type they fit.
//!
//! Keys are held as their public parameters, so a bundle can be handed on (the Workload API's
//! JWKS documents) exactly as it was received. A JWK of a type or curve ward does not verify
//! (Ed25519, P-521, ...) is not an error: [`JwtAuthority::from_jwk`] says `None`, and the
//! SPIFFE bundle specification (section 4.1.3) asks that such keys be ignored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

/// A JWT-SVID signing key's public half.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtPublicKey {
    /// A P-256 point, uncompressed (`0x04 || x || y`), for ES256.
    P256 {
        /// The SEC1 uncompressed point.
        point: Vec<u8>,
    },
    /// A P-384 point, uncompressed (`0x04 || x || y`), for ES384.
    P384 {
        /// The SEC1 uncompressed point.
        point: Vec<u8>,
    },
    /// An RSA modulus and exponent (big-endian, no leading zeros), for RS256/384/512 and
    /// PS256/384/512.
    Rsa {
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
}

/// One JWT-SVID signing key of a trust domain, named by its `kid`.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtAuthority {
    /// The key id tokens carry in their header.
    pub kid: String,
    /// The key.
    pub key: JwtPublicKey,
}

impl std::fmt::Debug for JwtAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthority")
            .field("kid", &self.kid)
            .field("key", &self.kind())
            .finish()
    }
}

/// Why a key cannot be a JWT authority.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtKeyError {
    /// The coordinates are not each as long as the curve's field.
    #[error("a {curve} key must be x and y of {bytes} bytes each")]
    BadPoint {
        /// `P-256` or `P-384`.
        curve: &'static str,
        /// The length each coordinate must have.
        bytes: usize,
    },
    /// A parameter is missing or not base64url.
    #[error("{0} is not base64url")]
    NotBase64(&'static str),
    /// The modulus is too short.
    #[error("an RSA key must be 2048 bits or more (this one is {0} bits)")]
    ShortRsa(usize),
    /// The key id is empty.
    #[error("a JWT-SVID key needs a non-empty kid")]
    NoKid,
}

impl JwtAuthority {
    /// A key from a JWK's `kty`, `crv` and base64url parameters (`param("x")` and so on,
    /// empty when absent). `Ok(None)` for a key type or curve ward does not verify: the
    /// caller ignores it. A key of a known type with bad parameters is an error.
    pub fn from_jwk<'a>(
        kid: String,
        kty: &str,
        crv: &str,
        param: impl Fn(&'static str) -> &'a str,
    ) -> Result<Option<Self>, JwtKeyError> {
        let bytes = |name: &'static str| {
            URL_SAFE_NO_PAD
                .decode(param(name))
                .map_err(|_| JwtKeyError::NotBase64(name))
        };
        let key = match (kty, crv) {
            ("EC", "P-256") => Self::p256(kid, &bytes("x")?, &bytes("y")?),
            ("EC", "P-384") => Self::p384(kid, &bytes("x")?, &bytes("y")?),
            ("RSA", _) => Self::rsa(kid, &bytes("n")?, &bytes("e")?),
            _ => return Ok(None),
        };
        key.map(Some)
    }

    /// A P-256 key from its coordinates.
    pub fn p256(kid: String, x: &[u8], y: &[u8]) -> Result<Self, JwtKeyError> {
        let point = Self::point("P-256", 32, x, y)?;
        Self::checked(kid, JwtPublicKey::P256 { point })
    }

    /// A P-384 key from its coordinates.
    pub fn p384(kid: String, x: &[u8], y: &[u8]) -> Result<Self, JwtKeyError> {
        let point = Self::point("P-384", 48, x, y)?;
        Self::checked(kid, JwtPublicKey::P384 { point })
    }

    fn point(
        curve: &'static str,
        bytes: usize,
        x: &[u8],
        y: &[u8],
    ) -> Result<Vec<u8>, JwtKeyError> {
        if x.len() != bytes || y.len() != bytes {
            return Err(JwtKeyError::BadPoint { curve, bytes });
        }
        let mut point = Vec::with_capacity(1 + 2 * bytes);
        point.push(4);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        Ok(point)
    }

    /// An RSA key from its modulus and exponent.
    pub fn rsa(kid: String, n: &[u8], e: &[u8]) -> Result<Self, JwtKeyError> {
        let n: Vec<u8> = n.iter().copied().skip_while(|b| *b == 0).collect();
        let e: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
        let bits = n.len() * 8;
        if bits < 2048 {
            return Err(JwtKeyError::ShortRsa(bits));
        }
        Self::checked(kid, JwtPublicKey::Rsa { n, e })
    }

    fn checked(kid: String, key: JwtPublicKey) -> Result<Self, JwtKeyError> {
        if kid.is_empty() {
            return Err(JwtKeyError::NoKid);
        }
        Ok(Self { kid, key })
    }

    /// The key's type, as a person reads it (`P-256`, `P-384`, `RSA`).
    pub fn kind(&self) -> &'static str {
        match self.key {
            JwtPublicKey::P256 { .. } => "P-256",
            JwtPublicKey::P384 { .. } => "P-384",
            JwtPublicKey::Rsa { .. } => "RSA",
        }
    }

    /// The JWS algorithms this key verifies.
    pub fn algorithms(&self) -> &'static [&'static str] {
        match self.key {
            JwtPublicKey::P256 { .. } => &["ES256"],
            JwtPublicKey::P384 { .. } => &["ES384"],
            JwtPublicKey::Rsa { .. } => &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
        }
    }

    /// Whether `signature` is this key's signature of `signing_input` under `alg`. False for
    /// any `alg` the key was not made for.
    pub fn verify(&self, alg: &str, signing_input: &[u8], signature: &[u8]) -> bool {
        let ec = |algorithm: &'static dyn VerificationAlgorithm, point: &[u8]| {
            UnparsedPublicKey::new(algorithm, point)
                .verify(signing_input, signature)
                .is_ok()
        };
        match (&self.key, alg) {
            (JwtPublicKey::P256 { point }, "ES256") => {
                ec(&signature::ECDSA_P256_SHA256_FIXED, point)
            }
            (JwtPublicKey::P384 { point }, "ES384") => {
                ec(&signature::ECDSA_P384_SHA384_FIXED, point)
            }
            (JwtPublicKey::Rsa { n, e }, alg) => {
                let params: &signature::RsaParameters = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, signing_input, signature)
                    .is_ok()
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    fn p256() -> (EcdsaKeyPair, JwtAuthority) {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
        let point = key.public_key().as_ref().to_vec();
        let auth = JwtAuthority::p256("k1".into(), &point[1..33], &point[33..]).unwrap();
        (key, auth)
    }

    #[test]
    fn es256_signature_verifies_only_under_es256() {
        let (key, auth) = p256();
        let sig = key.sign(&SystemRandom::new(), b"head.body").unwrap();
        assert!(auth.verify("ES256", b"head.body", sig.as_ref()));
        assert!(!auth.verify("ES256", b"head.bodx", sig.as_ref()));
        for alg in ["none", "HS256", "RS256", "ES384", "es256", ""] {
            assert!(!auth.verify(alg, b"head.body", sig.as_ref()), "{alg}");
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert_eq!(
            JwtAuthority::p256("k".into(), &[1; 31], &[1; 32]).unwrap_err(),
            JwtKeyError::BadPoint {
                curve: "P-256",
                bytes: 32
            }
        );
        assert_eq!(
            JwtAuthority::p384("k".into(), &[1; 32], &[1; 32]).unwrap_err(),
            JwtKeyError::BadPoint {
                curve: "P-384",
                bytes: 48
            }
        );
        assert_eq!(
            JwtAuthority::p256(String::new(), &[1; 32], &[1; 32]).unwrap_err(),
            JwtKeyError::NoKid
        );
        assert_eq!(
            JwtAuthority::rsa("k".into(), &[0xff; 128], &[1, 0, 1]).unwrap_err(),
            JwtKeyError::ShortRsa(1024)
        );
        let rsa = JwtAuthority::rsa("k".into(), &[0xff; 256], &[1, 0, 1]).unwrap();
        assert_eq!(rsa.algorithms()[0], "RS256");
        assert!(!rsa.verify("RS256", b"x", &[0; 256]));
    }

    #[test]
    fn es384_signature_verifies_only_under_es384() {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P384_SHA384_FIXED_SIGNING;
        let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng).unwrap();
        let point = key.public_key().as_ref();
        let x = URL_SAFE_NO_PAD.encode(&point[1..49]);
        let y = URL_SAFE_NO_PAD.encode(&point[49..]);
        let param = |name: &'static str| if name == "x" { x.as_str() } else { y.as_str() };
        let auth = JwtAuthority::from_jwk("k384".into(), "EC", "P-384", param)
            .unwrap()
            .unwrap();
        assert_eq!(auth.kind(), "P-384");
        let sig = key.sign(&rng, b"head.body").unwrap();
        assert!(auth.verify("ES384", b"head.body", sig.as_ref()));
        assert!(!auth.verify("ES384", b"head.bodx", sig.as_ref()));
        for alg in ["ES256", "ES512", "RS384", "none", ""] {
            assert!(!auth.verify(alg, b"head.body", sig.as_ref()), "{alg}");
        }
    }

    #[test]
    fn a_jwk_of_a_type_ward_does_not_verify_is_none_and_a_bad_known_one_an_error() {
        let empty = |_: &'static str| "";
        for (kty, crv) in [("OKP", "Ed25519"), ("EC", "P-521"), ("oct", "")] {
            assert_eq!(
                JwtAuthority::from_jwk("k".into(), kty, crv, empty),
                Ok(None),
                "{kty} {crv}"
            );
        }
        assert_eq!(
            JwtAuthority::from_jwk("k".into(), "EC", "P-384", |_| "!!"),
            Err(JwtKeyError::NotBase64("x"))
        );
        assert!(JwtAuthority::from_jwk("k".into(), "EC", "P-256", empty).is_err());
    }
}
