//! HTTP request facts for per-request rules: method names, path patterns, and the one path
//! normalization that both matching and forwarding use.
//!
//! A request path is percent-decoded, its empty segments merged and its `.` and `..`
//! segments resolved before any rule sees it, so `/v1/../admin`, `/v1/%2e%2e/admin` and
//! `//admin` are all `/admin`. What cannot be decoded into one unambiguous path is refused
//! rather than guessed at: an encoded `/` or `\`, a NUL or other control byte, invalid UTF-8,
//! a `..` above the root, anything not starting with `/`, and any path parameter (`;`):
//! Tomcat and Spring strip `;...` from a segment before resolving dot segments, so
//! `/public/..;/admin` would be `/admin` to them while it looks like it is under `/public`.
//! A reserved character that arrived percent-encoded (`%3B` `;`, `%3F` `?`, `%23` `#`,
//! `%25` `%`) is never decoded: it stays encoded in the normalized path and is forwarded
//! encoded, so decoding cannot change what the path means (a segment that would become a dot
//! segment once such an escape is decoded and stripped, like `..%3B`, is refused too). The
//! sidecar forwards the normalized path (re-encoded by [`encode_path`]), so the app serves
//! exactly what was authorized.

use std::fmt;

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// Not an origin-form path.
    #[error("path must start with '/'")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-encoding")]
    BadEscape,
    /// An escape that would change the path's structure or smuggle a control byte.
    #[error("encoded '/', '\\' or control character in path")]
    ForbiddenEscape,
    /// A raw control byte or backslash.
    #[error("control character or '\\' in path")]
    ForbiddenByte,
    /// The decoded bytes are not UTF-8.
    #[error("path is not valid UTF-8 after decoding")]
    NotUtf8,
    /// `..` would leave the root.
    #[error("'..' above the root")]
    AboveRoot,
    /// A path parameter (`;`), which servers strip before resolving dot segments; or a dot
    /// segment followed by an encoded `;`.
    #[error("path parameters (';') are not allowed")]
    PathParameter,
}

/// Reserved characters that stay percent-encoded when they arrive so: decoding them would
/// change where the path ends or how a server splits it.
const KEPT_ENCODED: &[u8] = b";?#%";

/// Normalizes the path part (no query) of a request target; see the module docs.
pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    if already_normal(raw) {
        return Ok(raw.to_owned());
    }
    normalize_in_full(raw)
}

/// True when [`normalize_in_full`] would return `raw` unchanged, which is what nearly every
/// request's path is: only bytes that are neither decoded nor escaped (RFC 3986 unreserved
/// and sub-delims other than `;`, and `:`, `@`, `/`), no empty segment but a trailing one,
/// and no `.` or `..` segment. Checked in one pass, without allocating.
fn already_normal(raw: &str) -> bool {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,=:@".contains(&b);
    let Some(rest) = raw.strip_prefix('/') else {
        return false;
    };
    if !raw.bytes().all(plain) {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if (seg.is_empty() && !last) || seg == "." || seg == ".." {
            return false;
        }
    }
    true
}

/// The whole normalization: decode, check, resolve dot segments, rejoin.
pub(crate) fn normalize_in_full(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::BadEscape);
            };
            let c = (h * 16 + l) as u8;
            if c == b'/' || c == b'\\' || c < 0x20 || c == 0x7f {
                return Err(PathError::ForbiddenEscape);
            }
            if KEPT_ENCODED.contains(&c) {
                decoded.extend_from_slice(format!("%{c:02X}").as_bytes());
            } else {
                decoded.push(c);
            }
            i += 3;
        } else {
            if b < 0x20 || b == 0x7f || b == b'\\' {
                return Err(PathError::ForbiddenByte);
            }
            if b == b';' {
                return Err(PathError::PathParameter);
            }
            // Only literal data here (hyper never passes them raw): keep the invariant that
            // a normalized path holds reserved characters as escapes only.
            if b == b'?' || b == b'#' {
                decoded.extend_from_slice(format!("%{b:02X}").as_bytes());
                i += 1;
                continue;
            }
            decoded.push(b);
            i += 1;
        }
    }
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let trailing = matches!(segments.last(), Some(&"" | &"." | &".."));
    for seg in segments {
        if let Some((before, _)) = seg.split_once("%3B") {
            if before == "." || before == ".." {
                return Err(PathError::PathParameter);
            }
        }
        match seg {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s => out.push(s),
        }
    }
    let mut path = format!("/{}", out.join("/"));
    if trailing && !out.is_empty() {
        path.push('/');
    }
    Ok(path)
}

/// Percent-encodes a normalized path for the request line: every byte outside RFC 3986's
/// `pchar` set and `/` (and `;`, which a normalized path never holds raw) is escaped, so it
/// decodes back to exactly the same path. A `%` is passed on as it is: in a normalized path
/// it always starts an escape [`normalize_path`] kept.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        let keep = b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,=:@%".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a method or path written in a rule is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleValueError {
    /// A `*` anywhere but a final `/*`.
    #[error("'*' is only allowed as a final '/*'")]
    Wildcard,
    /// The path does not normalize.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The path normalizes to something else, or holds escapes.
    #[error(
        "write the path in normalized form ({normal:?}: decoded, no '.', '..' or empty segments)"
    )]
    NotNormalized {
        /// What the path normalizes to.
        normal: String,
    },
    /// Not an HTTP token.
    #[error("{0:?} is not an HTTP method name")]
    NotMethod(String),
    /// A method in lower case, which no request would match.
    #[error("methods are case-sensitive: write {upper:?}")]
    LowerCaseMethod {
        /// The method in upper case.
        upper: String,
    },
}

/// A path in a rule: exact (`/healthz`), or everything below a prefix (`/v1/orders/*`,
/// which matches `/v1/orders/` and `/v1/orders/7` but not `/v1/orders`; `/*` matches all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathPattern {
    /// This path only.
    Exact(String),
    /// Paths starting with this prefix followed by `/`.
    Under(String),
}

impl PathPattern {
    /// Parses a rule's path; it must already be in normalized form, so that what operators
    /// write is what requests are compared with.
    pub fn parse(s: &str) -> Result<Self, RuleValueError> {
        let (base, under) = match s.strip_suffix("/*") {
            Some(prefix) => (if prefix.is_empty() { "/" } else { prefix }, true),
            None => (s, false),
        };
        if base.contains('*') {
            return Err(RuleValueError::Wildcard);
        }
        let normal = normalize_path(base)?;
        if normal != base || base.contains('%') {
            return Err(RuleValueError::NotNormalized { normal });
        }
        Ok(if under {
            Self::Under(base.trim_end_matches('/').to_owned())
        } else {
            Self::Exact(base.to_owned())
        })
    }

    /// True when the normalized `path` is matched.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => p == path,
            Self::Under(prefix) => path
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('/')),
        }
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(p) => f.write_str(p),
            Self::Under(p) => write!(f, "{p}/*"),
        }
    }
}

/// Checks a method name in a rule: an HTTP token in upper case (methods are case-sensitive,
/// and `get` would never match a real request).
pub fn check_method(m: &str) -> Result<(), RuleValueError> {
    let token = !m.is_empty()
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(RuleValueError::NotMethod(m.to_owned()));
    }
    if m.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(RuleValueError::LowerCaseMethod {
            upper: m.to_ascii_uppercase(),
        });
    }
    Ok(())
}

/// The facts of one request that rules can constrain.
#[derive(Clone, Copy, Debug)]
pub struct RequestFacts<'a> {
    /// The method, as sent.
    pub method: &'a str,
    /// The path after [`normalize_path`].
    pub path: &'a str,
}
