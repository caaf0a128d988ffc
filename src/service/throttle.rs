//! Counts failed attempts per key (an account or a client address) in a
//! fixed window; past the budget the key is refused until the window ends.
//! The counts live in the database, so every instance behind a load
//! balancer sees the same ones: an attacker gains nothing by spreading
//! attempts over instances.

use crate::error::AppResult;
use crate::store::{now_ms, Db};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct Throttle {
    db: Db,
    window_ms: i64,
    recorded: AtomicU64,
}

/// Every this many recorded failures, windows that are over are deleted.
const SWEEP_EVERY: u64 = 1000;

impl Throttle {
    pub fn new(db: Db, window: Duration) -> Self {
        Self { db, window_ms: window.as_millis().min(i64::MAX as u128) as i64, recorded: AtomicU64::new(0) }
    }

    /// Windows that started at or before this instant are over.
    fn window_over_at(&self) -> i64 {
        now_ms().saturating_sub(self.window_ms)
    }

    /// True when `key` has used up `budget` failures in the current window.
    pub async fn is_blocked(&self, key: &str, budget: u32) -> AppResult<bool> {
        Ok(self.db.throttle_failures(key, self.window_over_at()).await? >= i64::from(budget))
    }

    /// True when any of the `(key, budget)` pairs is used up.
    pub async fn any_blocked(&self, limits: &[(&str, u32)]) -> AppResult<bool> {
        for (key, budget) in limits {
            if self.is_blocked(key, *budget).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Counts one attempt against each key.
    pub async fn record_all(&self, keys: &[&str]) -> AppResult<()> {
        for key in keys {
            self.record_failure(key).await?;
        }
        Ok(())
    }

    pub async fn record_failure(&self, key: &str) -> AppResult<()> {
        let now = now_ms();
        let over = now.saturating_sub(self.window_ms);
        self.db.throttle_record(key, now, over).await?;
        if self.recorded.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let swept = self.db.throttle_sweep(over).await?;
            tracing::debug!(swept, "throttle windows swept");
        }
        Ok(())
    }

    pub async fn clear(&self, key: &str) -> AppResult<()> {
        Ok(self.db.throttle_clear(key).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn throttle(window: Duration) -> (Throttle, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("peervault-throttle-{}", crate::service::accounts::random_hex(8)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let db = Db::connect(&url, 2).await.expect("database");
        (Throttle::new(db, window), dir)
    }

    #[tokio::test]
    async fn blocks_after_budget_and_recovers_after_window() {
        let (t, dir) = throttle(Duration::from_millis(300)).await;
        for _ in 0..3 {
            assert!(!t.is_blocked("a", 3).await.unwrap());
            t.record_failure("a").await.unwrap();
        }
        assert!(t.is_blocked("a", 3).await.unwrap());
        assert!(!t.is_blocked("b", 3).await.unwrap());
        assert!(t.any_blocked(&[("b", 3), ("a", 3)]).await.unwrap());
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(!t.is_blocked("a", 3).await.unwrap());
        // A failure after the window starts a new one, counted from 1.
        t.record_failure("a").await.unwrap();
        assert!(!t.is_blocked("a", 2).await.unwrap());
        assert!(t.is_blocked("a", 1).await.unwrap());
        t.clear("a").await.unwrap();
        assert!(!t.is_blocked("a", 1).await.unwrap());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn two_instances_on_one_database_count_together() {
        let (a, dir) = throttle(Duration::from_secs(60)).await;
        let b = Throttle::new(a.db.clone(), Duration::from_secs(60));
        a.record_failure("k").await.unwrap();
        b.record_failure("k").await.unwrap();
        assert!(a.is_blocked("k", 2).await.unwrap());
        assert!(b.is_blocked("k", 2).await.unwrap());
        let _ = std::fs::remove_dir_all(dir);
    }
}
