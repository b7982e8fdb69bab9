//! JWT-SVIDs for the app, from the CA through the sidecar, cached per audience set.
//!
//! A token is reused until half its lifetime has passed, then the next call asks the CA for a
//! fresh one; if the CA cannot answer then, the cached token is handed out while it still has
//! [`MIN_LEFT`] to live, so a CA outage shorter than half a token's life goes unnoticed.
//! Calls for the same audience set wait on one another instead of each asking the CA. The
//! cache holds at most [`MAX_ENTRIES`] audience sets (expired ones go first, then the one
//! closest to expiry), so a caller inventing audiences cannot grow it without bound.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use ward_identity::unix_now;

/// Audience sets held at most.
pub const MAX_ENTRIES: usize = 1024;
/// A cached token is still handed out, when the CA cannot be asked, while it lives this long.
pub const MIN_LEFT: i64 = 30;

/// A JWT-SVID issued for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedJwt {
    /// The encoded token.
    pub token: String,
    /// Its subject.
    pub spiffe_id: String,
    /// When it was obtained, Unix seconds (local clock).
    pub issued_at: i64,
    /// Its `exp`, Unix seconds.
    pub expires_at: i64,
}

/// Why no token could be obtained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The request itself is unacceptable (bad audience, ...).
    #[error("{0}")]
    BadRequest(String),
    /// The CA refuses this workload a token (JWT-SVIDs disabled, identity revoked, ...).
    #[error("{0}")]
    Denied(String),
    /// The CA or the sidecar's own identity is not available now.
    #[error("{0}")]
    Unavailable(String),
}

/// A boxed future returned by [`JwtIssuer::issue`].
pub type IssueFuture<'a> = Pin<Box<dyn Future<Output = Result<IssuedJwt, IssueError>> + Send + 'a>>;

/// Where tokens come from (the sidecar asks its CA, over mTLS with its own SVID).
pub trait JwtIssuer: Send + Sync + 'static {
    /// A new token for `audience` (non-empty, sorted, without duplicates).
    fn issue<'a>(&'a self, audience: &'a [String]) -> IssueFuture<'a>;
}

type Slot = Arc<tokio::sync::Mutex<Option<IssuedJwt>>>;

/// The per-audience-set cache.
pub struct JwtCache {
    issuer: Arc<dyn JwtIssuer>,
    slots: Mutex<HashMap<Vec<String>, Slot>>,
}

impl std::fmt::Debug for JwtCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.slots.lock().map_or(0, |s| s.len());
        f.debug_struct("JwtCache").field("entries", &n).finish()
    }
}

fn fresh(t: &IssuedJwt, now: i64) -> bool {
    now < t.issued_at + (t.expires_at - t.issued_at) / 2
}

impl JwtCache {
    /// An empty cache over `issuer`.
    pub fn new(issuer: Arc<dyn JwtIssuer>) -> Self {
        Self {
            issuer,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, key: &[String]) -> Slot {
        let Ok(mut slots) = self.slots.lock() else {
            return Slot::default();
        };
        if let Some(s) = slots.get(key) {
            return s.clone();
        }
        if slots.len() >= MAX_ENTRIES {
            let now = unix_now();
            let expiry = |s: &Slot| {
                s.try_lock()
                    .ok()
                    .and_then(|t| t.as_ref().map(|t| t.expires_at))
            };
            slots.retain(|_, s| expiry(s).is_none_or(|exp| exp > now));
            if slots.len() >= MAX_ENTRIES {
                let soonest = slots
                    .iter()
                    .filter_map(|(k, s)| expiry(s).map(|e| (e, k.clone())))
                    .min()
                    .map(|(_, k)| k);
                if let Some(k) = soonest {
                    slots.remove(&k);
                }
            }
        }
        let slot = Slot::default();
        if slots.len() < MAX_ENTRIES {
            slots.insert(key.to_vec(), slot.clone());
        }
        slot
    }

    /// A token for `audience` (normalized here: sorted, duplicates dropped).
    pub async fn get(&self, audience: &[String]) -> Result<IssuedJwt, IssueError> {
        let mut key = audience.to_vec();
        key.sort();
        key.dedup();
        let slot = self.slot(&key);
        let mut cached = slot.lock().await;
        let now = unix_now();
        if let Some(t) = cached.as_ref().filter(|t| fresh(t, now)) {
            return Ok(t.clone());
        }
        match self.issuer.issue(&key).await {
            Ok(t) => {
                *cached = Some(t.clone());
                Ok(t)
            }
            Err(IssueError::Unavailable(why)) => match cached.as_ref() {
                Some(t) if t.expires_at - now >= MIN_LEFT => {
                    tracing::warn!(error = %why, "cannot refresh a JWT-SVID; handing out the cached one");
                    Ok(t.clone())
                }
                _ => Err(IssueError::Unavailable(why)),
            },
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting {
        calls: AtomicU32,
        ttl: i64,
        down: std::sync::atomic::AtomicBool,
    }

    impl JwtIssuer for Counting {
        fn issue<'a>(&'a self, audience: &'a [String]) -> IssueFuture<'a> {
            Box::pin(async move {
                if self.down.load(Ordering::SeqCst) {
                    return Err(IssueError::Unavailable("CA down".into()));
                }
                let n = self.calls.fetch_add(1, Ordering::SeqCst);
                let now = unix_now();
                Ok(IssuedJwt {
                    token: format!("{}#{n}", audience.join(",")),
                    spiffe_id: "spiffe://td/a".into(),
                    issued_at: now,
                    expires_at: now + self.ttl,
                })
            })
        }
    }

    fn issuer(ttl: i64) -> Arc<Counting> {
        Arc::new(Counting {
            calls: AtomicU32::new(0),
            ttl,
            down: false.into(),
        })
    }

    #[tokio::test]
    async fn one_token_per_audience_set_until_half_life() {
        let source = issuer(300);
        let cache = JwtCache::new(source.clone());
        let a = cache
            .get(&["b".into(), "a".into(), "a".into()])
            .await
            .unwrap();
        let b = cache.get(&["a".into(), "b".into()]).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a.token, "a,b#0");
        let c = cache.get(&["c".into()]).await.unwrap();
        assert_eq!(c.token, "c#1");
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn past_half_life_a_new_token_is_fetched_and_an_outage_keeps_the_old() {
        // A 1 s token is past half-life at once (integer seconds): every call refetches.
        let source = issuer(1);
        let cache = JwtCache::new(source.clone());
        cache.get(&["a".into()]).await.unwrap();
        cache.get(&["a".into()]).await.unwrap();
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
        source.down.store(true, Ordering::SeqCst);
        // Too little life left to hand out during the outage.
        assert!(matches!(
            cache.get(&["a".into()]).await,
            Err(IssueError::Unavailable(_))
        ));
        let long = issuer(100);
        let cache = JwtCache::new(long.clone());
        let t = cache.get(&["a".into()]).await.unwrap();
        long.down.store(true, Ordering::SeqCst);
        // Force staleness by rewriting the cached token's issue time.
        if let Some(slot) = cache.slots.lock().unwrap().get(&vec!["a".to_owned()]) {
            slot.try_lock().unwrap().as_mut().unwrap().issued_at -= 60;
        }
        assert_eq!(cache.get(&["a".into()]).await.unwrap().token, t.token);
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let source = issuer(300);
        let cache = JwtCache::new(source.clone());
        for i in 0..(MAX_ENTRIES + 10) {
            cache.get(&[format!("aud{i}")]).await.unwrap();
        }
        assert!(cache.slots.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
