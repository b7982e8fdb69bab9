//! The refusal body of every non-2xx answer, and its stable codes.
//!
//! A code names the cause for machines (alerts, retries, the sidecar's log line); the message
//! is for people. Each code has one HTTP status, so the two can never disagree.

use serde::{Deserialize, Serialize};

/// `{"error": <code>, "message": <human text>}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable code.
    pub error: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

/// Every refusal the CA answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body is not the JSON the endpoint takes.
    MalformedJson,
    /// The body could not be read.
    BadBody,
    /// The CSR does not parse.
    MalformedCsr,
    /// The CSR's signature does not verify with its own key.
    BadCsrSignature,
    /// The CSR's key is not P-256.
    UnsupportedKey,
    /// The token is neither a join token nor a JWT.
    MalformedToken,
    /// An ID that is not a valid workload ID of this trust domain.
    InvalidId,
    /// A serial that is not hex.
    InvalidSerial,
    /// A revocation naming neither or both of an ID and a serial.
    InvalidRevocation,
    /// A revocation reason over 512 bytes.
    InvalidReason,
    /// A lifetime outside the CA's range.
    InvalidTtl,
    /// An unknown join token.
    InvalidToken,
    /// A join token already used.
    TokenUsed,
    /// A join token past its expiry.
    TokenExpired,
    /// A join token an operator revoked.
    TokenRevoked,
    /// A JWT whose signature does not verify.
    BadSignature,
    /// A JWT signed by a key the CA does not know.
    UnknownKey,
    /// A JWT from another issuer.
    WrongIssuer,
    /// A JWT for another audience.
    WrongAudience,
    /// A JWT algorithm other than RS256 and ES256.
    UnsupportedAlgorithm,
    /// A JWT not valid yet.
    TokenNotYetValid,
    /// A JWT without the Kubernetes claims.
    MissingClaims,
    /// The endpoint needs a client certificate.
    ClientCertRequired,
    /// The client certificate is outside its validity period.
    InvalidClientCert,
    /// The client certificate is not one this CA issued and recorded.
    UnknownCertificate,
    /// The attestor is disabled on this CA.
    AttestorDisabled,
    /// An ID of another trust domain.
    WrongTrustDomain,
    /// The client certificate was revoked.
    Revoked,
    /// The caller is not in `admins`.
    NotAdmin,
    /// The CA's own ID or an admin ID, which no attestor issues.
    ReservedId,
    /// No such endpoint.
    NotFound,
    /// The endpoint does not take this method.
    MethodNotAllowed,
    /// The request body did not arrive in time.
    RequestTimeout,
    /// The request body is over the limit.
    BodyTooLarge,
    /// Too many enrollments from this address.
    RateLimited,
    /// The CA cannot record issuance (its database refuses writes).
    StateUnavailable,
    /// The Kubernetes keys cannot be loaded.
    AttestorUnavailable,
    /// The CA cannot sign.
    IssuerUnavailable,
    /// The bundle document cannot be served.
    BundleUnavailable,
    /// `/v1/jwt`: the audience list is empty, too long, or holds an unusable value.
    InvalidAudience,
    /// `/v1/jwt` on a CA not configured to issue JWT-SVIDs.
    JwtSvidDisabled,
    /// `/v1/renew` or `/v1/jwt` with an app's certificate (one a sidecar obtained for the app
    /// beside it): it renews nothing and mints nothing; only the sidecar's own SVID does.
    AppCertificate,
}

impl ErrorCode {
    /// Every code, in declaration order (the docs' error table is checked against it).
    pub const ALL: [ErrorCode; 42] = {
        use ErrorCode::*;
        [
            MalformedJson,
            BadBody,
            MalformedCsr,
            BadCsrSignature,
            UnsupportedKey,
            MalformedToken,
            InvalidId,
            InvalidSerial,
            InvalidRevocation,
            InvalidReason,
            InvalidTtl,
            InvalidToken,
            TokenUsed,
            TokenExpired,
            TokenRevoked,
            BadSignature,
            UnknownKey,
            WrongIssuer,
            WrongAudience,
            UnsupportedAlgorithm,
            TokenNotYetValid,
            MissingClaims,
            ClientCertRequired,
            InvalidClientCert,
            UnknownCertificate,
            AttestorDisabled,
            WrongTrustDomain,
            Revoked,
            NotAdmin,
            ReservedId,
            NotFound,
            MethodNotAllowed,
            RequestTimeout,
            BodyTooLarge,
            RateLimited,
            StateUnavailable,
            AttestorUnavailable,
            IssuerUnavailable,
            BundleUnavailable,
            InvalidAudience,
            JwtSvidDisabled,
            AppCertificate,
        ]
    };

    /// Where `self` is in [`ErrorCode::ALL`]; the match is exhaustive, so a new code that is
    /// not added to `ALL` (and so to the docs) does not compile.
    pub const fn index(self) -> usize {
        use ErrorCode::*;
        match self {
            MalformedJson => 0,
            BadBody => 1,
            MalformedCsr => 2,
            BadCsrSignature => 3,
            UnsupportedKey => 4,
            MalformedToken => 5,
            InvalidId => 6,
            InvalidSerial => 7,
            InvalidRevocation => 8,
            InvalidReason => 9,
            InvalidTtl => 10,
            InvalidToken => 11,
            TokenUsed => 12,
            TokenExpired => 13,
            TokenRevoked => 14,
            BadSignature => 15,
            UnknownKey => 16,
            WrongIssuer => 17,
            WrongAudience => 18,
            UnsupportedAlgorithm => 19,
            TokenNotYetValid => 20,
            MissingClaims => 21,
            ClientCertRequired => 22,
            InvalidClientCert => 23,
            UnknownCertificate => 24,
            AttestorDisabled => 25,
            WrongTrustDomain => 26,
            Revoked => 27,
            NotAdmin => 28,
            ReservedId => 29,
            NotFound => 30,
            MethodNotAllowed => 31,
            RequestTimeout => 32,
            BodyTooLarge => 33,
            RateLimited => 34,
            StateUnavailable => 35,
            AttestorUnavailable => 36,
            IssuerUnavailable => 37,
            BundleUnavailable => 38,
            InvalidAudience => 39,
            JwtSvidDisabled => 40,
            AppCertificate => 41,
        }
    }

    /// The HTTP status this refusal is sent with.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            MalformedJson | BadBody | MalformedCsr | BadCsrSignature | UnsupportedKey
            | MalformedToken | InvalidId | InvalidSerial | InvalidRevocation | InvalidReason
            | InvalidTtl | InvalidAudience => 400,
            InvalidToken | TokenUsed | TokenExpired | TokenRevoked | BadSignature | UnknownKey
            | WrongIssuer | WrongAudience | UnsupportedAlgorithm | TokenNotYetValid
            | MissingClaims | ClientCertRequired | InvalidClientCert | UnknownCertificate => 401,
            AttestorDisabled | WrongTrustDomain | Revoked | NotAdmin | ReservedId
            | JwtSvidDisabled | AppCertificate => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            RequestTimeout => 408,
            BodyTooLarge => 413,
            RateLimited => 429,
            StateUnavailable | AttestorUnavailable | IssuerUnavailable | BundleUnavailable => 503,
        }
    }

    /// The code as it appears on the wire and in metrics (`token_used`).
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            MalformedJson => "malformed_json",
            BadBody => "bad_body",
            MalformedCsr => "malformed_csr",
            BadCsrSignature => "bad_csr_signature",
            UnsupportedKey => "unsupported_key",
            MalformedToken => "malformed_token",
            InvalidId => "invalid_id",
            InvalidSerial => "invalid_serial",
            InvalidRevocation => "invalid_revocation",
            InvalidReason => "invalid_reason",
            InvalidTtl => "invalid_ttl",
            InvalidToken => "invalid_token",
            TokenUsed => "token_used",
            TokenExpired => "token_expired",
            TokenRevoked => "token_revoked",
            BadSignature => "bad_signature",
            UnknownKey => "unknown_key",
            WrongIssuer => "wrong_issuer",
            WrongAudience => "wrong_audience",
            UnsupportedAlgorithm => "unsupported_algorithm",
            TokenNotYetValid => "token_not_yet_valid",
            MissingClaims => "missing_claims",
            ClientCertRequired => "client_cert_required",
            InvalidClientCert => "invalid_client_cert",
            UnknownCertificate => "unknown_certificate",
            AttestorDisabled => "attestor_disabled",
            WrongTrustDomain => "wrong_trust_domain",
            Revoked => "revoked",
            NotAdmin => "not_admin",
            ReservedId => "reserved_id",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            RequestTimeout => "request_timeout",
            BodyTooLarge => "body_too_large",
            RateLimited => "rate_limited",
            StateUnavailable => "state_unavailable",
            AttestorUnavailable => "attestor_unavailable",
            IssuerUnavailable => "issuer_unavailable",
            BundleUnavailable => "bundle_unavailable",
            InvalidAudience => "invalid_audience",
            JwtSvidDisabled => "jwt_svid_disabled",
            AppCertificate => "app_certificate",
        }
    }

    /// Whether asking again later (or another CA replica) may succeed: the CA's own
    /// trouble and rate limits, not the request's.
    pub fn is_transient(self) -> bool {
        self.status() >= 500 || self == Self::RateLimited || self == Self::RequestTimeout
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn all_lists_every_code_once_in_its_place() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code.index(), i, "{code}");
        }
    }
}
