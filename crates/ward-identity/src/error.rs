//! Typed errors for identity parsing and the X509-SVID profile check.
//!
//! Each variant says which rule was broken in words an operator can act on; `reason()` gives a
//! stable snake_case code for metrics and logs, so refusals can be counted by cause.

use thiserror::Error;

/// Why a string is not a valid SPIFFE ID, trust domain or ID pattern.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdError {
    /// Nothing was given.
    #[error("SPIFFE ID is empty")]
    Empty,
    /// Longer than the spec's 2048 bytes.
    #[error("SPIFFE ID is {len} bytes long; the limit is 2048")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
    },
    /// Does not start with exactly `spiffe://` (the scheme is case-sensitive).
    #[error("SPIFFE ID must start with \"spiffe://\" (lower-case scheme)")]
    Scheme,
    /// `spiffe:///path`: no trust domain.
    #[error("trust domain is empty")]
    EmptyTrustDomain,
    /// Trust domain over 255 bytes.
    #[error("trust domain is {len} bytes long; the limit is 255")]
    TrustDomainTooLong {
        /// Length of the trust domain in bytes.
        len: usize,
    },
    /// Upper-case letters are not allowed in a trust domain.
    #[error("trust domain must be lower-case")]
    TrustDomainUpperCase,
    /// `host:port` is not a trust domain.
    #[error("trust domain must not contain a port")]
    TrustDomainPort,
    /// `user@host` is not a trust domain.
    #[error("trust domain must not contain userinfo ('@')")]
    TrustDomainUserinfo,
    /// Any other byte outside `[a-z0-9._-]`.
    #[error(
        "trust domain contains byte 0x{byte:02x}; only a-z, 0-9, '.', '-' and '_' are allowed"
    )]
    TrustDomainChar {
        /// The offending byte.
        byte: u8,
    },
    /// A `?` anywhere.
    #[error("SPIFFE ID must not contain a query ('?')")]
    Query,
    /// A `#` anywhere.
    #[error("SPIFFE ID must not contain a fragment ('#')")]
    Fragment,
    /// A `%` anywhere: percent-encoding is not allowed.
    #[error("SPIFFE ID must not be percent-encoded ('%')")]
    PercentEncoded,
    /// `//` in the path.
    #[error("path has an empty segment ('//')")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("path has a '.' or '..' segment")]
    DotSegment,
    /// The path ends with `/`.
    #[error("path must not end with '/'")]
    TrailingSlash,
    /// A path byte outside `[a-zA-Z0-9._-]`.
    #[error("path contains byte 0x{byte:02x}; only a-z, A-Z, 0-9, '.', '-' and '_' are allowed")]
    PathChar {
        /// The offending byte.
        byte: u8,
    },
    /// A `*` that is not a whole, final path segment in a pattern.
    #[error("'*' is only allowed as the whole last segment of a pattern, as in spiffe://td/ns/*")]
    Wildcard,
}

/// Why a DER certificate is not an acceptable X509-SVID leaf.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The bytes are not a well-formed X.509 certificate.
    #[error("certificate is malformed: {0}")]
    Malformed(String),
    /// Not an X.509 v3 certificate (extensions are required).
    #[error("certificate is not X.509 v3")]
    NotV3,
    /// Some extension appears twice.
    #[error("certificate repeats an extension")]
    DuplicateExtension,
    /// No URI SAN at all.
    #[error("certificate has no URI SAN (a SPIFFE ID is required)")]
    NoUriSan,
    /// More than one URI SAN; an SVID carries exactly one SPIFFE ID.
    #[error("certificate has {count} URI SANs; an SVID must have exactly one")]
    MultipleUriSans {
        /// How many URI entries the raw SAN extension holds.
        count: usize,
    },
    /// The URI SAN is not a valid SPIFFE ID.
    #[error("URI SAN is not a valid SPIFFE ID: {0}")]
    InvalidId(#[from] IdError),
    /// The SPIFFE ID has no path; only trust-domain CAs may be named that way.
    #[error("SPIFFE ID {0} has no path; a workload SVID needs one")]
    NotWorkloadId(String),
    /// basicConstraints is missing.
    #[error("certificate has no basicConstraints extension")]
    MissingBasicConstraints,
    /// basicConstraints says CA:TRUE on a leaf.
    #[error("leaf certificate is a CA (basicConstraints CA:TRUE)")]
    CaLeaf,
    /// keyUsage is missing.
    #[error("certificate has no keyUsage extension")]
    MissingKeyUsage,
    /// keyUsage present but not marked critical.
    #[error("keyUsage extension is not critical")]
    KeyUsageNotCritical,
    /// keyUsage lacks digitalSignature.
    #[error("keyUsage lacks digitalSignature")]
    NoDigitalSignature,
    /// keyUsage has keyCertSign or cRLSign, which a leaf must never have.
    #[error("keyUsage of a leaf has keyCertSign or cRLSign")]
    CaKeyUsage,
    /// extendedKeyUsage is present but lacks serverAuth or clientAuth.
    #[error("extendedKeyUsage lacks {missing}")]
    ExtendedKeyUsage {
        /// Which purpose is missing (`serverAuth`, `clientAuth` or both).
        missing: &'static str,
    },
}

impl ProfileError {
    /// A stable code for counting refusals by cause.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::NotV3 => "not_v3",
            Self::DuplicateExtension => "duplicate_extension",
            Self::NoUriSan => "no_uri_san",
            Self::MultipleUriSans { .. } => "multiple_uri_sans",
            Self::InvalidId(_) => "invalid_spiffe_id",
            Self::NotWorkloadId(_) => "not_workload_id",
            Self::MissingBasicConstraints => "missing_basic_constraints",
            Self::CaLeaf => "ca_leaf",
            Self::MissingKeyUsage => "missing_key_usage",
            Self::KeyUsageNotCritical => "key_usage_not_critical",
            Self::NoDigitalSignature => "no_digital_signature",
            Self::CaKeyUsage => "ca_key_usage",
            Self::ExtendedKeyUsage { .. } => "extended_key_usage",
        }
    }
}
