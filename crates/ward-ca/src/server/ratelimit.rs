//! Token buckets that keep one client from costing the CA much: enrollments per client IP (a
//! flood of bad tokens), renewals and JWT-SVIDs per SPIFFE ID (each renewal is a new valid
//! certificate and a state row), and how often one certificate may renew while it is young.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many tracked keys, full buckets (or expired certificates) are forgotten.
const MAX_TRACKED: usize = 100_000;

/// A token bucket per key: `count` requests per `period`, bursts of `count`.
#[derive(Debug)]
pub struct RateLimiter<K = IpAddr> {
    count: AtomicU32,
    period: Duration,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// A limiter allowing `rate` per second per key.
    pub fn new(rate: u32) -> Self {
        Self::per(rate, Duration::from_secs(1))
    }

    /// A limiter allowing `count` per `period` per key.
    pub fn per(count: u32, period: Duration) -> Self {
        Self {
            count: AtomicU32::new(count),
            period,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Changes the count (and burst) from now on (a reload).
    pub fn set_rate(&self, count: u32) {
        self.count.store(count, Ordering::Relaxed);
    }

    /// The count per period now in force.
    pub fn rate(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// Takes one token for `key`; false when the bucket is empty.
    pub fn allow(&self, key: K) -> bool {
        let burst = f64::from(self.count.load(Ordering::Relaxed));
        let per_sec = burst / self.period.as_secs_f64();
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        let now = Instant::now();
        if buckets.len() >= MAX_TRACKED {
            buckets
                .retain(|_, (tokens, at)| *tokens + at.elapsed().as_secs_f64() * per_sec < burst);
        }
        let (tokens, at) = buckets.entry(key).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_sec).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How many renewals a certificate made while young (in the first third of its life), by
/// serial. A sidecar renews at about half of its certificate's life, plus once per app
/// certificate and once per issuer change: [`YOUNG_RENEWALS`] is room for that and for
/// retries, never for a loop that mints certificates from one.
#[derive(Debug, Default)]
pub struct YoungRenewals(Mutex<HashMap<String, (u32, i64)>>);

/// Renewals a certificate may make in the first third of its life.
pub const YOUNG_RENEWALS: u32 = 5;

impl YoungRenewals {
    /// Counts a renewal with the certificate `serial`, issued at `issued_at` and valid until
    /// `not_after`, at `now`; false when it is young and has already renewed
    /// [`YOUNG_RENEWALS`] times.
    pub fn allow(&self, serial: &str, issued_at: i64, not_after: i64, now: i64) -> bool {
        if now >= issued_at + (not_after - issued_at) / 3 {
            return true;
        }
        let Ok(mut counts) = self.0.lock() else {
            return false;
        };
        if counts.len() >= MAX_TRACKED {
            counts.retain(|_, (_, until)| *until > now);
        }
        let (n, _) = counts.entry(serial.to_owned()).or_insert((0, not_after));
        *n += 1;
        *n <= YOUNG_RENEWALS
    }
}
