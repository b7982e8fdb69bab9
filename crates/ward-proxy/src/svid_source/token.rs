//! A join token the CA refuses for good (already used, revoked, expired, unknown, or for a
//! reserved ID): enrolling again with it can never succeed, so the CA source says so once,
//! in words, with the fix, and then waits for the token file to change (or tries again
//! after [`DEAD_TOKEN_RETRY`]) instead of backing off and repeating the refusal.

use std::path::Path;
use std::time::Duration;

use super::IdentityError;

/// How often a token the CA refused for good is tried again (a change of the file is
/// noticed at once).
pub(super) const DEAD_TOKEN_RETRY: Duration = Duration::from_secs(300);

/// Whether enrolling with the same token can never succeed, and then what to say.
pub(super) fn token_unusable(e: &IdentityError, file: &Path) -> Option<IdentityError> {
    use ward_api::ErrorCode::*;
    let IdentityError::Refused {
        code: Some(code), ..
    } = e
    else {
        return None;
    };
    let create = format!(
        "create one with `ward-ca token create --config <ca.yaml> --id <this workload's SPIFFE ID>` and write it to {}: it is picked up without a restart",
        file.display()
    );
    let (why, fix) = match code {
        TokenUsed => ("it was already used", create),
        TokenRevoked => ("it was revoked", create),
        TokenExpired => ("it expired", create),
        InvalidToken => (
            "the CA does not know it (another CA's, or mistyped)",
            create,
        ),
        ReservedId => (
            "it is for a reserved ID (the CA's own or an admin's), which no token enrolls",
            format!(
                "give the sidecar a token for its workload's own ID in {}",
                file.display()
            ),
        ),
        _ => return None,
    };
    Some(IdentityError::TokenUnusable {
        file: file.to_path_buf(),
        code: *code,
        why,
        fix,
    })
}
