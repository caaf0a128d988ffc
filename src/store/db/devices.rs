//! Devices and the ledger: pledges, heartbeats and the coins they earn,
//! bandwidth reports, downloads counted, the dashboard and its history.

use super::{ADD_TRAFFIC, COUNTER_CAP, Db, Pool, day_of};

/// One day of the coin ledger.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LedgerDay {
    pub day: i64,
    pub coins: f64,
    pub credited_ms: i64,
}

/// One day of an account's traffic, in bytes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TrafficDay {
    pub day: i64,
    pub files_up: i64,
    pub files_down: i64,
    pub peer_in: i64,
    pub peer_out: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HeartbeatState {
    pub storage_rented_mb: f64,
    pub last_heartbeat_at: Option<i64>,
}

/// The stored facts behind the dashboard.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DashboardRow {
    pub username: String,
    pub peer_id: String,
    pub storage_rented_mb: f64,
    pub coins: f64,
    pub uptime_ms: i64,
    pub last_heartbeat_at: Option<i64>,
    pub files_uploaded_bytes: i64,
    pub files_downloaded_bytes: i64,
    pub peer_in: i64,
    pub peer_out: i64,
    pub space_used: i64,
}

impl Db {
    pub async fn set_storage_rented(&self, user_id: i64, mb: f64, now: i64) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE users SET storage_rented_mb = $1, onboarded_at = $2 WHERE id = $3")
                .bind(mb)
                .bind(now)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    pub async fn heartbeat_state(&self, user_id: i64) -> Result<Option<HeartbeatState>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as("SELECT storage_rented_mb, last_heartbeat_at FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })
    }

    /// Records a heartbeat at `now` if the previous one is still `previous`
    /// (compare-and-set), crediting `credited_ms` of uptime and appending a
    /// ledger entry of `coins` in the same transaction. Returns false when
    /// another heartbeat won the race: the caller re-reads and retries, so an
    /// interval is never credited twice.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_heartbeat(
        &self,
        user_id: i64,
        previous: Option<i64>,
        now: i64,
        credited_ms: i64,
        storage_rented_mb: f64,
        coin_rate: f64,
        coins: f64,
    ) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // The write comes first, so the transaction holds the write lock from
            // its first statement on (no read-to-write upgrade to deadlock on).
            let updated = sqlx::query(
                "UPDATE users SET last_heartbeat_at = $1, uptime_ms = uptime_ms + $2 \
                 WHERE id = $3 AND last_heartbeat_at IS NOT DISTINCT FROM $4",
            )
            .bind(now)
            .bind(credited_ms)
            .bind(user_id)
            .bind(previous)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            if credited_ms > 0 {
                sqlx::query(
                    "INSERT INTO coin_ledger (user_id, credited_ms, storage_rented_mb, coin_rate, coins, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(user_id)
                .bind(credited_ms)
                .bind(storage_rented_mb)
                .bind(coin_rate)
                .bind(coins)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Stores a bandwidth report, banking a stored total that the new one is lower than.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_bandwidth(
        &self,
        user_id: i64,
        total_in: i64,
        total_out: i64,
        rate_in: f64,
        rate_out: f64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Lock the account's row first (a no-op write): on PostgreSQL two
            // reports of one account then run one after the other, each
            // reading the totals the previous one stored.
            sqlx::query("UPDATE users SET uptime_ms = uptime_ms WHERE id = $1").bind(user_id).execute(&mut *tx).await?;
            // The day's peer traffic grows by what the totals grew since the last
            // report (all of a total after a restart, when it went down). Read
            // from the stored row inside this write, so reports cannot race.
            sqlx::query(
                "INSERT INTO traffic_daily (user_id, day, files_up, files_down, peer_in, peer_out) \
                 SELECT $1, $2, 0, 0, \
                   CASE WHEN b.total_in IS NULL OR $3 < b.total_in THEN $3 ELSE $3 - b.total_in END, \
                   CASE WHEN b.total_out IS NULL OR $4 < b.total_out THEN $4 ELSE $4 - b.total_out END \
                 FROM (SELECT 1) one LEFT JOIN peer_bandwidth b ON b.user_id = $1 WHERE true \
                 ON CONFLICT (user_id, day) DO UPDATE SET \
                   peer_in = CASE WHEN traffic_daily.peer_in > $5 - excluded.peer_in THEN $5 \
                     ELSE traffic_daily.peer_in + excluded.peer_in END, \
                   peer_out = CASE WHEN traffic_daily.peer_out > $5 - excluded.peer_out THEN $5 \
                     ELSE traffic_daily.peer_out + excluded.peer_out END",
            )
            .bind(user_id)
            .bind(day_of(now))
            .bind(total_in)
            .bind(total_out)
            .bind(COUNTER_CAP)
            .execute(&mut *tx)
            .await?;
            // The banking decision reads the stored row under the same write, so
            // concurrent reports cannot lose a banked total. Banked sums stop
            // at COUNTER_CAP ($7) instead of overflowing.
            sqlx::query(
                "INSERT INTO peer_bandwidth (user_id, total_in, total_out, rate_in, rate_out, banked_in, banked_out, reported_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, 0, $6) \
                 ON CONFLICT (user_id) DO UPDATE SET \
                   banked_in = CASE WHEN excluded.total_in >= peer_bandwidth.total_in THEN peer_bandwidth.banked_in \
                     WHEN peer_bandwidth.banked_in > $7 - peer_bandwidth.total_in THEN $7 \
                     ELSE peer_bandwidth.banked_in + peer_bandwidth.total_in END, \
                   banked_out = CASE WHEN excluded.total_out >= peer_bandwidth.total_out THEN peer_bandwidth.banked_out \
                     WHEN peer_bandwidth.banked_out > $7 - peer_bandwidth.total_out THEN $7 \
                     ELSE peer_bandwidth.banked_out + peer_bandwidth.total_out END, \
                   total_in = excluded.total_in, total_out = excluded.total_out, \
                   rate_in = excluded.rate_in, rate_out = excluded.rate_out, reported_at = excluded.reported_at",
            )
            .bind(user_id)
            .bind(total_in)
            .bind(total_out)
            .bind(rate_in)
            .bind(rate_out)
            .bind(now)
            .bind(COUNTER_CAP)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
    }

    pub async fn dashboard(&self, user_id: i64) -> Result<Option<DashboardRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                concat!(
                    "SELECT u.username, u.peer_id, u.storage_rented_mb, \
                       CAST(COALESCE((SELECT SUM(l.coins) FROM coin_ledger l WHERE l.user_id = u.id), 0) AS DOUBLE PRECISION) AS coins, \
                       u.uptime_ms, u.last_heartbeat_at, u.files_uploaded_bytes, u.files_downloaded_bytes, \
                       COALESCE(b.total_in + b.banked_in, 0) AS peer_in, \
                       COALESCE(b.total_out + b.banked_out, 0) AS peer_out, ",
                    space_used_of!("u.id"),
                    " AS space_used FROM users u LEFT JOIN peer_bandwidth b ON b.user_id = u.id WHERE u.id = $1"
                ),
            )
            .bind(user_id)
            .fetch_optional(pool)
            .await
        })
    }

    pub async fn add_downloaded(&self, user_id: i64, bytes: i64, now: i64) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE users SET files_downloaded_bytes = files_downloaded_bytes + $1 WHERE id = $2")
                .bind(bytes)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(ADD_TRAFFIC)
                .bind(user_id)
                .bind(day_of(now))
                .bind(0i64)
                .bind(bytes)
                .bind(0i64)
                .bind(0i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
    }

    /// Per day since `first_day`: (day, coins of both kinds, uptime ms credited) from the ledger.
    pub async fn ledger_by_day(&self, user_id: i64, first_day: i64) -> Result<Vec<LedgerDay>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT created_at / 86400000 AS day, CAST(SUM(coins) AS DOUBLE PRECISION) AS coins, \
                   CAST(SUM(CASE WHEN kind = 'uptime' THEN credited_ms ELSE 0 END) AS BIGINT) AS credited_ms \
                 FROM coin_ledger WHERE user_id = $1 AND created_at >= $2 GROUP BY created_at / 86400000",
            )
            .bind(user_id)
            .bind(first_day * 86_400_000)
            .fetch_all(pool)
            .await
        })
    }

    /// Per day since `first_day`: the account's traffic.
    pub async fn traffic_by_day(&self, user_id: i64, first_day: i64) -> Result<Vec<TrafficDay>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT day, files_up, files_down, peer_in, peer_out FROM traffic_daily WHERE user_id = $1 AND day >= $2",
            )
            .bind(user_id)
            .bind(first_day)
            .fetch_all(pool)
            .await
        })
    }
}
