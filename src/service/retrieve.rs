//! Serving an object the coordinator keeps no copy of (docs/NETWORK.md,
//! `PEERVAULT_KEEP_LOCAL_COPY=false`): a `retrieve` task asks an online
//! node holding a replica to stream its CAR as the body of
//! `POST /node/deliver/{id}`. The download waiting for it reads that body
//! as a stream of blocks, each checked against its CID and against the
//! object's block index (the same order, the same CIDs) before a byte of it
//! is handed on; on a mismatch, an early end or a stall it asks the next
//! holder and goes on from the first byte not yet handed on. Nodes only
//! make outbound requests: the node connects, the download waits for it.
//!
//! With several coordinator instances a node delivers to the instance it
//! polls. When that is not the one whose download waits, the receiving
//! instance checks the delivery the same way and restores the object into
//! the shared blob store; the waiting download sees the task done and reads
//! that copy (kept `RESTORED_KEEP_SECS` before it may be released again).

use super::Services;
use crate::clock::Clock;
use crate::content::{BlockIndex, CarReader, ContentCid, PlannedBlock};
use crate::error::{AppError, AppResult};
use crate::store::blobs::BlobStore;
use crate::store::Db;
use bytes::Bytes;
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};

/// What a node's delivery hands the waiting download: the body as it
/// arrives, and where to say whether it checked out.
pub struct Delivery {
    pub chunks: mpsc::Receiver<io::Result<Bytes>>,
    pub verdict: oneshot::Sender<bool>,
}

/// Downloads waiting for a node to connect, by retrieve task id (this
/// instance only: a node delivers to the instance it polls).
#[derive(Default)]
pub struct Deliveries(Mutex<HashMap<i64, oneshot::Sender<Delivery>>>);

impl Deliveries {
    fn wait_for(&self, task: i64) -> oneshot::Receiver<Delivery> {
        let (tx, rx) = oneshot::channel();
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(task, tx);
        rx
    }

    fn forget(&self, task: i64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&task);
    }

    /// The download waiting for `task`, if one still is.
    pub fn take(&self, task: i64) -> Option<oneshot::Sender<Delivery>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&task)
    }
}

/// What asking nodes for an object needs, owned, so the blocking reader of
/// a download can ask the next node itself.
#[derive(Clone)]
struct Retriever {
    db: Db,
    clock: Arc<Clock>,
    deliveries: Arc<Deliveries>,
    wake: Arc<Notify>,
    instance: Arc<str>,
    blobs: Arc<dyn BlobStore>,
    offline_ms: i64,
    wait: Duration,
}

/// What asking a holder gave.
enum Connected {
    /// The node connected here: its delivery.
    Node(i64, Delivery),
    /// The node delivered to another instance, which restored the object
    /// into the shared blob store.
    Restored,
}

/// How often a download waiting for a node looks at its task (a delivery
/// here wakes it at once; a restore at another instance is seen this way).
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// A node streaming the object's CAR, as a CAR reader.
struct Source {
    node_user: i64,
    /// The body until its header is read (in the blocking reader), then the CAR reader.
    unread: Option<ChunkReader>,
    car: Option<CarReader<io::BufReader<ChunkReader>>>,
    verdict: Option<oneshot::Sender<bool>>,
    /// The next block of the index this source must send.
    next: usize,
}

impl Source {
    fn end(&mut self, ok: bool) {
        if let Some(v) = self.verdict.take() {
            let _ = v.send(ok);
        }
    }
}

impl Retriever {
    fn of(state: &Services) -> Self {
        Self {
            db: state.db.clone(),
            clock: state.clock.clone(),
            deliveries: state.deliveries.clone(),
            wake: state.network_wake.clone(),
            instance: state.instance.clone(),
            blobs: state.blobs.clone(),
            offline_ms: state.settings.node_offline_secs.saturating_mul(1000),
            wait: Duration::from_secs(state.settings.retrieve_wait_secs),
        }
    }

    /// Asks the holders of `cid` not yet `tried`, oldest replica first
    /// (nodes polling this instance before others), until one connects
    /// within the wait. `None` when none did.
    async fn connect(&self, cid: &str, root: &ContentCid, tried: &mut Vec<i64>) -> AppResult<Option<Connected>> {
        let now = self.clock.now_ms();
        let holders = self.db.holders(cid, now - self.offline_ms, &self.instance).await?;
        for holder in holders {
            if tried.contains(&holder.node_user) {
                continue;
            }
            tried.push(holder.node_user);
            let task = self.db.open_retrieve(&holder, cid, self.clock.now_ms(), &self.instance).await?;
            let arrived = self.deliveries.wait_for(task);
            self.wake.notify_waiters();
            match self.arrival(task, holder.node_user, arrived).await? {
                Some(connected) => {
                    let restored = matches!(connected, Connected::Restored);
                    tracing::info!(%cid, %root, task, node_user = holder.node_user, restored, "a node delivers");
                    return Ok(Some(connected));
                }
                None => {
                    self.deliveries.forget(task);
                    self.db.end_task(task, "cancelled").await?;
                    tracing::warn!(%cid, task, node_user = holder.node_user, "a node holding the object did not deliver it in time");
                }
            }
        }
        Ok(None)
    }

    /// Waits for retrieve task `task`: its delivery here, or its restore at
    /// another instance; `None` when neither began within the wait, a
    /// restore stopped moving that long, or the task ended otherwise.
    async fn arrival(&self, task: i64, node_user: i64, mut arrived: oneshot::Receiver<Delivery>) -> AppResult<Option<Connected>> {
        let mut moved = tokio::time::Instant::now();
        let mut progress = 0;
        loop {
            tokio::select! {
                got = &mut arrived => return Ok(got.ok().map(|d| Connected::Node(node_user, d))),
                _ = tokio::time::sleep(LOOK_EVERY) => {}
            }
            match self.db.task_state(task).await? {
                Some((state, _)) if state == "done" => return Ok(Some(Connected::Restored)),
                Some((state, now)) if state == "restoring" || state == "open" => {
                    if now != progress {
                        (progress, moved) = (now, tokio::time::Instant::now());
                    }
                }
                _ => return Ok(None),
            }
            if moved.elapsed() > self.wait {
                return Ok(None);
            }
        }
    }
}

/// The body of a delivery as `Read`; a pause longer than `wait` is an error.
struct ChunkReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    left: Bytes,
    runtime: tokio::runtime::Handle,
    wait: Duration,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.left.is_empty() {
            match self.runtime.block_on(tokio::time::timeout(self.wait, self.chunks.recv())) {
                Ok(Some(Ok(bytes))) => self.left = bytes,
                Ok(Some(Err(e))) => return Err(e),
                Ok(None) => return Ok(0),
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "the node stalled")),
            }
        }
        let n = out.len().min(self.left.len());
        out[..n].copy_from_slice(&self.left[..n]);
        self.left = self.left.slice(n..);
        Ok(n)
    }
}

/// Bytes `from..to` of the object (leaf boundaries), read from nodes and
/// checked block by block; what [`super::download`] reads instead of the
/// local copy.
pub struct NetworkReader {
    retriever: Retriever,
    runtime: tokio::runtime::Handle,
    cid: String,
    root: ContentCid,
    index: Arc<BlockIndex>,
    /// The next byte of the object to hand on, and the end.
    pos: u64,
    to: u64,
    tried: Vec<i64>,
    source: Option<Source>,
    /// Another instance restored the object: the rest is read from the blob store.
    restored: Option<Box<dyn Read + Send>>,
    /// Whether a failed source is followed by the next holder (not when restoring).
    fall_back: bool,
    pending: Bytes,
    block: Vec<u8>,
}

/// Opens bytes `from..to` of `cid` from the network: 503 `Content
/// temporarily unavailable` when no node holding it connects.
pub async fn open(state: &Services, cid: &str, index: Arc<BlockIndex>, from: u64, to: u64) -> AppResult<NetworkReader> {
    let mut reader = NetworkReader::new(state, cid, index, from, to)?;
    match reader.retriever.connect(&reader.cid, &reader.root, &mut reader.tried).await? {
        Some(first) => {
            let blobs = reader.retriever.blobs.clone();
            reader = tokio::task::spawn_blocking(move || reader.use_source(first, &*blobs).map(|()| reader))
                .await
                .map_err(AppError::internal)?
                .map_err(AppError::storage)?;
            Ok(reader)
        }
        None => Err(AppError::new(503, "Content temporarily unavailable")),
    }
}

/// Opens more spans of one object from the network, from a blocking
/// thread (a folder's files are read where each one is).
pub struct Opener {
    retriever: Retriever,
    runtime: tokio::runtime::Handle,
    cid: String,
    index: Arc<BlockIndex>,
}

/// An [`Opener`] of `cid`'s spans (made on the runtime).
pub fn opener(state: &Services, cid: &str, index: Arc<BlockIndex>) -> Opener {
    Opener { retriever: Retriever::of(state), runtime: tokio::runtime::Handle::current(), cid: cid.to_owned(), index }
}

impl Opener {
    /// Bytes `from..to` of the object, as [`open`] gives them; blocks this
    /// thread (never call it on the runtime) until a node connects.
    pub fn open_blocking(&self, from: u64, to: u64) -> io::Result<NetworkReader> {
        let mut reader = NetworkReader::with(self.retriever.clone(), self.runtime.clone(), &self.cid, self.index.clone(), from, to)
            .map_err(|e| io::Error::other(e.message))?;
        let first = self
            .runtime
            .block_on(reader.retriever.connect(&reader.cid, &reader.root, &mut reader.tried))
            .map_err(|e| io::Error::other(e.message))?
            .ok_or_else(|| io::Error::other("Content temporarily unavailable"))?;
        let blobs = reader.retriever.blobs.clone();
        reader.use_source(first, &*blobs)?;
        Ok(reader)
    }
}

impl NetworkReader {
    fn new(state: &Services, cid: &str, index: Arc<BlockIndex>, from: u64, to: u64) -> AppResult<Self> {
        Self::with(Retriever::of(state), tokio::runtime::Handle::current(), cid, index, from, to)
    }

    fn with(retriever: Retriever, runtime: tokio::runtime::Handle, cid: &str, index: Arc<BlockIndex>, from: u64, to: u64) -> AppResult<Self> {
        Ok(NetworkReader {
            retriever,
            runtime,
            cid: cid.to_owned(),
            root: crate::content::parse_cid(cid).map_err(AppError::internal)?,
            index,
            pos: from,
            to,
            tried: Vec::new(),
            source: None,
            restored: None,
            fall_back: true,
            pending: Bytes::new(),
            block: Vec::new(),
        })
    }

    /// Reads on from `next` (blocking: opening a restored copy reads the blob store).
    fn use_source(&mut self, next: Connected, blobs: &dyn BlobStore) -> io::Result<()> {
        match next {
            Connected::Node(node_user, delivery) => {
                let reader = ChunkReader { chunks: delivery.chunks, left: Bytes::new(), runtime: self.runtime.clone(), wait: self.retriever.wait };
                // The header is read on the first block, in the blocking reader.
                self.source = Some(Source { node_user, unread: Some(reader), car: None, verdict: Some(delivery.verdict), next: 0 });
            }
            Connected::Restored => {
                let copy = blobs.open_range(&self.cid, self.pos, self.to - self.pos)?;
                self.restored = Some(copy.ok_or_else(|| io::Error::other("the restored copy is gone"))?);
            }
        }
        Ok(())
    }

    /// The next block from the current source into `pending` (the part of
    /// a leaf not handed on yet), checked; an error means this source failed.
    fn advance(&mut self) -> io::Result<()> {
        let source = self.source.as_mut().ok_or_else(|| io::Error::other("no source"))?;
        if let Some(body) = source.unread.take() {
            let car = CarReader::new(io::BufReader::with_capacity(1 << 20, body))?;
            if car.root() != &self.root {
                return Err(invalid("the node's CAR has another root"));
            }
            source.car = Some(car);
        }
        let car = source.car.as_mut().ok_or_else(|| io::Error::other("no source"))?;
        let got = car.next_block(&mut self.block)?.ok_or_else(|| invalid("the node's CAR ended early"))?;
        let expected = self.index.blocks().get(source.next).ok_or_else(|| invalid("the node's CAR has more blocks than the object"))?;
        source.next += 1;
        match expected {
            PlannedBlock::Leaf { cid, offset, len } => {
                if &got != cid {
                    return Err(invalid("the node sent another block than the object's next"));
                }
                let end = (offset + len).min(self.to);
                if end > self.pos && *offset <= self.pos {
                    let a = (self.pos - offset) as usize;
                    self.pending = Bytes::copy_from_slice(&self.block[a..(end - offset) as usize]);
                }
                Ok(())
            }
            PlannedBlock::Node(node) if got == node.cid => Ok(()),
            PlannedBlock::Node(_) => Err(invalid("the node sent another block than the object's next")),
        }
    }

    /// The current source failed: say so, ask the next holder.
    fn fall_back(&mut self, why: io::Error) -> io::Result<()> {
        if let Some(mut failed) = self.source.take() {
            tracing::warn!(cid = %self.cid, node_user = failed.node_user, error = %why, "delivery failed");
            failed.end(false);
        }
        if !self.fall_back {
            return Err(why);
        }
        let (retriever, runtime) = (self.retriever.clone(), self.runtime.clone());
        let (cid, root) = (self.cid.clone(), self.root.clone());
        let next = runtime
            .block_on(retriever.connect(&cid, &root, &mut self.tried))
            .map_err(|e| io::Error::other(e.message))?
            .ok_or_else(|| io::Error::other("no node holding the object could deliver it"))?;
        self.use_source(next, &*retriever.blobs)
    }
}

impl Read for NetworkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(copy) = self.restored.as_mut() {
                let want = out.len().min(usize::try_from(self.to - self.pos).unwrap_or(usize::MAX));
                let n = copy.read(&mut out[..want])?;
                if n == 0 && want > 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the restored copy ended early"));
                }
                self.pos += n as u64;
                return Ok(n);
            }
            if !self.pending.is_empty() {
                let n = out.len().min(self.pending.len());
                out[..n].copy_from_slice(&self.pending[..n]);
                self.pending = self.pending.slice(n..);
                self.pos += n as u64;
                return Ok(n);
            }
            if self.pos >= self.to {
                if let Some(source) = self.source.as_mut() {
                    source.end(true);
                }
                return Ok(0);
            }
            if let Err(e) = self.advance() {
                self.fall_back(e)?;
            }
        }
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// `POST /node/deliver/{id}`: a node streams the CAR its retrieve task
/// asked for; the download waiting for it reads and checks it, or, when
/// that download waits at another instance, this one restores the object
/// from it. Answers whether the delivery checked out (as far as it was read).
pub async fn deliver<S, E>(state: &Services, who: &super::Principal, id: &str, body: S) -> AppResult<bool>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    super::network::require_node(who)?;
    let task = super::network::task_id(id)?;
    let row = match state.db.task_of(who.user_id, task).await? {
        None => return Err(AppError::not_found("Task not found")),
        Some(row) if row.kind != "retrieve" => return Err(AppError::conflict("Only a retrieve task is answered with a delivery")),
        Some(row) if row.state != "open" => return Err(AppError::conflict("Task was already answered")),
        Some(row) => row,
    };
    let gone = || AppError::conflict("Nobody is waiting for this delivery any more");
    let Some(waiting) = state.deliveries.take(task) else {
        if row.instance.as_deref().is_some_and(|i| i != &*state.instance) {
            return restore(state, who, task, &row.cid, body).await;
        }
        state.db.end_task(task, "cancelled").await?;
        return Err(gone());
    };
    let (tx, delivery) = delivery();
    let checked = match waiting.send(delivery.0) {
        Ok(()) => delivery.1,
        Err(_) => {
            state.db.end_task(task, "cancelled").await?;
            return Err(gone());
        }
    };
    let outcome = pump(body, tx, checked, None).await;
    // None: the download went away (its client left): nobody's fault.
    let end = match outcome {
        Some(true) => "done",
        Some(false) => "failed",
        None => "cancelled",
    };
    state.db.end_task(task, end).await?;
    Ok(outcome != Some(false))
}

/// A delivery's two ends: where its body goes, and the delivery with the
/// reader's verdict.
#[allow(clippy::type_complexity)]
fn delivery() -> (mpsc::Sender<io::Result<Bytes>>, (Delivery, oneshot::Receiver<bool>)) {
    // Room for a few MiB of the body while the reader checks blocks.
    let (tx, chunks) = mpsc::channel(256);
    let (verdict, checked) = oneshot::channel();
    (tx, (Delivery { chunks, verdict }, checked))
}

/// Hands the body on until the reader has what it needs (or it ends); the
/// reader's verdict ends the delivery (`None`: the reader went away).
/// While restoring, counts progress on the task every second.
async fn pump<S, E>(mut body: S, tx: mpsc::Sender<io::Result<Bytes>>, mut checked: oneshot::Receiver<bool>, restoring: Option<(&Services, i64)>) -> Option<bool>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    use futures::StreamExt;
    let mut tx = Some(tx);
    let mut beat = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            v = &mut checked => return v.ok(),
            _ = beat.tick(), if restoring.is_some() => {
                if let Some((state, task)) = restoring {
                    if let Err(e) = state.db.touch_restore(task, false).await {
                        tracing::warn!(task, error = %e, "restore progress not recorded");
                    }
                }
            }
            chunk = body.next(), if tx.is_some() => {
                let Some(sender) = tx.as_ref() else { continue };
                match chunk {
                    Some(Ok(bytes)) => {
                        if sender.send(Ok(bytes)).await.is_err() {
                            tx = None;
                        }
                    }
                    Some(Err(e)) => {
                        let _ = sender.send(Err(io::Error::other(e.to_string()))).await;
                        tx = None;
                    }
                    None => tx = None,
                }
            }
        }
    }
}

/// A delivery for a download waiting at another instance: every block is
/// checked as for a download, the object written to the (shared) blob
/// store and marked kept again; the waiting instance sees the task done.
async fn restore<S, E>(state: &Services, who: &super::Principal, task: i64, cid: &str, body: S) -> AppResult<bool>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if !state.db.touch_restore(task, true).await? {
        return Err(AppError::conflict("Task was already answered"));
    }
    // No upload or delete of the same content meanwhile.
    let guard = state.cid_locks.lock(&state.db, cid).await?;
    let Some(size) = state.db.blob_size(cid).await? else {
        state.db.end_task(task, "cancelled").await?;
        return Err(AppError::conflict("Nobody is waiting for this delivery any more"));
    };
    let size = size.max(0) as u64;
    let index = Arc::new(super::download::index_of(state, cid, size).await?);
    let mut reader = NetworkReader::new(state, cid, index, 0, size)?;
    reader.fall_back = false;
    let (tx, (first, checked)) = delivery();
    reader.use_source(Connected::Node(who.user_id, first), &*state.blobs).map_err(AppError::internal)?;
    let (blobs, key) = (state.blobs.clone(), cid.to_owned());
    let writing = tokio::task::spawn_blocking(move || -> io::Result<()> {
        let mut staged = blobs.stage()?;
        io::copy(&mut reader, &mut staged)?;
        staged.commit(&key)
    });
    let outcome = pump(body, tx, checked, Some((state, task))).await;
    let written = writing.await.map_err(AppError::internal)?;
    let ok = match (outcome, written) {
        (Some(true), Ok(())) => {
            let until = state.clock.now_ms().saturating_add(state.settings.restored_keep_secs.saturating_mul(1000));
            state.db.restore_local_copy(cid, until).await?;
            tracing::info!(%cid, task, node_user = who.user_id, "restored from a node for a download at another instance");
            true
        }
        // The node's CAR did not check out.
        (Some(false), _) => false,
        // This instance could not write the copy: not the node's fault.
        (_, Err(e)) => {
            state.db.end_task(task, "cancelled").await?;
            return Err(AppError::storage(e));
        }
        (None, Ok(())) => {
            state.db.end_task(task, "cancelled").await?;
            return Err(AppError::internal("the restore ended without a verdict"));
        }
    };
    drop(guard);
    state.db.end_task(task, if ok { "done" } else { "failed" }).await?;
    Ok(ok)
}
