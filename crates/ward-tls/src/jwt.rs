//! JWT-SVID signing keys of a trust domain (a SPIFFE bundle's `use: jwt-svid` entries), and
//! the one check a JWS signature gets: the token's `alg` must be one the key was made for
//! (ES256 for a P-256 key, RS256 for an RSA key of 2048 bits or more). `none`, HMAC and
//! every other algorithm are refused by construction: there is no key type they fit.
//!
//! Keys are held as their public parameters, so a bundle can be handed on (the Workload API's
//! JWKS documents) exactly as it was received.

use ring::signature::{self, UnparsedPublicKey};

/// A JWT-SVID signing key's public half.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtPublicKey {
    /// A P-256 point, uncompressed (`0x04 || x || y`), for ES256.
    P256 {
        /// The SEC1 uncompressed point.
        point: Vec<u8>,
    },
    /// An RSA modulus and exponent (big-endian, no leading zeros), for RS256.
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
        let kind = match self.key {
            JwtPublicKey::P256 { .. } => "P-256",
            JwtPublicKey::Rsa { .. } => "RSA",
        };
        f.debug_struct("JwtAuthority")
            .field("kid", &self.kid)
            .field("key", &kind)
            .finish()
    }
}

/// Why a key cannot be a JWT authority.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtKeyError {
    /// The point is not 65 bytes starting with 0x04.
    #[error("a P-256 key must be x and y of 32 bytes each")]
    BadPoint,
    /// The modulus is too short.
    #[error("an RSA key must be 2048 bits or more (this one is {0} bits)")]
    ShortRsa(usize),
    /// The key id is empty.
    #[error("a JWT-SVID key needs a non-empty kid")]
    NoKid,
}

impl JwtAuthority {
    /// A P-256 key from its coordinates.
    pub fn p256(kid: String, x: &[u8], y: &[u8]) -> Result<Self, JwtKeyError> {
        if x.len() != 32 || y.len() != 32 {
            return Err(JwtKeyError::BadPoint);
        }
        let mut point = Vec::with_capacity(65);
        point.push(4);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        Self::checked(kid, JwtPublicKey::P256 { point })
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

    /// The JWS algorithm this key verifies.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            JwtPublicKey::P256 { .. } => "ES256",
            JwtPublicKey::Rsa { .. } => "RS256",
        }
    }

    /// Whether `signature` is this key's signature of `signing_input` under `alg`. False for
    /// any `alg` other than the key's own.
    pub fn verify(&self, alg: &str, signing_input: &[u8], signature: &[u8]) -> bool {
        if alg != self.algorithm() {
            return false;
        }
        match &self.key {
            JwtPublicKey::P256 { point } => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(signing_input, signature)
                    .is_ok()
            }
            JwtPublicKey::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    signing_input,
                    signature,
                )
                .is_ok(),
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
            JwtKeyError::BadPoint
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
        assert_eq!(rsa.algorithm(), "RS256");
        assert!(!rsa.verify("RS256", b"x", &[0; 256]));
    }
}
