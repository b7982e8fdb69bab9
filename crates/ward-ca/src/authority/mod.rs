//! The CA in memory: its generations and how they sign (issuer, csr), its JWT keys (jwt_key,
//! jwt_svid), the rules of a rotation (rotation) and its steps in memory (material), the
//! records the state keeps (records), and the checks attestation makes (tokens, kube_jwt) and
//! foreign bundles pass (foreign_bundle). No I/O but what a caller hands in.
//!
//! [`Authority`] is one consistent generation of CA material as the daemon signs and publishes
//! with it: validated whole (the issuer key matches, the root signed the issuer, every
//! published root is a CA certificate of this trust domain, the signing root among them)
//! from wherever it is kept (a CA directory: `keys::dir`; the database: `keys::db`).

pub mod csr;
pub mod error;
pub mod foreign_bundle;
pub mod generation;
pub mod id_template;
pub mod issuer;
pub mod jwt_key;
pub mod jwt_svid;
pub mod kube_jwt;
pub mod layout;
pub mod material;
pub mod records;
pub mod rotation;
pub mod tokens;

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rustls_pki_types::CertificateDer;
use ward_api::{IssuerRole, Jwk};
use ward_identity::TrustDomain;
use ward_tls::pem::certs_to_pem;
use ward_tls::{PemError, SpkiHash, TrustBundles};

use self::error::CaError;
use self::issuer::{ca_trust_domain, Issuer};
use self::jwt_key::JwtKey;
use self::layout::{BUNDLE, JWT_KEY, ROOT_CERT};
use self::material::CaMaterial;

/// An issuer the bundle allows to sign leaves.
#[derive(Clone, Debug)]
pub struct AllowedIssuer {
    /// Its generation.
    pub role: IssuerRole,
    /// Its key hash, as verifiers compare it.
    pub spki: SpkiHash,
    /// Its serial (hex), as `ward-ca certs list` and the state name it.
    pub serial: String,
}

/// One consistent generation of CA material.
#[derive(Debug)]
pub struct Authority {
    /// The signer.
    pub issuer: Issuer,
    /// Every root workloads must trust (the signing root first).
    pub roots: Vec<CertificateDer<'static>>,
    /// The roots as PEM.
    pub bundle_pem: String,
    /// The roots as SPIFFE bundle JWKs (computed once here, not per `/v1/bundle` rebuild).
    pub jwks: Vec<Jwk>,
    /// The issuers allowed to sign leaves (the signing one first).
    pub issuers: Vec<AllowedIssuer>,
    /// Moves whenever the bundle changes (from `rotation.json`).
    pub bundle_version: u64,
    /// The JWT-SVID keys of the generations that have one, the signing generation's first.
    pub jwt_keys: Vec<(IssuerRole, JwtKey)>,
}

impl Authority {
    /// The material of a CA held in the database; `origin` names it in errors.
    pub fn from_material(
        material: &CaMaterial,
        trust_domain: &TrustDomain,
        origin: &Path,
    ) -> Result<Self, CaError> {
        let issuer = Issuer::from_generation(origin, &material.signing)?;
        for (role, g) in material.generations() {
            if role != IssuerRole::Signing {
                Issuer::from_generation(&origin.join(role.as_str()), g)?;
            }
        }
        let mut jwt_keys = Vec::new();
        for (role, g) in material.generations() {
            if let Some(pem) = &g.jwt_key_pem {
                let path = origin.join(role.as_str()).join(JWT_KEY);
                jwt_keys.push((role, JwtKey::from_pem(pem, &path)?));
            }
        }
        let mut authority = Self::assemble(
            issuer,
            material.roots()?,
            material.issuers()?,
            material.journal.bundle_version,
            trust_domain,
            origin,
        )?;
        authority.jwt_keys = jwt_keys;
        Ok(authority)
    }

    /// Checks the published roots (CA certificates of this trust domain, the signing root
    /// among them) and derives what verifiers compare.
    pub(crate) fn assemble(
        issuer: Issuer,
        roots: Vec<CertificateDer<'static>>,
        allowed: Vec<(IssuerRole, CertificateDer<'static>)>,
        bundle_version: u64,
        trust_domain: &TrustDomain,
        origin: &Path,
    ) -> Result<Self, CaError> {
        let bad = |path: &Path, problem: String| CaError::BadCa {
            path: path.to_path_buf(),
            problem,
        };
        if issuer.trust_domain() != trust_domain {
            return Err(bad(
                origin,
                format!(
                    "is a CA for {}, but the config says trust_domain {trust_domain}",
                    issuer.trust_domain()
                ),
            ));
        }
        let bundle = origin.join(BUNDLE);
        for root in &roots {
            let (_, cert) = x509_parser::parse_x509_certificate(root)
                .map_err(|e| bad(&bundle, format!("malformed certificate: {e}")))?;
            let td = ca_trust_domain(&cert, &bundle)?;
            if !cert.is_ca() || &td != trust_domain {
                return Err(bad(
                    &bundle,
                    format!(
                        "{} is not a CA certificate of {trust_domain}",
                        cert.subject()
                    ),
                ));
            }
        }
        if !roots.contains(issuer.root()) {
            return Err(bad(
                &bundle,
                format!("does not contain {ROOT_CERT}, the root that signs; workloads would refuse every new certificate"),
            ));
        }
        let mut issuers = Vec::new();
        for (role, der) in allowed {
            let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| {
                bad(
                    origin,
                    format!("{} issuer: malformed certificate: {e}", role.as_str()),
                )
            })?;
            issuers.push(AllowedIssuer {
                role,
                spki: SpkiHash::of_cert(&der)?,
                serial: ward_identity::serial_hex(cert.raw_serial()),
            });
        }
        Ok(Self {
            issuers,
            issuer,
            bundle_pem: certs_to_pem(&roots),
            jwks: roots
                .iter()
                .map(|root| root_jwk(root, &bundle))
                .collect::<Result<_, _>>()?,
            roots,
            bundle_version,
            jwt_keys: Vec::new(),
        })
    }
}

impl Authority {
    /// What the CA's own TLS verifies clients with: the roots, and only the allowed issuers
    /// under them (so a leaf signed by a retired issuer cannot even reach `/v1/renew`).
    pub fn trust_bundles(&self, td: &TrustDomain) -> Result<TrustBundles, PemError> {
        let mut bundles = TrustBundles::single(td.clone(), self.roots.clone())?;
        bundles.restrict_issuers(td, self.issuers.iter().map(|i| i.spki).collect())?;
        Ok(bundles)
    }

    /// The key that signs JWT-SVIDs now: the signing generation's (none in a generation made
    /// before JWT-SVIDs; rotate to get one).
    pub fn jwt_signer(&self) -> Option<&JwtKey> {
        self.jwt_keys
            .iter()
            .find(|(role, _)| *role == IssuerRole::Signing)
            .map(|(_, key)| key)
    }

    /// Every JWT-SVID key relying parties must accept: signing, next and previous.
    pub fn jwt_jwks(&self) -> Vec<Jwk> {
        self.jwt_keys.iter().map(|(_, key)| key.jwk()).collect()
    }

    /// The algorithms of the published JWT-SVID keys, each once (ES256 when there are none).
    pub fn jwt_algorithms(&self) -> Vec<&'static str> {
        let mut algs: Vec<&'static str> = self
            .jwt_keys
            .iter()
            .map(|(_, key)| key.algorithm().as_str())
            .collect();
        algs.sort_unstable();
        algs.dedup();
        if algs.is_empty() {
            algs.push("ES256");
        }
        algs
    }

    /// The allowed issuers as published in `/v1/bundle` and enrollment answers.
    pub fn allowed_issuers(&self) -> Vec<ward_api::AllowedIssuer> {
        self.issuers
            .iter()
            .map(|i| ward_api::AllowedIssuer {
                role: i.role,
                spki_sha256: i.spki.to_hex(),
                serial: i.serial.clone(),
            })
            .collect()
    }
}

/// A root (read from `path`) as a SPIFFE bundle JWK (P-256 only, as ward's CA directories
/// make).
pub fn root_jwk(der: &CertificateDer<'_>, path: &Path) -> Result<Jwk, CaError> {
    let bad = |problem: String| CaError::BadCa {
        path: path.to_path_buf(),
        problem,
    };
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| bad(format!("root certificate: {e}")))?;
    let point = &cert.public_key().subject_public_key.data;
    if point.len() != 65 || point[0] != 4 {
        return Err(bad("root key is not an uncompressed P-256 point".into()));
    }
    Ok(Jwk {
        key_use: "x509-svid".into(),
        kty: "EC".into(),
        crv: "P-256".into(),
        kid: None,
        x: URL_SAFE_NO_PAD.encode(&point[1..33]),
        y: URL_SAFE_NO_PAD.encode(&point[33..65]),
        x5c: vec![STANDARD.encode(der.as_ref())],
        ..Jwk::default()
    })
}

#[cfg(test)]
mod kube_jwt_tests;
