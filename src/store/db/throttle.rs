//! Throttle windows: attempts counted per key, shared by every instance.

use super::{Db, Pool};
use sqlx::Row;

impl Db {
    /// Failures counted against `key` in the window that started after `since`.
    pub async fn throttle_failures(&self, key: &str, since: i64) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT failures FROM throttle WHERE key = $1 AND window_start > $2")
                .bind(key)
                .bind(since)
                .fetch_optional(pool)
                .await?;
            Ok(row.map_or(0, |r| r.get(0)))
        })
    }

    /// Counts one attempt against `key` and returns the count of its window;
    /// a window that started at or before `since` is over, and a new one
    /// starts `now`. One atomic statement: attempts counted at once, on any
    /// instance, each see a different count.
    pub async fn throttle_record(&self, key: &str, now: i64, since: i64) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "INSERT INTO throttle (key, window_start, failures) VALUES ($1, $2, 1) \
                 ON CONFLICT (key) DO UPDATE SET \
                   failures = CASE WHEN throttle.window_start <= $3 THEN 1 ELSE throttle.failures + 1 END, \
                   window_start = CASE WHEN throttle.window_start <= $3 THEN excluded.window_start ELSE throttle.window_start END \
                 RETURNING failures",
            )
            .bind(key)
            .bind(now)
            .bind(since)
            .fetch_one(pool)
            .await?;
            Ok(row.get(0))
        })
    }

    /// Takes back one counted attempt of `key` (an attempt that succeeded).
    pub async fn throttle_refund(&self, key: &str) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0")
                .bind(key)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    pub async fn throttle_clear(&self, key: &str) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM throttle WHERE key = $1").bind(key).execute(pool).await.map(|_| ())
        })
    }

    /// Forgets every window that started at or before `since`; returns how many.
    pub async fn throttle_sweep(&self, since: i64) -> Result<u64, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM throttle WHERE window_start <= $1")
                .bind(since)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
    }
}
