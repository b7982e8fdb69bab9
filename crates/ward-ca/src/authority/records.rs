//! The rows of the CA's state, whatever engine keeps them: issued certificates, join tokens
//! (their hashes), revocations. Both backends read and write exactly these types.

/// One issued certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRecord {
    /// Lower-case hex serial.
    pub serial: String,
    /// The certified SPIFFE ID.
    pub spiffe_id: String,
    /// Validity start, Unix seconds.
    pub not_before: i64,
    /// Validity end, Unix seconds.
    pub not_after: i64,
    /// `join_token`, `kubernetes`, `renew` or `ca` (the CA's own serving certificate).
    pub attestor: String,
    /// The client's address.
    pub client: String,
    /// When it was issued, Unix seconds.
    pub issued_at: i64,
    /// For renewals, the serial of the certificate presented.
    pub parent_serial: Option<String>,
    /// Serial of the issuing CA certificate (`None` for rows older than schema version 2).
    pub issuer: Option<String>,
    /// Lower-case hex SHA-256 of the certificate's DER (`None` for rows older than schema
    /// version 3).
    pub fingerprint: Option<String>,
}

impl CertRecord {
    /// The record of a certificate just issued to `client` through `attestor`.
    pub fn issued(
        issued: &crate::IssuedSvid,
        attestor: &str,
        client: String,
        parent_serial: Option<String>,
    ) -> Self {
        let leaf = &issued.leaf;
        Self {
            serial: leaf.serial_hex.clone(),
            spiffe_id: leaf.id.to_string(),
            not_before: leaf.not_before,
            not_after: leaf.not_after,
            attestor: attestor.to_owned(),
            client,
            issued_at: ward_identity::unix_now(),
            parent_serial,
            issuer: Some(issued.issuer_serial.clone()),
            fingerprint: issued.chain.first().map(|der| fingerprint(der)),
        }
    }

    /// Whether a presented certificate is the one this record describes: same ID and, for
    /// rows that have one, the same DER fingerprint.
    pub fn describes(&self, spiffe_id: &str, fingerprint: &str) -> bool {
        self.spiffe_id == spiffe_id
            && self
                .fingerprint
                .as_deref()
                .is_none_or(|recorded| recorded == fingerprint)
    }
}

/// Lower-case hex SHA-256 of a certificate's DER, as the `fingerprint` column holds it.
pub fn fingerprint(der: &[u8]) -> String {
    ward_tls::files::sha256_hex(der)
}

/// One join token (its hash only; the token itself is never stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// Hex SHA-256 of the token.
    pub hash: String,
    /// Short public handle for listing and revoking.
    pub token_id: String,
    /// The SPIFFE ID the token enrolls.
    pub spiffe_id: String,
    /// Creation time.
    pub created_at: i64,
    /// Expiry time.
    pub expires_at: i64,
    /// When it was used, if it was.
    pub used_at: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// A revocation of one certificate (by serial) or of an ID (every certificate of that ID
/// issued no later than `revoked_at`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Revoked ID, or `None` for a serial revocation.
    pub spiffe_id: Option<String>,
    /// Revoked serial, or `None` for an ID revocation.
    pub serial: Option<String>,
    /// Operator's reason.
    pub reason: String,
    /// When, Unix seconds.
    pub revoked_at: i64,
}

impl Revocation {
    /// As published in `/v1/bundle` and answered by `/v1/revoke`.
    pub fn entry(&self) -> ward_api::RevocationEntry {
        ward_api::RevocationEntry {
            spiffe_id: self.spiffe_id.clone(),
            serial: self.serial.clone(),
            reason: self.reason.clone(),
            revoked_at: self.revoked_at,
        }
    }

    /// True when this revocation covers a certificate with these facts (`issued_at` as
    /// [`ward_identity::SvidLeaf::issued_at`] or the record's `issued_at`).
    pub fn covers(&self, serial: &str, spiffe_id: &str, issued_at: i64) -> bool {
        self.serial.as_deref() == Some(serial)
            || (self.spiffe_id.as_deref() == Some(spiffe_id) && issued_at <= self.revoked_at)
    }
}

/// Everything a state holds, for moving it to another engine (`ward-ca state copy`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Join tokens, newest first.
    pub tokens: Vec<TokenRecord>,
    /// Certificate records, newest first.
    pub certs: Vec<CertRecord>,
    /// Revocations, oldest first (the order the bundle lists them in).
    pub revocations: Vec<Revocation>,
}

impl Snapshot {
    /// The same records in an order that does not depend on the engine's collation (tokens
    /// by hash, certificates by serial; revocations keep theirs), for comparing two states.
    pub fn normalized(mut self) -> Self {
        self.tokens.sort_by(|a, b| a.hash.cmp(&b.hash));
        self.certs.sort_by(|a, b| a.serial.cmp(&b.serial));
        self
    }
}

/// A foreign trust domain's SPIFFE bundle as last fetched and accepted (federation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederatedRecord {
    /// The foreign trust domain.
    pub trust_domain: String,
    /// The bundle document, as served (JSON).
    pub document: String,
    /// Its `spiffe_sequence` (never goes backwards).
    pub sequence: i64,
    /// When it was fetched (or, for a bundle from a file, loaded), Unix seconds.
    pub refreshed_at: i64,
}
