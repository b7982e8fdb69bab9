//! Join tokens: random, single-use, bound to one SPIFFE ID, stored only as a hash.
//!
//! A token is `wjt_` followed by 32 random bytes in base64url (43 characters). The state keeps
//! its SHA-256 and a short public id (the first 16 hex digits, 64 bits, of the hash) for listing and
//! revoking; the token itself exists only in the output of `ward-ca token create`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix that marks a ward join token (and tells it apart from a JWT).
pub const PREFIX: &str = "wjt_";

/// A freshly generated token and its stored forms.
#[derive(Clone)]
pub struct NewToken {
    /// The secret to hand to the workload, once.
    pub secret: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// Public short id.
    pub token_id: String,
}

impl NewToken {
    /// The state's record of this token: it enrolls `spiffe_id`, created at `now`, usable for
    /// `ttl_secs` (negative: already expired, for tests of refusals).
    pub fn record(
        &self,
        spiffe_id: &str,
        now: i64,
        ttl_secs: i64,
    ) -> crate::authority::records::TokenRecord {
        crate::authority::records::TokenRecord {
            hash: self.hash.clone(),
            token_id: self.token_id.clone(),
            spiffe_id: spiffe_id.to_owned(),
            created_at: now,
            expires_at: now.saturating_add(ttl_secs),
            used_at: None,
            revoked_at: None,
        }
    }
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("token_id", &self.token_id)
            .field("secret", &"...")
            .finish()
    }
}

/// Hex SHA-256 of a token.
pub fn hash(secret: &str) -> String {
    ward_tls::files::sha256_hex(secret.as_bytes())
}

/// Generates a new token.
pub fn generate() -> Result<NewToken, ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes)?;
    let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&secret);
    let token_id = hash[..16].to_owned();
    Ok(NewToken {
        secret,
        hash,
        token_id,
    })
}

/// True when `s` has the shape of a join token (not a guarantee it exists).
pub fn looks_like_join_token(s: &str) -> bool {
    s.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}
