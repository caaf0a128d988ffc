//! Audits of stored placements, the storage coins a passed one pays, and
//! repair: placements of silent nodes lost, stale copies dropped.
//!
//! Every step that two coordinators could take at once is one claiming
//! UPDATE (`… WHERE <still in the old state> RETURNING`), so a placement is
//! audited once at a time, an audit is settled once and an interval is paid
//! once, whichever instance gets there first.

use super::{Db, Pool};
use sqlx::Row;

/// A stored placement whose audit is due.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueAudit {
    pub placement_id: i64,
    pub node_user: i64,
    pub cid: String,
    pub size: i64,
}

/// An audit as a proof finds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub block: String,
    pub deadline: i64,
    pub outcome: String,
}

/// How an audit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// A wrong block, or the node said it cannot answer.
    Failed,
    /// No right answer before the deadline.
    Late,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::Late => "late",
        }
    }
}

/// The rules settling an audit applies.
#[derive(Debug, Clone, Copy)]
pub struct AuditRules {
    /// When the placement's next audit is due, ms after this one.
    pub interval_ms: i64,
    /// Failures in a row that make the placement lost.
    pub max_failures: i64,
    /// Coins per GB-hour.
    pub coin_rate: f64,
}

/// What settling an audit did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Settled {
    /// It was settled before (by this answer repeated, the deadline, or another instance).
    Already,
    /// Passed; the coins credited for the interval it closes.
    Paid(f64),
    /// Failed; whether the placement is now lost.
    Failed { lost: bool },
}

/// Storage coins for `bytes` held `ms` milliseconds at `rate` coins per
/// GB-hour (a GB being 2^30 bytes, as the uptime coins' pledge MB / 1024):
/// the ledger's formula, in this order of operations.
pub fn storage_coins(bytes: i64, ms: i64, rate: f64) -> f64 {
    bytes as f64 / 1_073_741_824.0 * (ms as f64 / 3_600_000.0) * rate
}

/// A node's audits over a window.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct AuditTally {
    pub passed: i64,
    pub total: i64,
}

/// One storage credit of the ledger.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StorageCredit {
    pub cid: String,
    pub bytes: i64,
    pub from_ms: i64,
    pub to_ms: i64,
    pub coin_rate: f64,
    pub coins: f64,
}

/// A node owner's figures.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct NodeFigures {
    pub node_id: Option<String>,
    pub held_bytes: i64,
    pub placements: i64,
    pub storage_coins: f64,
    pub uptime_coins: f64,
}

/// The network's figures.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct NetworkFigures {
    pub nodes_online: i64,
    pub pledged_mb: f64,
    pub placed_bytes: i64,
}

impl Db {
    /// Stored placements whose audit is due at `now` (at most `limit`), oldest due first.
    pub async fn due_audits(&self, now: i64, limit: i64) -> Result<Vec<DueAudit>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id AS placement_id, node_user, cid, size FROM placements \
                 WHERE state = 'stored' AND next_audit_at <= $1 ORDER BY next_audit_at, id LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await
        })
    }

    /// Opens an audit of a due placement asking for `block` by `deadline`:
    /// claims it (its next audit is no longer due) and makes the task and
    /// the audit row, in one transaction. False when it was no longer due
    /// (another instance claimed it, or it is not stored any more).
    pub async fn open_audit(&self, due: &DueAudit, block: &str, deadline: i64, now: i64) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let claimed = sqlx::query(
                "UPDATE placements SET next_audit_at = NULL WHERE id = $1 AND state = 'stored' AND next_audit_at <= $2",
            )
            .bind(due.placement_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            let task = insert_task!(&mut *tx, due.node_user, due.placement_id, "audit", &due.cid, due.size, now);
            sqlx::query(
                "INSERT INTO audits (task_id, placement_id, node_user, block, deadline, outcome, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 'open', $6)",
            )
            .bind(task)
            .bind(due.placement_id)
            .bind(due.node_user)
            .bind(block)
            .bind(deadline)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The audit behind the node's task `task_id`, if that task is an audit of this node.
    pub async fn audit_of_task(&self, node_user: i64, task_id: i64) -> Result<Option<AuditRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as("SELECT id, block, deadline, outcome FROM audits WHERE task_id = $1 AND node_user = $2")
                .bind(task_id)
                .bind(node_user)
                .fetch_optional(pool)
                .await
        })
    }

    /// Open audits whose deadline passed before `now` (at most `limit`).
    pub async fn overdue_audits(&self, now: i64, limit: i64) -> Result<Vec<i64>, sqlx::Error> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT id FROM audits WHERE outcome = 'open' AND deadline < $1 ORDER BY id LIMIT $2")
                .bind(now)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            Ok(rows.into_iter().map(|r| r.get(0)).collect())
        })
    }

    /// Settles the open audit `audit_id` with `verdict` at `now`, in one
    /// transaction: the audit and its task end; a pass credits the node's
    /// owner storage coins for the interval since the placement was last
    /// paid (or stored) and schedules the next audit; a failure pays
    /// nothing for that interval, counts a failure in a row and, at
    /// `max_failures`, makes the placement lost.
    pub async fn settle_audit(&self, audit_id: i64, verdict: Verdict, now: i64, rules: AuditRules) -> Result<Settled, sqlx::Error> {
        let passed = verdict == Verdict::Passed;
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let claimed = sqlx::query(
                "UPDATE audits SET outcome = $2, answered_at = $3 WHERE id = $1 AND outcome = 'open' RETURNING task_id, placement_id",
            )
            .bind(audit_id)
            .bind(verdict.word())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(claimed) = claimed else {
                tx.rollback().await?;
                return Ok(Settled::Already);
            };
            let (task, placement): (i64, i64) = (claimed.get(0), claimed.get(1));
            sqlx::query("UPDATE tasks SET state = $2 WHERE id = $1 AND state = 'open'")
                .bind(task)
                .bind(if passed { "done" } else { "failed" })
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query("SELECT node_user, cid, size, paid_from, audit_failures FROM placements WHERE id = $1 AND state = 'stored'")
                .bind(placement)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                // Lost or dropped meanwhile: nothing to pay or count.
                tx.commit().await?;
                return Ok(if passed { Settled::Paid(0.0) } else { Settled::Failed { lost: false } });
            };
            let (node, cid, size, paid_from, failures): (i64, String, i64, Option<i64>, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            let next = now.saturating_add(rules.interval_ms);
            let settled = if passed {
                sqlx::query(
                    "UPDATE placements SET last_audit_at = $2, last_audit_ok = TRUE, audit_failures = 0, next_audit_at = $3, paid_from = $2 \
                     WHERE id = $1",
                )
                .bind(placement)
                .bind(now)
                .bind(next)
                .execute(&mut *tx)
                .await?;
                let from = paid_from.unwrap_or(now).min(now);
                let coins = storage_coins(size, now - from, rules.coin_rate);
                if now > from {
                    sqlx::query(
                        "INSERT INTO coin_ledger (user_id, credited_ms, storage_rented_mb, coin_rate, coins, created_at, kind, cid, bytes, from_ms) \
                         VALUES ($1, $2, 0, $3, $4, $5, 'storage', $6, $7, $8)",
                    )
                    .bind(node)
                    .bind(now - from)
                    .bind(rules.coin_rate)
                    .bind(coins)
                    .bind(now)
                    .bind(&cid)
                    .bind(size)
                    .bind(from)
                    .execute(&mut *tx)
                    .await?;
                }
                Settled::Paid(if now > from { coins } else { 0.0 })
            } else {
                let lost = failures + 1 >= rules.max_failures;
                sqlx::query(
                    "UPDATE placements SET last_audit_at = $2, last_audit_ok = FALSE, audit_failures = audit_failures + 1, \
                     paid_from = $2, next_audit_at = $3, state = $4 WHERE id = $1",
                )
                .bind(placement)
                .bind(now)
                .bind(if lost { None } else { Some(next) })
                .bind(if lost { "lost" } else { "stored" })
                .execute(&mut *tx)
                .await?;
                Settled::Failed { lost }
            };
            tx.commit().await?;
            Ok(settled)
        })
    }

    /// Repair: every live placement on a node that has not polled since
    /// `silent_since` is lost (its open tasks and audits cancelled), so the
    /// loop places the object elsewhere. Returns how many were lost.
    pub async fn lose_silent_placements(&self, silent_since: i64) -> Result<u64, sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let lost: Vec<i64> = sqlx::query(
                "UPDATE placements SET state = 'lost', next_audit_at = NULL WHERE state IN ('assigned', 'stored') \
                 AND node_user IN (SELECT user_id FROM nodes WHERE last_poll_at < $1) RETURNING id",
            )
            .bind(silent_since)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
            for placement in &lost {
                cancel_open_work!(tx, placement);
            }
            tx.commit().await?;
            Ok(lost.len() as u64)
        })
    }

    /// Lost placements that were stored, on nodes online again (polled at or
    /// after `online_since`): stale copies the node is to drop (at most `limit`).
    pub async fn stale_placements(&self, online_since: i64, limit: i64) -> Result<Vec<i64>, sqlx::Error> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT p.id FROM placements p JOIN nodes n ON n.user_id = p.node_user \
                 WHERE p.state = 'lost' AND p.stored_at IS NOT NULL AND n.last_poll_at >= $1 ORDER BY p.id LIMIT $2",
            )
            .bind(online_since)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| r.get(0)).collect())
        })
    }

    /// The node's audits made at or after `since`, settled as passed, failed or late.
    pub async fn audit_tally(&self, node_user: i64, since: i64) -> Result<AuditTally, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(CASE WHEN outcome = 'passed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS passed, \
                 COUNT(*) AS total FROM audits WHERE node_user = $1 AND created_at >= $2 AND outcome IN ('passed', 'failed', 'late')",
            )
            .bind(node_user)
            .bind(since)
            .fetch_one(pool)
            .await
        })
    }

    /// The account's latest `limit` storage credits, newest first.
    pub async fn storage_credits(&self, user_id: i64, limit: i64) -> Result<Vec<StorageCredit>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT cid, bytes, from_ms, created_at AS to_ms, coin_rate, coins FROM coin_ledger \
                 WHERE user_id = $1 AND kind = 'storage' ORDER BY id DESC LIMIT $2",
            )
            .bind(user_id)
            .bind(limit)
            .fetch_all(pool)
            .await
        })
    }

    /// What the account's node holds for the network and what it earned, by kind.
    pub async fn node_figures(&self, user_id: i64) -> Result<NodeFigures, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT (SELECT node_id FROM nodes WHERE user_id = $1) AS node_id, \
                 CAST(COALESCE((SELECT SUM(size) FROM placements WHERE node_user = $1 AND state = 'stored'), 0) AS BIGINT) AS held_bytes, \
                 (SELECT COUNT(*) FROM placements WHERE node_user = $1 AND state = 'stored') AS placements, \
                 CAST(COALESCE((SELECT SUM(coins) FROM coin_ledger WHERE user_id = $1 AND kind = 'storage'), 0) AS DOUBLE PRECISION) AS storage_coins, \
                 CAST(COALESCE((SELECT SUM(coins) FROM coin_ledger WHERE user_id = $1 AND kind = 'uptime'), 0) AS DOUBLE PRECISION) AS uptime_coins",
            )
            .bind(user_id)
            .fetch_one(pool)
            .await
        })
    }

    /// Nodes online (polled at or after `online_since`), their pledges, and the bytes stored on nodes.
    pub async fn network_figures(&self, online_since: i64) -> Result<NetworkFigures, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM nodes WHERE last_poll_at >= $1) AS nodes_online, \
                 CAST(COALESCE((SELECT SUM(u.storage_rented_mb) FROM nodes n JOIN users u ON u.id = n.user_id WHERE n.last_poll_at >= $1), 0) \
                   AS DOUBLE PRECISION) AS pledged_mb, \
                 CAST(COALESCE((SELECT SUM(size) FROM placements WHERE state = 'stored'), 0) AS BIGINT) AS placed_bytes",
            )
            .bind(online_since)
            .fetch_one(pool)
            .await
        })
    }
}
