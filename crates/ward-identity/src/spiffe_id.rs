//! `SpiffeId` and `TrustDomain`: the names every ward decision is made on.
//!
//! Parsing follows the SPIFFE-ID specification exactly and refuses rather than repairs: the
//! scheme is `spiffe` in lower case, the trust domain is 1..=255 bytes of `[a-z0-9._-]` (so no
//! port, userinfo or upper case), the path is `/`-separated segments of `[a-zA-Z0-9._-]` with no
//! empty, `.` or `..` segment and no trailing `/`, and there is no query, fragment or
//! percent-encoding anywhere. The whole ID is at most 2048 bytes. Parsing works on bytes so the
//! same code judges a raw certificate SAN that may not even be UTF-8.

use std::fmt;
use std::str::FromStr;

use crate::error::IdError;

/// Longest trust domain name the spec allows, in bytes.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// Longest SPIFFE ID the spec allows, in bytes.
pub const MAX_SPIFFE_ID_LEN: usize = 2048;
/// The only accepted prefix. The scheme is case-sensitive by ward's rule.
pub const SCHEME_PREFIX: &str = "spiffe://";

/// A trust domain name such as `example.org`: the root of a SPIFFE namespace and the unit a
/// trust bundle belongs to.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a bare trust domain name (`example.org`, not `spiffe://example.org`).
    pub fn new(name: &str) -> Result<Self, IdError> {
        check_trust_domain(name.as_bytes())?;
        Ok(Self(name.to_owned()))
    }

    /// The name as written, e.g. `example.org`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SPIFFE ID of the trust domain itself, `spiffe://<name>` (empty path).
    pub fn id(&self) -> SpiffeId {
        SpiffeId {
            id: format!("{SCHEME_PREFIX}{}", self.0),
            td_end: SCHEME_PREFIX.len() + self.0.len(),
        }
    }
}

impl FromStr for TrustDomain {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({})", self.0)
    }
}

/// A parsed SPIFFE ID. `spiffe://td` (empty path) names a trust domain; workloads always
/// have a non-empty path (see [`SpiffeId::is_workload`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// The whole ID as parsed; it is already canonical because nothing is normalised.
    id: String,
    /// Byte offset where the trust domain ends and the path (possibly empty) begins.
    td_end: usize,
}

impl SpiffeId {
    /// Parses a SPIFFE ID from text.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        Self::parse_bytes(s.as_bytes())
    }

    /// Parses a SPIFFE ID from raw bytes, such as a certificate's URI SAN, which need not be
    /// UTF-8. Every byte outside the allowed sets is refused, so success implies ASCII.
    pub fn parse_bytes(raw: &[u8]) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        if raw.len() > MAX_SPIFFE_ID_LEN {
            return Err(IdError::TooLong { len: raw.len() });
        }
        let rest = raw
            .strip_prefix(SCHEME_PREFIX.as_bytes())
            .ok_or(IdError::Scheme)?;
        // Query, fragment and percent-encoding are refused wherever they appear, with the
        // name of what they are rather than as a mere bad character.
        for &b in rest {
            match b {
                b'?' => return Err(IdError::Query),
                b'#' => return Err(IdError::Fragment),
                b'%' => return Err(IdError::PercentEncoded),
                _ => {}
            }
        }
        let td_len = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
        let (td, path) = rest.split_at(td_len);
        check_trust_domain(td)?;
        check_path(path)?;
        // Every byte was checked to be in an ASCII set above, so this cannot fail; map the
        // impossible case to an error rather than panicking anyway.
        let id = String::from_utf8(raw.to_vec()).map_err(|_| IdError::Scheme)?;
        Ok(Self {
            id,
            td_end: SCHEME_PREFIX.len() + td_len,
        })
    }

    /// Builds `spiffe://<td><path>`; `path` must be empty or start with `/`.
    pub fn from_parts(td: &TrustDomain, path: &str) -> Result<Self, IdError> {
        Self::parse(&format!("{SCHEME_PREFIX}{}{path}", td.as_str()))
    }

    /// The whole ID, e.g. `spiffe://example.org/ns/web/sa/frontend`.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The trust domain name, e.g. `example.org`.
    pub fn trust_domain_name(&self) -> &str {
        &self.id[SCHEME_PREFIX.len()..self.td_end]
    }

    /// The trust domain as a typed value.
    pub fn trust_domain(&self) -> TrustDomain {
        TrustDomain(self.trust_domain_name().to_owned())
    }

    /// The path, empty or starting with `/`.
    pub fn path(&self) -> &str {
        &self.id[self.td_end..]
    }

    /// True when the ID names a workload (non-empty path), as every leaf SVID must.
    pub fn is_workload(&self) -> bool {
        !self.path().is_empty()
    }

    /// True when the ID belongs to `td`.
    pub fn is_member_of(&self, td: &TrustDomain) -> bool {
        self.trust_domain_name() == td.as_str()
    }
}

impl FromStr for SpiffeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.id)
    }
}

fn check_trust_domain(td: &[u8]) -> Result<(), IdError> {
    if td.is_empty() {
        return Err(IdError::EmptyTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(IdError::TrustDomainTooLong { len: td.len() });
    }
    for &b in td {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {}
            b'A'..=b'Z' => return Err(IdError::TrustDomainUpperCase),
            b':' => return Err(IdError::TrustDomainPort),
            b'@' => return Err(IdError::TrustDomainUserinfo),
            b'?' => return Err(IdError::Query),
            b'#' => return Err(IdError::Fragment),
            b'%' => return Err(IdError::PercentEncoded),
            _ => return Err(IdError::TrustDomainChar { byte: b }),
        }
    }
    Ok(())
}

fn check_path(path: &[u8]) -> Result<(), IdError> {
    if path.is_empty() {
        return Ok(());
    }
    if path.ends_with(b"/") {
        return Err(IdError::TrailingSlash);
    }
    // `path` starts with '/', so the first split element is the empty string before it.
    for segment in path.split(|&b| b == b'/').skip(1) {
        match segment {
            b"" => return Err(IdError::EmptySegment),
            b"." | b".." => return Err(IdError::DotSegment),
            _ => {}
        }
        for &b in segment {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {}
                b'?' => return Err(IdError::Query),
                b'#' => return Err(IdError::Fragment),
                b'%' => return Err(IdError::PercentEncoded),
                _ => return Err(IdError::PathChar { byte: b }),
            }
        }
    }
    Ok(())
}
