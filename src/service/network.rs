//! The storage network, coordinator side (docs/NETWORK.md): nodes poll for
//! work, fetch the objects placed on them, say when they hold them and
//! prove it under audit; a loop places every stored object on `replicas`
//! distinct nodes, audits the replicas, pays storage coins for the ones
//! that pass, and repairs what silent or failing nodes lost.
//!
//! A node is an account that signed in with its device token
//! (`/android_auth`): one account, one node.

use super::download::{self, Content, Format};
use super::files::parse_cid;
use super::{Principal, Services};
use crate::error::{AppError, AppResult};
use crate::service::tokens::TokenKind;
use crate::model::{NetworkStatus, NodeStatus, StorageCredit};
use crate::store::db::{AuditRules, DueAudit, Finished, Settled, TaskRow, Verdict};
use futures::StreamExt;
use std::time::Duration;

/// A task as `/node/work` hands it out.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Task {
    /// Opaque; send it back with the answer.
    pub id: String,
    /// `store` (fetch `/node/content/{cid}`, verify, keep, then `/node/done`),
    /// `audit` (send the raw bytes of `block` to `/node/proof/{id}` before
    /// `deadline`), `retrieve` (stream the object's CAR to
    /// `/node/deliver/{id}`) or `drop` (delete the object, then `/node/done`).
    pub kind: String,
    pub cid: String,
    /// The object's size in bytes.
    pub size: i64,
    /// Audits: the CID of the leaf to send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<String>,
    /// Audits: the answer must arrive before this (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<i64>,
}

impl From<TaskRow> for Task {
    fn from(t: TaskRow) -> Self {
        Self { id: t.id.to_string(), kind: t.kind, cid: t.cid, size: t.size, block: t.block, deadline: t.deadline }
    }
}

/// The node protocol takes device tokens only: a node is a device.
pub(super) fn require_node(who: &Principal) -> AppResult<()> {
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

/// Nodes that polled at or after this are online (`now` minus the offline time).
fn online_since(state: &Services, now: i64) -> i64 {
    now - state.settings.node_offline_secs.saturating_mul(1000)
}

/// `POST /node/work`: marks the node online and answers its open tasks as
/// soon as there is one, or an empty list once `wait` seconds have passed.
pub async fn work(state: &Services, who: &Principal, wait_secs: f64, free_bytes: i64) -> AppResult<Vec<Task>> {
    require_node(who)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(wait_secs.clamp(0.0, max_wait_secs(state)));
    // The node's opaque id, should this be its first poll.
    let new_node_id = crate::util::random_hex(8);
    // Once per poll: a poll lasts at most a third of the offline time.
    state.db.node_polled(who.user_id, &new_node_id, free_bytes, state.clock.now_ms(), &state.instance).await?;
    loop {
        // Registered before the look, so a task made meanwhile wakes this poll.
        let woken = state.network_wake.notified();
        let tasks = state.db.open_tasks(who.user_id).await?;
        if !tasks.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(tasks.into_iter().map(Task::from).collect());
        }
        // Tasks made by another instance are seen at the next look.
        let _ = tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + Duration::from_secs(1)), woken).await;
    }
}

pub(super) fn task_id(text: &str) -> AppResult<i64> {
    text.trim().parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| AppError::not_found("Task not found"))
}

/// `POST /node/done` and `/node/failed`: the node's answer to one of its
/// tasks. Repeating an answer changes nothing; answering a finished task
/// the other way is a conflict; an unknown or foreign task is not found.
pub async fn finish(state: &Services, who: &Principal, id: &str, ok: bool) -> AppResult<()> {
    require_node(who)?;
    let task = task_id(id)?;
    let now = state.clock.now_ms();
    let first_audit_at = now.saturating_add(state.settings.audit_interval_secs.saturating_mul(1000));
    match state.db.finish_task(who.user_id, task, ok, now, first_audit_at).await? {
        Finished::Now => {
            tracing::info!(node_user = who.user_id, task = id, ok, "task finished");
            if !ok {
                // A failed store leaves the object short of a replica: place it again soon.
                state.network_wake.notify_waiters();
                // A failed retrieve: the download waiting for it asks the next node now.
                drop(state.deliveries.take(task));
            }
            Ok(())
        }
        Finished::Already => Ok(()),
        Finished::Conflict => Err(AppError::conflict("Task was already answered otherwise")),
        Finished::NotFetched => Err(AppError::conflict("The content was not fetched: read /node/content/{cid} first")),
        Finished::Unknown => Err(AppError::not_found("Task not found")),
        Finished::Audit if ok => Err(AppError::conflict("An audit is answered with its block at /node/proof/{id}")),
        Finished::Audit => {
            // The node says it cannot prove it: a failure, at once.
            let audit = state.db.audit_of_task(who.user_id, task).await?.ok_or_else(|| AppError::not_found("Task not found"))?;
            match settle(state, audit.id, Verdict::Failed).await? {
                Settled::Already if audit.outcome == "failed" => Ok(()),
                Settled::Already => Err(AppError::conflict("Task was already answered otherwise")),
                _ => Ok(()),
            }
        }
    }
}

fn audit_rules(state: &Services) -> AuditRules {
    AuditRules {
        interval_ms: state.settings.audit_interval_secs.saturating_mul(1000),
        max_failures: state.settings.audit_max_failures,
        coin_rate: state.settings.storage_coin_rate,
    }
}

/// Settles an audit and logs what it did; a lost placement wakes the loop.
async fn settle(state: &Services, audit_id: i64, verdict: Verdict) -> AppResult<Settled> {
    let settled = state.db.settle_audit(audit_id, verdict, state.clock.now_ms(), audit_rules(state)).await?;
    match settled {
        Settled::Already => {}
        Settled::Paid(coins) => tracing::info!(audit = audit_id, coins, "audit passed"),
        Settled::Failed { lost } => {
            tracing::warn!(audit = audit_id, ?verdict, lost, "audit failed");
            if lost {
                state.network_wake.notify_waiters();
            }
        }
    }
    Ok(settled)
}

/// The largest proof read: a leaf is at most 1 MiB; room for more is not given.
pub const MAX_PROOF_BYTES: usize = 1 << 20;

/// `POST /node/proof/{id}`: the node's answer to an audit, the raw bytes
/// of the block it was asked for. The bytes must hash to the block's CID
/// and arrive before the deadline; anything else is a failed audit.
pub async fn proof(state: &Services, who: &Principal, id: &str, block: &[u8]) -> AppResult<()> {
    require_node(who)?;
    let task = task_id(id)?;
    let audit = state.db.audit_of_task(who.user_id, task).await?.ok_or_else(|| AppError::not_found("Audit not found"))?;
    if audit.outcome != "open" {
        return Err(AppError::conflict("Audit was already answered"));
    }
    if state.clock.now_ms() > audit.deadline {
        settle(state, audit.id, Verdict::Late).await?;
        return Err(AppError::conflict("Audit deadline has passed"));
    }
    let matches = crate::content::parse_cid(&audit.block).is_ok_and(|cid| cid.verifies(block));
    let verdict = if matches { Verdict::Passed } else { Verdict::Failed };
    match settle(state, audit.id, verdict).await? {
        Settled::Already => Err(AppError::conflict("Audit was already answered")),
        _ if !matches => Err(AppError::new(422, "Proof does not match the block")),
        _ => Ok(()),
    }
}

/// `GET /node/content/{cid}`: the CAR of an object placed on this node
/// (and only such an object: a node cannot fetch what it was not given).
pub async fn content(state: &Services, who: &Principal, cid: &str, with_body: bool) -> AppResult<Content> {
    require_node(who)?;
    let cid = parse_cid(cid)?.to_string();
    let not_placed = || AppError::not_found("No such object is placed on this node");
    let placement = state.db.placement_on(who.user_id, &cid).await?.ok_or_else(not_placed)?;
    let size = state.db.blob_size(&cid).await?.ok_or_else(not_placed)?;
    // The node's downloads take slots as any client's, under its account.
    let reader = format!("node {}", who.user_id);
    let target = download::Target { cid: &cid, size: size.max(0) as u64, block: None };
    let mut opened = download::open_object(state, target, Format::Car(crate::content::CarOptions::IPFS_CAR), None, with_body.then_some(reader.as_str()), None).await?;
    if let Some(body) = opened.body.take() {
        // Marked before the last bytes go out (the stream has a known
        // length, so its end is never polled): a store task is done only
        // after the node read every block.
        let (db, clock, total) = (state.db.clone(), state.clock.clone(), opened.len);
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let marked = body.then(move |chunk: std::io::Result<bytes::Bytes>| {
            let (db, clock, seen) = (db.clone(), clock.clone(), seen.clone());
            async move {
                if let Ok(bytes) = &chunk {
                    let before = seen.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::SeqCst);
                    if before + bytes.len() as u64 == total {
                        db.mark_fetched(placement, clock.now_ms()).await.map_err(std::io::Error::other)?;
                    }
                }
                chunk
            }
        });
        opened.body = Some(Box::pin(marked));
    }
    Ok(opened)
}

/// One round of the network loop: placements of silent nodes are lost,
/// overdue audits fail, every object short of replicas is placed on more
/// nodes, stale and orphaned replicas get drop tasks, due audits are
/// opened. Returns how many tasks were made.
pub async fn place_round(state: &Services) -> AppResult<u64> {
    let now = state.clock.now_ms();
    let online_since = online_since(state, now);
    let lost = state.db.lose_silent_placements(now - state.settings.repair_after_secs.saturating_mul(1000)).await?;
    if lost > 0 {
        tracing::warn!(placements = lost, "placements of silent nodes lost");
    }
    for audit in state.db.overdue_audits(now, 500).await? {
        settle(state, audit, Verdict::Late).await?;
    }
    let mut made = 0;
    for cid in state.db.underplaced(state.settings.replicas, 500).await? {
        made += state.db.place(&cid, state.settings.replicas, online_since, now).await?;
    }
    // Replicas of objects no longer stored go from their nodes.
    for placement in state.db.orphaned_placements(500).await? {
        made += u64::from(state.db.schedule_drop(placement, now).await?);
    }
    // Copies a node lost (silent too long, or failing audits) go once it is back.
    for placement in state.db.stale_placements(online_since, 500).await? {
        made += u64::from(state.db.schedule_drop(placement, now).await?);
    }
    // Every due audit, in batches (a batch whose audits another instance
    // claimed first opens fewer; the loop ends on a short batch).
    let mut leaves_of: std::collections::HashMap<String, Vec<String>> = Default::default();
    loop {
        let batch = state.db.due_audits(now, AUDIT_BATCH).await?;
        let full = batch.len() as i64 == AUDIT_BATCH;
        let mut opened = 0;
        for due in batch {
            match open_audit(state, &due, now, &mut leaves_of).await {
                Ok(made) => opened += u64::from(made),
                // One object that cannot be read holds up no other audit.
                Err(e) => tracing::warn!(cid = %due.cid, error = %e.message, "audit not opened"),
            }
        }
        made += opened;
        if !full || opened == 0 {
            break;
        }
    }
    if !state.settings.keep_local_copy {
        for cid in state.db.releasable_copies(state.settings.replicas, 100, state.clock.now_ms()).await? {
            release_local_copy(state, &cid).await?;
        }
    }
    if made > 0 {
        tracing::info!(tasks = made, "tasks made for nodes");
        state.network_wake.notify_waiters();
    }
    Ok(made)
}

/// Removes the coordinator's own copy of `cid` (its replicas are stored
/// and audited): the block index stays, downloads come from nodes. Under
/// the CID's lock, so no upload or delete of the same content interleaves.
async fn release_local_copy(state: &Services, cid: &str) -> AppResult<()> {
    let _guard = state.cid_locks.lock(&state.db, cid).await?;
    let Some(size) = state.db.blob_size(cid).await? else { return Ok(()) };
    download::index_of(state, cid, size.max(0) as u64).await?;
    if state.db.drop_local_copy(cid, state.clock.now_ms()).await? {
        let (blobs, key) = (state.blobs.clone(), cid.to_owned());
        tokio::task::spawn_blocking(move || blobs.remove(&key)).await.map_err(AppError::internal)?.map_err(AppError::storage)?;
        tracing::info!(%cid, "local copy removed: served from the network");
    }
    Ok(())
}

/// Due audits looked up at once.
const AUDIT_BATCH: i64 = 500;

/// Opens an audit of `due` on a uniformly random leaf of its block index
/// (the leaves of each object read once per round, into `leaves_of`).
async fn open_audit(
    state: &Services,
    due: &DueAudit,
    now: i64,
    leaves_of: &mut std::collections::HashMap<String, Vec<String>>,
) -> AppResult<bool> {
    if !leaves_of.contains_key(&due.cid) {
        let index = download::index_of(state, &due.cid, due.size.max(0) as u64).await?;
        leaves_of.insert(due.cid.clone(), index.leaves().map(|l| l.cid.to_string()).collect());
    }
    let leaves = &leaves_of[&due.cid];
    let pick = {
        use rand::Rng;
        rand::thread_rng().gen_range(0..leaves.len().max(1))
    };
    let Some(block) = leaves.get(pick) else { return Ok(false) };
    let deadline = now.saturating_add(state.settings.audit_deadline_secs.saturating_mul(1000));
    Ok(state.db.open_audit(due, block, deadline, now).await?)
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
    /// When it was last audited (ms since the epoch), if it was.
    pub last_audit_at: Option<i64>,
    /// Whether that audit passed.
    pub last_audit_ok: Option<bool>,
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
        return Err(super::files::not_stored());
    }
    let replicas: Vec<Replica> = state
        .db
        .placements_of(&cid)
        .await?
        .into_iter()
        .map(|p| Replica {
            node: p.node_id,
            state: p.state,
            stored_at: p.stored_at,
            last_audit_at: p.last_audit_at,
            last_audit_ok: p.last_audit_ok,
        })
        .collect();
    let stored = replicas.iter().filter(|r| r.state == "stored").count() as i64;
    let local_copy = state.db.has_local_copy(&cid).await?.unwrap_or(false);
    Ok(FileStatus { cid, wanted: state.settings.replicas, stored, local_copy, replicas })
}

const THIRTY_DAYS_MS: i64 = 30 * 86_400_000;

/// The figures of the account's node (zeros for an account that is no node) and of the network.
pub async fn node_status(state: &Services, user_id: i64) -> AppResult<NodeStatus> {
    let now = state.clock.now_ms();
    let figures = state.db.node_figures(user_id).await?;
    let tally = state.db.audit_tally(user_id, now - THIRTY_DAYS_MS).await?;
    let credits = state.db.storage_credits(user_id, 50).await?;
    let network = state.db.network_figures(online_since(state, now)).await?;
    Ok(NodeStatus {
        node: figures.node_id,
        held_bytes: figures.held_bytes,
        placements: figures.placements,
        audits_passed: tally.passed,
        audits_total: tally.total,
        audit_score: (tally.total > 0).then(|| tally.passed as f64 / tally.total as f64),
        storage_coins: figures.storage_coins,
        uptime_coins: figures.uptime_coins,
        storage_credits: credits
            .into_iter()
            .map(|c| StorageCredit { cid: c.cid, bytes: c.bytes, from_ms: c.from_ms, to_ms: c.to_ms, rate: c.coin_rate, coins: c.coins })
            .collect(),
        network: NetworkStatus { nodes_online: network.nodes_online, pledged_mb: network.pledged_mb, placed_bytes: network.placed_bytes },
    })
}
