//! Request rate limits (token buckets per client address and per token) and the throttle
//! after failed authentication (per client address), as plain data driven by the caller's
//! clock: every decision takes `now_ms`, so tests move time by hand. Every map is bounded;
//! when one is full, entries that no longer hold anything are dropped first, then the least
//! recently seen.

use std::collections::HashMap;
use std::hash::Hash;

/// A request refused by a limit; it may be tried again after `retry_after_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after_ms: u64,
}

/// One request, in thousandths of a bucket's unit (the bucket refills by whole requests per
/// second, so by `per_second` thousandths per millisecond).
const REQUEST_MILLI: u64 = 1_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    level_milli: u64,
    last_ms: u64,
}

/// Token buckets by key: `per_second` requests sustained, `burst` at once.
#[derive(Debug)]
pub struct RateLimiter<K> {
    per_second: u64,
    full_milli: u64,
    keys_max: usize,
    buckets: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(per_second: u32, burst: u32, keys_max: usize) -> Self {
        Self {
            per_second: u64::from(per_second.max(1)),
            full_milli: u64::from(burst.max(1)) * REQUEST_MILLI,
            keys_max: keys_max.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one request from `key`'s bucket at `now_ms`, or says how long until one is there.
    pub fn take(&mut self, key: &K, now_ms: u64) -> Result<(), Refused> {
        if !self.buckets.contains_key(key) {
            self.make_room(now_ms);
        }
        let (per_second, full_milli) = (self.per_second, self.full_milli);
        let bucket = self.buckets.entry(key.clone()).or_insert(Bucket { level_milli: full_milli, last_ms: now_ms });
        bucket.level_milli = refilled(bucket, per_second, full_milli, now_ms);
        bucket.last_ms = bucket.last_ms.max(now_ms);
        if bucket.level_milli >= REQUEST_MILLI {
            bucket.level_milli -= REQUEST_MILLI;
            return Ok(());
        }
        Err(Refused { retry_after_ms: (REQUEST_MILLI - bucket.level_milli).div_ceil(per_second) })
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn make_room(&mut self, now_ms: u64) {
        if self.buckets.len() < self.keys_max {
            return;
        }
        // A bucket that has refilled is the same as a new one: forgetting it loses nothing.
        let (per_second, full_milli) = (self.per_second, self.full_milli);
        self.buckets.retain(|_, b| refilled(b, per_second, full_milli, now_ms) < full_milli);
        if self.buckets.len() >= self.keys_max {
            let quietest = self.buckets.iter().min_by_key(|(_, b)| b.last_ms).map(|(k, _)| k.clone());
            if let Some(key) = quietest {
                self.buckets.remove(&key);
            }
        }
    }
}

fn refilled(bucket: &Bucket, per_second: u64, full_milli: u64, now_ms: u64) -> u64 {
    let elapsed_ms = now_ms.saturating_sub(bucket.last_ms);
    bucket.level_milli.saturating_add(elapsed_ms.saturating_mul(per_second)).min(full_milli)
}

#[derive(Debug, Clone, Copy)]
struct FailureWindow {
    started_ms: u64,
    failures: u32,
}

/// Failed authentications by key (a client address), counted in a window that starts at the
/// first failure: `failures_max` failures throttle the key until the window ends.
#[derive(Debug)]
pub struct AuthThrottle<K> {
    failures_max: u32,
    window_ms: u64,
    keys_max: usize,
    windows: HashMap<K, FailureWindow>,
}

impl<K: Hash + Eq + Clone> AuthThrottle<K> {
    pub fn new(failures_max: u32, window_ms: u64, keys_max: usize) -> Self {
        Self { failures_max: failures_max.max(1), window_ms, keys_max: keys_max.max(1), windows: HashMap::new() }
    }

    /// Refused while `key` has failed `failures_max` times in a window that has not ended.
    pub fn check(&self, key: &K, now_ms: u64) -> Result<(), Refused> {
        match self.windows.get(key) {
            Some(w) if w.failures >= self.failures_max && now_ms < w.started_ms + self.window_ms => {
                Err(Refused { retry_after_ms: w.started_ms + self.window_ms - now_ms })
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&mut self, key: &K, now_ms: u64) {
        let window_ms = self.window_ms;
        if !self.windows.contains_key(key) {
            self.make_room(now_ms);
        }
        let w = self.windows.entry(key.clone()).or_insert(FailureWindow { started_ms: now_ms, failures: 0 });
        if now_ms >= w.started_ms + window_ms {
            *w = FailureWindow { started_ms: now_ms, failures: 0 };
        }
        w.failures = w.failures.saturating_add(1);
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    fn make_room(&mut self, now_ms: u64) {
        if self.windows.len() < self.keys_max {
            return;
        }
        let window_ms = self.window_ms;
        self.windows.retain(|_, w| now_ms < w.started_ms + window_ms);
        if self.windows.len() >= self.keys_max {
            let oldest = self.windows.iter().min_by_key(|(_, w)| w.started_ms).map(|(k, _)| k.clone());
            if let Some(key) = oldest {
                self.windows.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_a_burst_through_then_the_rate() {
        let mut limiter = RateLimiter::new(10, 5, 8);
        for _ in 0..5 {
            assert_eq!(limiter.take(&"a", 1_000), Ok(()));
        }
        assert_eq!(limiter.take(&"a", 1_000), Err(Refused { retry_after_ms: 100 }));
        assert_eq!(limiter.take(&"b", 1_000), Ok(()), "another key has its own bucket");
        assert_eq!(limiter.take(&"a", 1_050), Err(Refused { retry_after_ms: 50 }));
        assert_eq!(limiter.take(&"a", 1_100), Ok(()));
        assert_eq!(limiter.take(&"a", 1_100), Err(Refused { retry_after_ms: 100 }));
        // A long pause refills to the burst, no more.
        for _ in 0..5 {
            assert_eq!(limiter.take(&"a", 60_000), Ok(()));
        }
        assert!(limiter.take(&"a", 60_000).is_err());
    }

    #[test]
    fn a_full_limiter_forgets_refilled_buckets_then_the_quietest() {
        let mut limiter = RateLimiter::new(1, 2, 3);
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            limiter.take(key, i as u64).unwrap();
            limiter.take(key, i as u64).unwrap();
        }
        assert_eq!(limiter.len(), 3);
        limiter.take(&"d", 10).unwrap();
        assert_eq!(limiter.len(), 3, "bounded");
        assert!(limiter.take(&"a", 10).is_ok(), "the quietest key, a, was forgotten: a fresh bucket");
        // Once every bucket has refilled, a new key drops them all.
        limiter.take(&"e", 100_000).unwrap();
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn failures_throttle_an_address_until_the_window_ends() {
        let mut throttle = AuthThrottle::new(3, 60_000, 8);
        for t in [0, 10, 20] {
            assert_eq!(throttle.check(&"x", t), Ok(()));
            throttle.record_failure(&"x", t);
        }
        assert_eq!(throttle.check(&"x", 30), Err(Refused { retry_after_ms: 59_970 }));
        assert_eq!(throttle.check(&"y", 30), Ok(()), "other addresses are not throttled");
        assert_eq!(throttle.check(&"x", 59_999), Err(Refused { retry_after_ms: 1 }));
        assert_eq!(throttle.check(&"x", 60_000), Ok(()));
        throttle.record_failure(&"x", 60_000);
        assert_eq!(throttle.check(&"x", 60_001), Ok(()), "a new window starts counting from one");
    }

    #[test]
    fn a_full_throttle_forgets_ended_windows_then_the_oldest() {
        let mut throttle = AuthThrottle::new(1, 1_000, 2);
        throttle.record_failure(&"a", 0);
        throttle.record_failure(&"b", 500);
        throttle.record_failure(&"c", 600);
        assert_eq!(throttle.len(), 2);
        assert_eq!(throttle.check(&"a", 700), Ok(()), "a, the oldest, was forgotten");
        assert!(throttle.check(&"b", 700).is_err());
        throttle.record_failure(&"d", 5_000);
        assert_eq!(throttle.len(), 1, "ended windows are dropped first");
    }
}
