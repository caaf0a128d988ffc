//! The storage network: nodes, placements of objects on them, their tasks.

use super::{Db, Pool};
use sqlx::Row;

/// A task as a node is given it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    pub id: i64,
    pub kind: String,
    pub cid: String,
    pub size: i64,
    /// Audits: the leaf asked for and the deadline (ms since the epoch).
    pub block: Option<String>,
    pub deadline: Option<i64>,
}

/// A placement as `/file_status` shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlacementRow {
    pub node_id: String,
    pub state: String,
    pub stored_at: Option<i64>,
    pub last_audit_at: Option<i64>,
    pub last_audit_ok: Option<bool>,
}

/// A stored replica a download can be served from.
/// A task as the node that has it sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeTaskRow {
    pub kind: String,
    pub state: String,
    pub cid: String,
    pub size: i64,
    /// Retrieve tasks: the instance whose download waits for it.
    pub instance: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HolderRow {
    pub placement_id: i64,
    pub node_user: i64,
    pub size: i64,
}

/// What finishing a task did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The task was open and is now done or failed.
    Now,
    /// It had already been finished the same way (a repeated answer).
    Already,
    /// It was finished the other way before: the answer changes nothing.
    Conflict,
    /// A store task said done before the node read the content.
    NotFetched,
    /// No such task for this node.
    Unknown,
    /// The task is an audit: it is answered with a proof (or failed).
    Audit,
}

/// The states in which a placement counts as a replica.
const LIVE: &str = "('assigned', 'stored')";

impl Db {
    /// Records a node's poll at this `instance` (the row is made on its first, with `new_node_id`).
    pub async fn node_polled(&self, user_id: i64, new_node_id: &str, free_bytes: i64, now: i64, instance: &str) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO nodes (user_id, node_id, last_poll_at, free_bytes, instance) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (user_id) DO UPDATE SET last_poll_at = excluded.last_poll_at, free_bytes = excluded.free_bytes, \
                 instance = excluded.instance",
            )
            .bind(user_id)
            .bind(new_node_id)
            .bind(now)
            .bind(free_bytes)
            .bind(instance)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }

    /// The node's open tasks, oldest first.
    pub async fn open_tasks(&self, user_id: i64) -> Result<Vec<TaskRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT t.id, t.kind, t.cid, t.size, a.block, a.deadline FROM tasks t \
                 LEFT JOIN audits a ON a.task_id = t.id WHERE t.node_user = $1 AND t.state = 'open' ORDER BY t.id",
            )
                .bind(user_id)
                .fetch_all(pool)
                .await
        })
    }

    /// Ends the node's store or drop task `id`: done (`ok`) or failed. A
    /// store task that is done makes its placement stored (paid from `now`,
    /// first audited at `first_audit_at`); one that failed makes it lost.
    pub async fn finish_task(&self, user_id: i64, id: i64, ok: bool, now: i64, first_audit_at: i64) -> Result<Finished, sqlx::Error> {
        let state = if ok { "done" } else { "failed" };
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // One claiming write first (SQLite: no read-to-write upgrade to
            // fail on); a store is done only once its content was fetched.
            let ended = sqlx::query(
                "UPDATE tasks SET state = $1 WHERE id = $2 AND node_user = $3 AND state = 'open' AND kind <> 'audit' \
                 AND NOT ($1 = 'done' AND kind = 'store' AND placement_id IN (SELECT id FROM placements WHERE fetched_at IS NULL)) \
                 RETURNING kind, placement_id",
            )
            .bind(state)
            .bind(id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(ended) = ended else {
                let was: Option<(String, String)> = sqlx::query("SELECT state, kind FROM tasks WHERE id = $1 AND node_user = $2")
                    .bind(id)
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| (r.get(0), r.get(1)));
                tx.rollback().await?;
                return Ok(match was {
                    None => Finished::Unknown,
                    Some((_, kind)) if kind == "audit" => Finished::Audit,
                    Some((s, kind)) if s == "open" && kind == "store" && ok => Finished::NotFetched,
                    Some((s, _)) if s == state => Finished::Already,
                    Some(_) => Finished::Conflict,
                });
            };
            let kind: String = ended.get(0);
            let placement: Option<i64> = ended.get(1);
            if let (Some(placement), "drop") = (placement, kind.as_str()) {
                // Done or not, the node is no longer counted on for it.
                sqlx::query("UPDATE placements SET state = 'dropped' WHERE id = $1 AND state = 'dropping'")
                    .bind(placement)
                    .execute(&mut *tx)
                    .await?;
            }
            if let (Some(placement), "store") = (placement, kind.as_str()) {
                if ok {
                    sqlx::query(
                        "UPDATE placements SET state = 'stored', stored_at = $2, paid_from = $2, next_audit_at = $3 \
                         WHERE id = $1 AND state = 'assigned'",
                    )
                    .bind(placement)
                    .bind(now)
                    .bind(first_audit_at)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    sqlx::query("UPDATE placements SET state = 'lost' WHERE id = $1 AND state = 'assigned'")
                        .bind(placement)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(Finished::Now)
        })
    }

    /// The node's live placement of `cid` (it holds, or is to hold, a replica).
    pub async fn placement_on(&self, user_id: i64, cid: &str) -> Result<Option<i64>, sqlx::Error> {
        let sql = format!("SELECT id FROM placements WHERE node_user = $1 AND cid = $2 AND state IN {LIVE}");
        with_pool!(self, pool => {
            Ok(sqlx::query(&sql).bind(user_id).bind(cid).fetch_optional(pool).await?.map(|r| r.get(0)))
        })
    }

    /// The node read the whole content of its placement `id` at `now`.
    pub async fn mark_fetched(&self, id: i64, now: i64) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE placements SET fetched_at = $2 WHERE id = $1").bind(id).bind(now).execute(pool).await.map(|_| ())
        })
    }

    /// Stored objects with fewer than `replicas` live placements (at most `limit`).
    pub async fn underplaced(&self, replicas: i64, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        let sql = format!(
            "SELECT b.cid FROM blobs b WHERE (SELECT COUNT(*) FROM placements p WHERE p.cid = b.cid AND p.state IN {LIVE}) < $1 \
             ORDER BY b.created_at LIMIT $2"
        );
        with_pool!(self, pool => {
            let rows = sqlx::query(&sql).bind(replicas).bind(limit).fetch_all(pool).await?;
            Ok(rows.into_iter().map(|r| r.get(0)).collect())
        })
    }

    /// Places `cid` on as many more nodes as it takes to reach `replicas`:
    /// nodes that polled at or after `online_since`, pledged storage with
    /// room for the object, and hold no replica of it yet; those with the
    /// most room first. One transaction, with the blob row locked, so no
    /// two instances place the same object at once. Returns how many
    /// placements (and store tasks) were made.
    pub async fn place(&self, cid: &str, replicas: i64, online_since: i64, now: i64) -> Result<u64, sqlx::Error> {
        let count_live = format!("SELECT COUNT(*) FROM placements WHERE cid = $1 AND state IN {LIVE}");
        let candidates = format!(
            "SELECT n.user_id, CAST(u.storage_rented_mb * 1048576 - \
               COALESCE((SELECT SUM(p.size) FROM placements p WHERE p.node_user = n.user_id AND p.state IN {LIVE}), 0) AS BIGINT) AS room \
             FROM nodes n JOIN users u ON u.id = n.user_id \
             WHERE n.last_poll_at >= $1 AND u.storage_rented_mb > 0 \
               AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.cid = $2 AND p.node_user = n.user_id \
                 AND (p.state IN ('assigned', 'stored', 'dropping') OR (p.state = 'lost' AND p.stored_at IS NOT NULL))) \
             ORDER BY room DESC, n.user_id"
        );
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let size: Option<i64> = sqlx::query("UPDATE blobs SET size = size WHERE cid = $1 RETURNING size")
                .bind(cid)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.get(0));
            let Some(size) = size else {
                tx.rollback().await?;
                return Ok(0);
            };
            let live: i64 = sqlx::query(&count_live).bind(cid).fetch_one(&mut *tx).await?.get(0);
            let need = (replicas - live).max(0) as usize;
            let mut made = 0;
            if need > 0 {
                let nodes: Vec<(i64, i64)> = sqlx::query(&candidates)
                    .bind(online_since)
                    .bind(cid)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                for (node, _) in nodes.into_iter().filter(|(_, room)| *room >= size).take(need) {
                    let placement: i64 = sqlx::query(
                        "INSERT INTO placements (cid, node_user, size, state, assigned_at) VALUES ($1, $2, $3, 'assigned', $4) RETURNING id",
                    )
                    .bind(cid)
                    .bind(node)
                    .bind(size)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?
                    .get(0);
                    insert_task!(&mut *tx, node, placement, "store", cid, size, now);
                    made += 1;
                }
            }
            tx.commit().await?;
            Ok(made)
        })
    }

    /// Live placements of objects no longer stored (their last file was
    /// deleted): what nodes are to drop (at most `limit`).
    pub async fn orphaned_placements(&self, limit: i64) -> Result<Vec<i64>, sqlx::Error> {
        let sql = format!(
            "SELECT p.id FROM placements p WHERE p.state IN {LIVE} \
             AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.cid = p.cid) ORDER BY p.id LIMIT $1"
        );
        with_pool!(self, pool => {
            let rows = sqlx::query(&sql).bind(limit).fetch_all(pool).await?;
            Ok(rows.into_iter().map(|r| r.get(0)).collect())
        })
    }

    /// Gives the node of a live or lost placement a drop task for it (once:
    /// the placement becomes `dropping`). Returns whether a task was made.
    pub async fn schedule_drop(&self, placement: i64, now: i64) -> Result<bool, sqlx::Error> {
        let sql = "UPDATE placements SET state = 'dropping', next_audit_at = NULL \
                   WHERE id = $1 AND state IN ('assigned', 'stored', 'lost') RETURNING node_user, cid, size";
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let Some(row) = sqlx::query(sql).bind(placement).fetch_optional(&mut *tx).await? else {
                tx.rollback().await?;
                return Ok(false);
            };
            let (node, cid, size): (i64, String, i64) = (row.get(0), row.get(1), row.get(2));
            // An unanswered store task or audit of it is moot now.
            cancel_open_work!(tx, placement);
            insert_task!(&mut *tx, node, placement, "drop", cid, size, now);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Stored replicas of `cid` on nodes that polled at or after
    /// `online_since`: those polling `instance` first, then the oldest replica first.
    pub async fn holders(&self, cid: &str, online_since: i64, instance: &str) -> Result<Vec<HolderRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT p.id AS placement_id, p.node_user, p.size FROM placements p JOIN nodes n ON n.user_id = p.node_user \
                 WHERE p.cid = $1 AND p.state = 'stored' AND n.last_poll_at >= $2 \
                 ORDER BY CASE WHEN n.instance = $3 THEN 0 ELSE 1 END, p.id",
            )
            .bind(cid)
            .bind(online_since)
            .bind(instance)
            .fetch_all(pool)
            .await
        })
    }

    /// Gives the holder a `retrieve` task for `cid`, for a download waiting
    /// at `instance`; returns its id.
    pub async fn open_retrieve(&self, holder: &HolderRow, cid: &str, now: i64, instance: &str) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(insert_task!(pool, holder.node_user, holder.placement_id, "retrieve", cid, holder.size, now, Some(instance)))
        })
    }

    /// The node's task `id`.
    pub async fn task_of(&self, user_id: i64, id: i64) -> Result<Option<NodeTaskRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as("SELECT kind, state, cid, size, instance FROM tasks WHERE id = $1 AND node_user = $2")
                .bind(id)
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })
    }

    /// The state of task `id` and its progress count (see [`Db::touch_restore`]).
    pub async fn task_state(&self, id: i64) -> Result<Option<(String, i64)>, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("SELECT state, progress FROM tasks WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|r| (r.get(0), r.get(1))))
        })
    }

    /// Ends an open (or restoring) task as `state` (done, failed, cancelled).
    pub async fn end_task(&self, id: i64, state: &str) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE tasks SET state = $2 WHERE id = $1 AND state IN ('open', 'restoring')")
                .bind(id)
                .bind(state)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// Claims open retrieve task `id` for restoring here, or counts that it
    /// is still being read (the waiting instance sees the count move);
    /// false when it is not open (`claim`) or no longer restoring.
    pub async fn touch_restore(&self, id: i64, claim: bool) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("UPDATE tasks SET state = 'restoring', progress = progress + 1 WHERE id = $1 AND state = $2")
                .bind(id)
                .bind(if claim { "open" } else { "restoring" })
                .execute(pool)
                .await?
                .rows_affected()
                > 0)
        })
    }

    /// The coordinator keeps a copy of `cid` again (restored from a node), at least until `until`.
    pub async fn restore_local_copy(&self, cid: &str, until: i64) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("UPDATE blobs SET local_copy = TRUE, local_until = $2 WHERE cid = $1")
                .bind(cid)
                .bind(until)
                .execute(pool)
                .await?
                .rows_affected()
                > 0)
        })
    }

    /// Whether the coordinator keeps its own copy of `cid` (`None`: no such object).
    pub async fn has_local_copy(&self, cid: &str) -> Result<Option<bool>, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("SELECT local_copy FROM blobs WHERE cid = $1").bind(cid).fetch_optional(pool).await?.map(|r| r.get(0)))
        })
    }

    /// Marks the coordinator's copy of `cid` gone; false if it already was.
    pub async fn drop_local_copy(&self, cid: &str, now: i64) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("UPDATE blobs SET local_copy = FALSE WHERE cid = $1 AND local_copy AND local_until <= $2")
                .bind(cid)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
                > 0)
        })
    }

    /// Objects the coordinator still keeps that have `replicas` stored
    /// replicas whose last audit passed (at most `limit`).
    pub async fn releasable_copies(&self, replicas: i64, limit: i64, now: i64) -> Result<Vec<String>, sqlx::Error> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT b.cid FROM blobs b WHERE b.local_copy AND b.local_until <= $3 AND (SELECT COUNT(*) FROM placements p \
                 WHERE p.cid = b.cid AND p.state = 'stored' AND p.last_audit_ok) >= $1 ORDER BY b.created_at LIMIT $2",
            )
            .bind(replicas)
            .bind(limit)
            .bind(now)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| r.get(0)).collect())
        })
    }

    /// The placements of `cid` that are or were replicas, oldest first.
    pub async fn placements_of(&self, cid: &str) -> Result<Vec<PlacementRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT n.node_id, p.state, p.stored_at, p.last_audit_at, p.last_audit_ok FROM placements p JOIN nodes n ON n.user_id = p.node_user \
                 WHERE p.cid = $1 AND p.state IN ('assigned', 'stored', 'lost') ORDER BY p.id",
            )
            .bind(cid)
            .fetch_all(pool)
            .await
        })
    }
}
