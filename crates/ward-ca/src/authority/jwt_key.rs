//! The JWT-SVID signing key of a CA generation, one per generation beside its root and
//! issuer, so it is created, published, activated and retired by the same rotation steps
//! (and, for replicas, sealed in the database like the others).
//!
//! Two kinds: P-256 for ES256 (the default: small, fast, what every SPIFFE implementation
//! and AWS, Google Cloud and Vault verify) and RSA-3072 for RS256 (`jwt_svid.algorithm:
//! RS256`, for relying parties that accept only RSA, such as Microsoft Entra ID's federated
//! credentials). The kind is the generation's: a key signs with the algorithm it was made for,
//! and changing `algorithm` takes effect at the next `rotate prepare` (or `init --config`).
//! RSA keys are generated with the `rsa` crate (constant-time arithmetic, crypto-bigint);
//! every signature, of either kind, is ring's.
//!
//! The `kid` is derived from the public key (base64url of the first 16 bytes of the SHA-256 of
//! the uncompressed point, or of the DER RSAPublicKey), so every replica and every reload
//! names a key the same way, and a relying party caching keys by `kid` never confuses two.
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use ward_tls::pem::{encode_block, key_from_pem};

use crate::authority::error::CaError;
use crate::authority::jwt_svid::JwtAlgorithm;

enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A loaded JWT-SVID signing key.
pub struct JwtKey {
    key: Signer,
    kid: String,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("alg", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// A new JWT-SVID key for `algorithm`, as PKCS#8 PEM.
pub fn generate_pem(algorithm: JwtAlgorithm) -> Result<String, CaError> {
    let der = match algorithm {
        JwtAlgorithm::Es256 => {
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?.serialize_der()
        }
        JwtAlgorithm::Rs256 => {
            use rsa::pkcs8::EncodePrivateKey;
            use rsa::Generate;
            // `Generate` makes RSA_BITS-bit keys (exponent 65537) from the OS RNG.
            let key = rsa::PrivateKey::try_generate()
                .map_err(|e| CaError::Generate(format!("RSA key generation: {e}")))?;
            key.to_pkcs8_der()
                .map_err(|e| CaError::Generate(format!("RSA key encoding: {e}")))?
                .as_bytes()
                .to_vec()
        }
    };
    Ok(encode_block("PRIVATE KEY", &der))
}

/// Modulus size of new RSA JWT keys (the `rsa` crate's default, NIST's 128-bit strength).
pub const RSA_BITS: usize = rsa::PrivateKey::DEFAULT_BITS;

impl JwtKey {
    /// Parses a PKCS#8 P-256 or RSA key; `origin` names it in errors.
    pub fn from_pem(pem: &str, origin: &Path) -> Result<Self, CaError> {
        let bad = |problem: String| CaError::BadCa {
            path: origin.to_path_buf(),
            problem,
        };
        let der = key_from_pem(&origin.display().to_string(), pem.as_bytes())?;
        let rng = SystemRandom::new();
        let (key, public) = match EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_der(),
            &rng,
        ) {
            Ok(k) => {
                let public = k.public_key().as_ref().to_vec();
                (Signer::Ec(k), public)
            }
            Err(_) => {
                let k = RsaKeyPair::from_pkcs8(der.secret_der()).map_err(|e| {
                    bad(format!("not a P-256 or RSA PKCS#8 key for JWT-SVIDs: {e}"))
                })?;
                if k.public().modulus_len() * 8 < 2048 {
                    return Err(bad("an RSA JWT-SVID key must be 2048 bits or more".into()));
                }
                let public = k.public_key().as_ref().to_vec();
                (Signer::Rsa(k), public)
            }
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, &public);
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        Ok(Self { key, kid })
    }

    /// The key id JWT-SVIDs signed by this key carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWS algorithm this key signs with.
    pub fn algorithm(&self) -> JwtAlgorithm {
        match self.key {
            Signer::Ec(_) => JwtAlgorithm::Es256,
            Signer::Rsa(_) => JwtAlgorithm::Rs256,
        }
    }

    /// The public key as a SPIFFE bundle JWK (`use: jwt-svid`).
    pub fn jwk(&self) -> ward_api::Jwk {
        let mut jwk = ward_api::Jwk {
            key_use: "jwt-svid".into(),
            kid: Some(self.kid.clone()),
            ..ward_api::Jwk::default()
        };
        match &self.key {
            Signer::Ec(k) => {
                let point = k.public_key().as_ref();
                jwk.kty = "EC".into();
                jwk.crv = "P-256".into();
                jwk.x = URL_SAFE_NO_PAD.encode(&point[1..33]);
                jwk.y = URL_SAFE_NO_PAD.encode(&point[33..65]);
            }
            Signer::Rsa(k) => {
                let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public());
                jwk.kty = "RSA".into();
                jwk.n = URL_SAFE_NO_PAD.encode(&public.n);
                jwk.e = URL_SAFE_NO_PAD.encode(&public.e);
            }
        }
        jwk
    }

    /// A signature over `signing_input` as JWS wants it (ES256: r || s; RS256: PKCS#1 v1.5
    /// with SHA-256).
    pub fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, CaError> {
        let failed = || CaError::Generate(format!("{} signing failed", self.algorithm()));
        match &self.key {
            Signer::Ec(k) => k
                .sign(&SystemRandom::new(), signing_input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| failed()),
            Signer::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    signing_input,
                    &mut sig,
                )
                .map_err(|_| failed())?;
                Ok(sig)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_key_signs_what_its_jwk_verifies_and_names_itself_stably() {
        let pem = encode_block(
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
        let other = encode_block(
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

    #[test]
    fn an_rsa_jwt_key_signs_rs256_that_its_jwk_verifies() {
        let started = std::time::Instant::now();
        let pem = generate_pem(JwtAlgorithm::Rs256).unwrap();
        let generated_in = started.elapsed();
        let key = JwtKey::from_pem(&pem, Path::new("jwt.key")).unwrap();
        assert_eq!(key.algorithm(), JwtAlgorithm::Rs256);
        let jwk = key.jwk();
        assert_eq!(
            (jwk.kty.as_str(), jwk.crv.as_str(), jwk.x.as_str()),
            ("RSA", "", "")
        );
        let n = URL_SAFE_NO_PAD.decode(&jwk.n).unwrap();
        let e = URL_SAFE_NO_PAD.decode(&jwk.e).unwrap();
        assert_eq!(n.len() * 8, RSA_BITS, "generated in {generated_in:?}");
        assert_eq!(e, [1, 0, 1]);
        let sig = key.sign(b"header.claims").unwrap();
        ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                b"header.claims",
                &sig,
            )
            .unwrap();
        assert_eq!(
            JwtKey::from_pem(&generate_pem(JwtAlgorithm::Es256).unwrap(), Path::new("x"))
                .unwrap()
                .algorithm(),
            JwtAlgorithm::Es256
        );
    }
}
