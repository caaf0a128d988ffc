//! The storage network, coordinator side (docs/NETWORK.md): nodes poll for
//! work, fetch the objects placed on them, and say when they hold them; a
//! loop places every stored object on `replicas` distinct nodes.
//!
//! A node is an account that signed in with its device token
//! (`/android_auth`): one account, one node.

use super::download::{self, Content, Format};
use super::files::parse_cid;
use super::{Principal, Services};
use crate::error::{AppError, AppResult, ErrorKind};
use crate::service::tokens::TokenKind;
use crate::store::db::{Finished, TaskRow};
use std::time::Duration;

/// A task as `/node/work` hands it out.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Task {
    /// Opaque; send it back with the answer.
    pub id: String,
    /// `store` (fetch `/node/content/{cid}`, verify, keep, then `/node/done`)
    /// or `drop` (delete the object, then `/node/done`).
    pub kind: String,
    pub cid: String,
    /// The object's size in bytes.
    pub size: i64,
}

impl From<TaskRow> for Task {
    fn from(t: TaskRow) -> Self {
        Self { id: t.id.to_string(), kind: t.kind, cid: t.cid, size: t.size }
    }
}

/// The node protocol takes device tokens only: a node is a device.
fn require_node(who: &Principal) -> AppResult<()> {
    match who.kind {
        TokenKind::Device => Ok(()),
        TokenKind::User => Err(AppError::forbidden("Node calls need a device token (from /android_auth)")),
    }
}

/// The longest a poll may wait: 60 s, and a third of the offline time, so
/// a node that is waiting is never taken for a dead one.
pub fn max_wait_secs(state: &Services) -> f64 {
    (state.settings.node_offline_secs as f64 / 3.0).min(60.0)
}

/// `POST /node/work`: marks the node online and answers its open tasks as
/// soon as there is one, or an empty list once `wait` seconds have passed.
pub async fn work(state: &Services, who: &Principal, wait_secs: f64, free_bytes: i64) -> AppResult<Vec<Task>> {
    require_node(who)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(wait_secs.clamp(0.0, max_wait_secs(state)));
    loop {
        // Registered before the look, so a task made meanwhile wakes this poll.
        let woken = state.network_wake.notified();
        state.db.node_polled(who.user_id, &crate::util::random_hex(8), free_bytes, state.clock.now_ms()).await?;
        let tasks = state.db.open_tasks(who.user_id).await?;
        if !tasks.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(tasks.into_iter().map(Task::from).collect());
        }
        // Tasks made by another instance are seen at the next look.
        let _ = tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + Duration::from_secs(1)), woken).await;
    }
}

fn task_id(text: &str) -> AppResult<i64> {
    text.trim().parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| AppError::not_found("Task not found"))
}

/// `POST /node/done` and `/node/failed`: the node's answer to one of its
/// tasks. Repeating an answer changes nothing; answering a finished task
/// the other way is a conflict; an unknown or foreign task is not found.
pub async fn finish(state: &Services, who: &Principal, id: &str, ok: bool) -> AppResult<()> {
    require_node(who)?;
    match state.db.finish_task(who.user_id, task_id(id)?, ok, state.clock.now_ms()).await? {
        Finished::Now => {
            tracing::info!(node_user = who.user_id, task = id, ok, "task finished");
            if !ok {
                // A failed store leaves the object short of a replica: place it again soon.
                state.network_wake.notify_waiters();
            }
            Ok(())
        }
        Finished::Already => Ok(()),
        Finished::Conflict => Err(AppError::conflict("Task was already answered otherwise")),
        Finished::Unknown => Err(AppError::not_found("Task not found")),
    }
}

/// `GET /node/content/{cid}`: the CAR of an object placed on this node
/// (and only such an object: a node cannot fetch what it was not given).
pub async fn content(state: &Services, who: &Principal, cid: &str, with_body: bool) -> AppResult<Content> {
    require_node(who)?;
    let cid = parse_cid(cid)?.to_string();
    let not_placed = || AppError::not_found("No such object is placed on this node");
    if !state.db.holds(who.user_id, &cid).await? {
        return Err(not_placed());
    }
    let size = state.db.blob_size(&cid).await?.ok_or_else(not_placed)?;
    download::open_object(state, &cid, size.max(0) as u64, Format::Car, None, with_body, None).await
}

/// One round of the network loop: every object short of replicas is placed
/// on more nodes. Returns how many placements were made.
pub async fn place_round(state: &Services) -> AppResult<u64> {
    let now = state.clock.now_ms();
    let online_since = now - state.settings.node_offline_secs.saturating_mul(1000);
    let mut made = 0;
    for cid in state.db.underplaced(state.settings.replicas, 500).await? {
        made += state.db.place(&cid, state.settings.replicas, online_since, now).await?;
    }
    // Replicas of objects no longer stored go from their nodes.
    for placement in state.db.orphaned_placements(500).await? {
        made += u64::from(state.db.schedule_drop(placement, now).await?);
    }
    if made > 0 {
        tracing::info!(tasks = made, "tasks made for nodes");
        state.network_wake.notify_waiters();
    }
    Ok(made)
}

/// Runs [`place_round`] every `network_tick_secs` (and at once when woken), for ever.
pub async fn run_loop<S: std::ops::Deref<Target = Services>>(state: S) {
    let tick = Duration::from_secs(state.settings.network_tick_secs);
    loop {
        if let Err(e) = place_round(&state).await {
            tracing::warn!(error = %e.message, "network round failed");
        }
        tokio::time::sleep(tick).await;
    }
}

/// A replica as `/file_status` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replica {
    /// Opaque: never a peer ID or a username.
    pub node: String,
    /// `assigned` (being fetched), `stored` or `lost`.
    pub state: String,
    /// When it was stored (ms since the epoch), if it was.
    pub stored_at: Option<i64>,
}

/// What `/file_status` answers.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileStatus {
    pub cid: String,
    /// Replicas wanted (`PEERVAULT_REPLICAS`).
    pub wanted: i64,
    /// Replicas stored now.
    pub stored: i64,
    /// Whether the coordinator keeps its own copy.
    pub local_copy: bool,
    pub replicas: Vec<Replica>,
}

/// `POST /file_status`: where the account's file is held.
pub async fn file_status(state: &Services, who: &Principal, cid: &str) -> AppResult<FileStatus> {
    let cid = parse_cid(cid)?.to_string();
    if state.db.file_by_cid(who.user_id, &cid).await?.is_none() {
        return Err(AppError::not_found("This file is no longer in your account. Reload the page to see your files.")
            .of_kind(ErrorKind::NotStored));
    }
    let replicas: Vec<Replica> = state
        .db
        .placements_of(&cid)
        .await?
        .into_iter()
        .map(|p| Replica { node: p.node_id, state: p.state, stored_at: p.stored_at })
        .collect();
    let stored = replicas.iter().filter(|r| r.state == "stored").count() as i64;
    Ok(FileStatus { cid, wanted: state.settings.replicas, stored, local_copy: true, replicas })
}
