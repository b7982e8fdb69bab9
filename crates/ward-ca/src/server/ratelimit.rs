//! Per-client-IP token buckets for enrollment, so a flood of bad tokens costs the CA little.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Above this many tracked addresses, full buckets are forgotten.
const MAX_TRACKED: usize = 100_000;

/// A token bucket per IP: `rate` requests per second, bursts of `rate`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: AtomicU32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter allowing `rate` per second per IP.
    pub fn new(rate: u32) -> Self {
        Self {
            rate: AtomicU32::new(rate),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Changes the rate (and burst) from now on (a reload).
    pub fn set_rate(&self, rate: u32) {
        self.rate.store(rate, Ordering::Relaxed);
    }

    /// Takes one token for `ip`; false when the bucket is empty.
    pub fn allow(&self, ip: IpAddr) -> bool {
        let rate = f64::from(self.rate.load(Ordering::Relaxed));
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        let now = Instant::now();
        if buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, (tokens, at)| *tokens + at.elapsed().as_secs_f64() * rate < rate);
        }
        let (tokens, at) = buckets.entry(ip).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
