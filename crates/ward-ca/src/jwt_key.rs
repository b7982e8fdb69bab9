//! The JWT-SVID signing key of a CA generation: ES256 (P-256), one per generation beside its
//! root and issuer, so it is created, published, activated and retired by the same rotation
//! steps (and, for replicas, sealed in the database like the others).
//!
//! Its `kid` is derived from the public key (base64url of the first 16 bytes of the SHA-256 of
//! the uncompressed point), so every replica and every reload names a key the same way, and a
//! relying party caching keys by `kid` never confuses two.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use ward_tls::pem::key_from_pem;

use crate::error::CaError;

/// A loaded JWT-SVID signing key.
pub struct JwtKey {
    key: EcdsaKeyPair,
    kid: String,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwtKey {
    /// Parses a PKCS#8 P-256 key; `origin` names it in errors.
    pub fn from_pem(pem: &str, origin: &Path) -> Result<Self, CaError> {
        let bad = |problem: String| CaError::BadCa {
            path: origin.to_path_buf(),
            problem,
        };
        let der = key_from_pem(&origin.display().to_string(), pem.as_bytes())?;
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_der(),
            &SystemRandom::new(),
        )
        .map_err(|e| bad(format!("not a P-256 PKCS#8 key for JWT-SVIDs: {e}")))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        Ok(Self { key, kid })
    }

    /// The key id JWT-SVIDs signed by this key carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a SPIFFE bundle JWK (`use: jwt-svid`).
    pub fn jwk(&self) -> ward_api::Jwk {
        let point = self.key.public_key().as_ref();
        ward_api::Jwk {
            key_use: "jwt-svid".into(),
            kty: "EC".into(),
            crv: "P-256".into(),
            kid: Some(self.kid.clone()),
            x: URL_SAFE_NO_PAD.encode(&point[1..33]),
            y: URL_SAFE_NO_PAD.encode(&point[33..65]),
            x5c: Vec::new(),
        }
    }

    /// An ES256 signature (r || s, as JWS wants it) over `signing_input`.
    pub fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, CaError> {
        self.key
            .sign(&SystemRandom::new(), signing_input)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| CaError::Generate("ES256 signing failed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_key_signs_what_its_jwk_verifies_and_names_itself_stably() {
        let pem = ward_tls::pem::encode_block(
            "PRIVATE KEY",
            &rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .unwrap()
                .serialize_der(),
        );
        let key = JwtKey::from_pem(&pem, Path::new("jwt.key")).unwrap();
        let again = JwtKey::from_pem(&pem, Path::new("jwt.key")).unwrap();
        assert_eq!(key.kid(), again.kid());
        let jwk = key.jwk();
        let mut point = vec![4u8];
        point.extend(URL_SAFE_NO_PAD.decode(&jwk.x).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(&jwk.y).unwrap());
        let sig = key.sign(b"header.claims").unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point)
            .verify(b"header.claims", &sig)
            .unwrap();
        let other = ward_tls::pem::encode_block(
            "PRIVATE KEY",
            &rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .unwrap()
                .serialize_der(),
        );
        assert_ne!(
            JwtKey::from_pem(&other, Path::new("x")).unwrap().kid(),
            key.kid()
        );
        assert!(JwtKey::from_pem("not a key", Path::new("x")).is_err());
    }
}
