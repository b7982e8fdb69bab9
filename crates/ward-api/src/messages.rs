//! The documents of the four `/v1` endpoints.
//!
//! Requests are strict (an unknown field is a `400 malformed_json`: a client that misspells a
//! field must hear about it); responses are lenient, so a CA that adds a field does not break
//! sidecars that do not know it yet. Certificates travel as PEM text, times as Unix seconds,
//! serials and key hashes as lower-case hex.

use serde::{Deserialize, Serialize};

/// `POST /v1/enroll`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// A PKCS#10 CSR, PEM; only its verified P-256 public key is used.
    pub csr: String,
    /// A join token (`wjt_...`) or a Kubernetes projected service-account JWT.
    pub token: String,
}

/// `POST /v1/renew` (mTLS with the certificate to renew).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// PEM CSR for the new key.
    pub csr: String,
    /// The certificate is for the app beside the sidecar (the Workload API), not for the
    /// sidecar itself: the CA records it as an app certificate, which can neither renew nor
    /// mint JWT-SVIDs, so a copied app key is worth one certificate lifetime.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub for_app: bool,
}

/// `POST /v1/revoke` (mTLS, admins): an ID or a serial, with an optional reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Revoke every certificate of this ID issued up to now.
    #[serde(default)]
    pub spiffe_id: Option<String>,
    /// Revoke the certificate with this serial (hex).
    #[serde(default)]
    pub serial: Option<String>,
    /// Free text for the audit log and the bundle.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/jwt` (mTLS with the caller's SVID): a JWT-SVID for the caller's own ID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtRequest {
    /// The audiences (`aud`); at least one.
    pub audience: Vec<String>,
    /// Lifetime in seconds; the CA's default when absent.
    #[serde(default)]
    pub ttl: Option<u64>,
}

/// The answer to `/v1/jwt`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtIssued {
    /// The compact JWS (`header.claims.signature`).
    pub token: String,
    /// Its `sub`: the caller's SPIFFE ID.
    pub spiffe_id: String,
    /// Its `exp`, Unix seconds.
    pub expires_at: i64,
}

/// The answer to `/v1/enroll` and `/v1/renew`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    /// The certified ID.
    pub spiffe_id: String,
    /// The leaf's serial.
    pub serial: String,
    /// The chain, leaf first, PEM.
    pub chain: String,
    /// The roots to trust, PEM.
    pub bundle: String,
    /// The issuers allowed to sign leaves under those roots.
    pub issuers: Vec<AllowedIssuer>,
    /// The leaf's notAfter.
    pub not_after: i64,
}

/// Which generation of the CA an allowed issuer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssuerRole {
    /// Signs now.
    Signing,
    /// Prepared by `ward-ca rotate prepare`; signs after `activate`.
    Next,
    /// Signed before the last `activate`; retired by `finish`.
    Previous,
}

impl IssuerRole {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Next => "next",
            Self::Previous => "previous",
        }
    }
}

/// An issuing CA certificate allowed to sign leaves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedIssuer {
    /// Its generation.
    pub role: IssuerRole,
    /// SHA-256 of its DER SubjectPublicKeyInfo, hex: what verifiers compare.
    pub spki_sha256: String,
    /// Its serial, hex.
    pub serial: String,
}

/// `GET /v1/bundle`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleDocument {
    /// The trust domain the roots anchor.
    pub trust_domain: String,
    /// The roots, PEM.
    pub bundle_pem: String,
    /// The roots as a SPIFFE bundle.
    pub spiffe_bundle: SpiffeBundle,
    /// The issuers allowed to sign leaves under the roots.
    pub issuers: Vec<AllowedIssuer>,
    /// Revocations in force.
    #[serde(default)]
    pub revocations: Vec<RevocationEntry>,
    /// The bundles of the trust domains this CA federates with, one per domain (never merged
    /// with ours): their workloads are trusted as themselves, by their own roots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federated: Vec<FederatedBundle>,
}

/// A foreign trust domain's bundle, as the CA last fetched and accepted it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederatedBundle {
    /// The foreign trust domain.
    pub trust_domain: String,
    /// Its X.509 roots, PEM.
    pub bundle_pem: String,
    /// Its JWT-SVID keys.
    #[serde(default)]
    pub jwt_keys: Vec<Jwk>,
    /// Its `spiffe_sequence`.
    pub spiffe_sequence: u64,
}

/// A SPIFFE trust bundle (a JWK set with SPIFFE's two extra members).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpiffeBundle {
    /// One JWK per root.
    pub keys: Vec<Jwk>,
    /// Moves whenever anything in the document changes.
    pub spiffe_sequence: u64,
    /// Seconds until clients should fetch again.
    pub spiffe_refresh_hint: u64,
}

/// A key of a SPIFFE bundle: a root (`use: x509-svid`, with its certificate in `x5c`) or a
/// JWT-SVID signing key (`use: jwt-svid`, named by `kid`): P-256, or RSA for RS256 keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `x509-svid` or `jwt-svid`.
    #[serde(rename = "use")]
    pub key_use: String,
    /// `EC`, or `RSA` (an RS256 `jwt-svid` key).
    pub kty: String,
    /// `P-256` (EC keys).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub crv: String,
    /// The key id JWT-SVIDs name in their header (`jwt-svid` keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The point's x coordinate, base64url (EC keys).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub x: String,
    /// The point's y coordinate, base64url (EC keys).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub y: String,
    /// The modulus, base64url (RSA keys).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub n: String,
    /// The public exponent, base64url (RSA keys).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub e: String,
    /// The root certificate, base64 DER (`x509-svid` keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub x5c: Vec<String>,
}

/// One published revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEntry {
    /// The revoked ID (every certificate of it issued up to `revoked_at`), or none.
    pub spiffe_id: Option<String>,
    /// The revoked serial, or none.
    pub serial: Option<String>,
    /// Why.
    pub reason: String,
    /// When, Unix seconds.
    pub revoked_at: i64,
}

/// The answer to `/v1/revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// What was recorded.
    pub revoked: RevocationEntry,
}
