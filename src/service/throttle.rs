//! Counts failed attempts per key (an account or a client address) in a
//! fixed window; past the budget the key is refused until the window ends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    window: Duration,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    started: Instant,
    failures: u32,
}

/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 10_000;

impl Throttle {
    pub fn new(window: Duration) -> Self {
        Self { window, buckets: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bucket>> {
        self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// True when `key` has used up `budget` failures in the current window.
    pub fn is_blocked(&self, key: &str, budget: u32) -> bool {
        let now = Instant::now();
        self.lock()
            .get(key)
            .is_some_and(|b| now.duration_since(b.started) < self.window && b.failures >= budget)
    }

    /// True when any of the `(key, budget)` pairs is used up.
    pub fn any_blocked(&self, limits: &[(&str, u32)]) -> bool {
        limits.iter().any(|(key, budget)| self.is_blocked(key, *budget))
    }

    /// Counts one attempt against each key.
    pub fn record_all(&self, keys: &[&str]) {
        for key in keys {
            self.record_failure(key);
        }
    }

    pub fn record_failure(&self, key: &str) {
        let now = Instant::now();
        let window = self.window;
        let mut buckets = self.lock();
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, b| now.duration_since(b.started) < window);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { started: now, failures: 0 });
        if now.duration_since(bucket.started) >= window {
            *bucket = Bucket { started: now, failures: 0 };
        }
        bucket.failures = bucket.failures.saturating_add(1);
    }

    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_budget_and_recovers_after_window() {
        let t = Throttle::new(Duration::from_millis(50));
        for _ in 0..3 {
            assert!(!t.is_blocked("a", 3));
            t.record_failure("a");
        }
        assert!(t.is_blocked("a", 3));
        assert!(!t.is_blocked("b", 3));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!t.is_blocked("a", 3));
        t.record_failure("a");
        assert!(!t.is_blocked("a", 3));
        t.clear("a");
        assert!(!t.is_blocked("a", 1));
    }
}
