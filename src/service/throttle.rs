//! Counts failed attempts per key (an account or a client address) in a
//! fixed window; past the budget the key is refused until the window ends.
//! The counts live in the database, so every instance behind a load
//! balancer sees the same ones: an attacker gains nothing by spreading
//! attempts over instances.

use crate::error::AppResult;
use crate::clock::Clock;
use crate::store::Db;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct Throttle {
    db: Db,
    window_ms: i64,
    recorded: AtomicU64,
    clock: Arc<Clock>,
}

/// Every this many recorded failures, windows that are over are deleted.
const SWEEP_EVERY: u64 = 1000;

impl Throttle {
    pub fn new(db: Db, window: Duration, clock: Arc<Clock>) -> Self {
        Self { db, window_ms: window.as_millis().min(i64::MAX as u128) as i64, recorded: AtomicU64::new(0), clock }
    }

    /// Windows that started at or before this instant are over.
    fn window_over_at(&self) -> i64 {
        self.clock.now_ms().saturating_sub(self.window_ms)
    }

    /// True when `key` has used up `budget` attempts in the current window.
    pub async fn is_blocked(&self, key: &str, budget: u32) -> AppResult<bool> {
        Ok(self.db.throttle_failures(key, self.window_over_at()).await? >= i64::from(budget))
    }

    /// Counts one attempt against each `(key, budget)` first, then decides:
    /// true when any key is now past its budget. Counting comes before the
    /// work it guards (a password hash, a code check), in one atomic
    /// statement per key, so parallel attempts cannot all slip past a check
    /// made before any of them was counted.
    pub async fn over_budget(&self, limits: &[(&str, u32)]) -> AppResult<bool> {
        let mut over = false;
        for (key, budget) in limits {
            over |= self.record(key).await? > i64::from(*budget);
        }
        Ok(over)
    }

    /// Counts one attempt against `key`; returns the count of its window.
    pub async fn record(&self, key: &str) -> AppResult<i64> {
        let now = self.clock.now_ms();
        let over = now.saturating_sub(self.window_ms);
        let count = self.db.throttle_record(key, now, over).await?;
        if self.recorded.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let swept = self.db.throttle_sweep(over).await?;
            tracing::debug!(swept, "throttle windows swept");
        }
        Ok(count)
    }

    /// Takes back one counted attempt (it succeeded).
    pub async fn refund(&self, key: &str) -> AppResult<()> {
        Ok(self.db.throttle_refund(key).await?)
    }

    pub async fn clear(&self, key: &str) -> AppResult<()> {
        Ok(self.db.throttle_clear(key).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn throttle(window: Duration) -> (Throttle, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("peervault-throttle-{}", crate::util::random_hex(8)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let db = Db::connect(&url, 2, Duration::from_secs(2)).await.expect("database");
        (Throttle::new(db, window, Arc::new(Clock::movable())), dir)
    }

    #[tokio::test]
    async fn blocks_after_budget_and_recovers_after_window() {
        let (t, dir) = throttle(Duration::from_secs(300)).await;
        for _ in 0..3 {
            assert!(!t.over_budget(&[("a", 3)]).await.unwrap());
        }
        assert!(t.is_blocked("a", 3).await.unwrap());
        assert!(!t.is_blocked("b", 3).await.unwrap());
        assert!(t.over_budget(&[("b", 3), ("a", 3)]).await.unwrap());
        t.clock.advance(300_001).unwrap();
        assert!(!t.is_blocked("a", 3).await.unwrap());
        // An attempt after the window starts a new one, counted from 1.
        assert_eq!(t.record("a").await.unwrap(), 1);
        assert!(!t.is_blocked("a", 2).await.unwrap());
        assert!(t.is_blocked("a", 1).await.unwrap());
        t.refund("a").await.unwrap();
        assert!(!t.is_blocked("a", 1).await.unwrap());
        t.record("a").await.unwrap();
        t.clear("a").await.unwrap();
        assert!(!t.is_blocked("a", 1).await.unwrap());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn two_instances_on_one_database_count_together() {
        let (a, dir) = throttle(Duration::from_secs(60)).await;
        let b = Throttle::new(a.db.clone(), Duration::from_secs(60), a.clock.clone());
        a.record("k").await.unwrap();
        b.record("k").await.unwrap();
        assert!(a.is_blocked("k", 2).await.unwrap());
        assert!(b.is_blocked("k", 2).await.unwrap());
        let _ = std::fs::remove_dir_all(dir);
    }
}
