//! Serving stored content: a file's bytes (whole or one range), its CAR, or
//! one block of its DAG (the root unless another is asked for). Everything is read through the object's block index and
//! checked block by block against its CID (a stored block that does not
//! match ends the body with an error: wrong bytes are never sent), as a
//! stream that counts what it served to the owner before its last byte.

use super::files::Download;
use crate::content::{BlockIndex, CarOptions, CarWriter, ContentCid, Dag, Importer, LeafSpan, Params, PlanError, RootBlock, Step};
use crate::error::{AppError, AppResult};
use super::Services;
use crate::store::Db;
use bytes::Bytes;
use futures::Stream;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a download link can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The file's bytes.
    Bytes,
    /// A CAR of the block asked for (the root unless another is) and what
    /// is below it, as the options ask; `CarOptions::IPFS_CAR` is
    /// byte-identical to what ipfs-car writes.
    Car(CarOptions),
    /// One block (the root unless another is asked for).
    Raw,
}

pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// An opened download: its length and (unless only the length was asked
/// for) its body.
pub struct Content {
    pub len: u64,
    pub body: Option<ByteStream>,
}

/// What a request names inside a stored object: the block (the root, a
/// block of its DAG, or where a path leads), and what that is.
#[derive(Clone)]
pub struct Located {
    index: Arc<BlockIndex>,
    /// The stored object.
    pub root: ContentCid,
    /// The block asked for, where the path started.
    pub start: ContentCid,
    /// Where the path led (`start` without one).
    pub target: ContentCid,
    /// `start` and the block each name of the path led to (the path's
    /// logical roots, for `X-Ipfs-Roots`).
    pub roots: Vec<ContentCid>,
    /// True for a directory (a UnixFS directory or HAMT shard).
    pub directory: bool,
    /// The bytes of the target's content (a file's size).
    pub size: u64,
}

/// Finds what a checked link and `path` (names, no empty ones) name in
/// the stored object: 404 `No such path in this folder` for a path that
/// leads nowhere.
pub async fn locate(state: &Services, download: &Download, path: &[&str]) -> AppResult<Located> {
    let file = &download.file;
    locate_object(state, &file.cid, file.size.max(0) as u64, download.block.as_ref(), path).await
}

/// [`locate`] in the object `cid` of `size` bytes, from `block` (the root when `None`).
pub async fn locate_object(state: &Services, cid: &str, size: u64, block: Option<&ContentCid>, path: &[&str]) -> AppResult<Located> {
    let index = Arc::new(index_of(state, cid, size).await?);
    let root = crate::service::files::parse_cid(cid)?;
    if index.root() != Some(&root) {
        return Err(AppError::internal(format!("the block index of {root} names another root")));
    }
    let start = block.cloned().unwrap_or_else(|| root.clone());
    if index.block(&start).is_none() {
        return Err(AppError::not_found("Block not found"));
    }
    let (target, roots, directory, entity) = {
        let dag = Dag::of(&index).map_err(plan_error)?;
        let resolved = dag.resolve(&start, path).map_err(plan_error)?;
        let roots = std::iter::once(start.clone()).chain(resolved.named).collect();
        let target = resolved.target;
        let directory = dag.is_directory(&target);
        let entity = if target == root && !directory { size } else { dag.size_of(&target).unwrap_or(0) };
        (target, roots, directory, entity)
    };
    Ok(Located { index, root, start, target, roots, directory, size: entity })
}

/// The entries of a located directory: name, CID, bytes, directory or not.
pub fn entries(located: &Located) -> AppResult<Vec<(String, ContentCid, u64, bool)>> {
    let dag = Dag::of(&located.index).map_err(plan_error)?;
    dag.entries(&located.target).ok_or_else(|| AppError::bad_request("Not a folder"))
}

fn plan_error(e: PlanError) -> AppError {
    match e {
        PlanError::NotInDag => AppError::not_found("Block not found"),
        PlanError::NoSuchPath => AppError::not_found("No such path in this folder"),
        PlanError::OutOfRange => AppError::bad_request("entity-bytes starts past the end of the file"),
        PlanError::Broken(why) => AppError::internal(format!("block index: {why}")),
    }
}

/// Opens `format` of what `located` names, for the link `download`: for
/// `Bytes`, the inclusive byte `range` of the target file if given; for a
/// CAR of a path, the nodes on the way first. `reader` is the client that
/// will read the body (its address, which takes one of the download slots
/// while the body is read: 429 or 503 when there is none); without one (a
/// HEAD) only the length is worked out. The object is opened before this
/// returns, so a store that cannot be read is an error here, not a body
/// cut short.
pub async fn open(
    state: &Services,
    download: &Download,
    located: &Located,
    path: &[&str],
    format: Format,
    range: Option<(u64, u64)>,
    reader: Option<&str>,
) -> AppResult<Content> {
    open_located(state, located, path, format, range, reader, Some(download.owner_id)).await
}

/// A stored object, and the block of its DAG a raw request asks for (the
/// root when `None`).
pub struct Target<'a> {
    pub cid: &'a str,
    pub size: u64,
    pub block: Option<&'a ContentCid>,
}

/// Opens `format` of the stored object `cid` of `size` bytes, as [`open`]
/// does; what is served is counted to `count_to` (an account), if given.
pub async fn open_object(
    state: &Services,
    target: Target<'_>,
    format: Format,
    range: Option<(u64, u64)>,
    reader: Option<&str>,
    count_to: Option<i64>,
) -> AppResult<Content> {
    let located = locate_object(state, target.cid, target.size, target.block, &[]).await?;
    open_located(state, &located, &[], format, range, reader, count_to).await
}

/// What the body writes, worked out from the block index.
enum Plan<'a> {
    /// Parts of leaves: each leaf, and the part of it (`from..to`) written.
    Bytes(Vec<(LeafSpan<'a>, u64, u64)>),
    Car(crate::content::CarPlan<'a>),
    Raw(RootBlock<'a>),
}

impl<'a> Plan<'a> {
    fn make(located: &'a Located, path: &[&str], format: Format, range: Option<(u64, u64)>) -> AppResult<(u64, Plan<'a>)> {
        let index = &located.index;
        Ok(match format {
            Format::Bytes => {
                if located.directory {
                    return Err(AppError::bad_request("This is a folder: ask for a file in it (/ipfs/<cid>/<path>) or for format=car"));
                }
                let size = located.size;
                if size == 0 {
                    return Ok((0, Plan::Bytes(Vec::new())));
                }
                let (start, end) = range.unwrap_or((0, size - 1));
                let leaves: Vec<(u64, LeafSpan<'a>)> = if located.target == located.root {
                    index.leaves_covering(start, end).map(|l| (l.offset, l)).collect()
                } else {
                    let dag = Dag::of(index).map_err(plan_error)?;
                    dag.file_leaves(&located.target, start, end).map_err(plan_error)?
                };
                let parts = leaves
                    .into_iter()
                    .map(|(at, leaf)| (leaf, start.max(at) - at, (end + 1).min(at + leaf.len) - at))
                    .collect::<Vec<_>>();
                (end - start + 1, Plan::Bytes(parts))
            }
            Format::Car(options) => {
                let dag = Dag::of(index).map_err(plan_error)?;
                let plan = if path.is_empty() {
                    dag.plan(&located.start, options).map_err(plan_error)?
                } else {
                    dag.plan_path(&located.start, path, options).map_err(plan_error)?.1
                };
                (plan.len, Plan::Car(plan))
            }
            Format::Raw => {
                let block = index.block(&located.target).ok_or_else(|| AppError::not_found("Block not found"))?;
                let len = match block {
                    RootBlock::Node(bytes) => bytes.len() as u64,
                    RootBlock::Leaf(leaf) => leaf.len,
                };
                (len, Plan::Raw(block))
            }
        })
    }

    /// The spans of the object read, in order.
    fn runs(&self) -> Vec<(u64, u64)> {
        match self {
            Plan::Bytes(parts) => {
                let mut runs: Vec<(u64, u64)> = Vec::new();
                for (leaf, ..) in parts {
                    match runs.last_mut() {
                        Some(run) if run.1 == leaf.offset => run.1 += leaf.len,
                        _ => runs.push((leaf.offset, leaf.offset + leaf.len)),
                    }
                }
                runs.retain(|r| r.1 > r.0);
                runs
            }
            Plan::Car(plan) => plan.runs.clone(),
            Plan::Raw(RootBlock::Leaf(leaf)) if leaf.len > 0 => vec![(leaf.offset, leaf.offset + leaf.len)],
            Plan::Raw(_) => Vec::new(),
        }
    }
}

/// Where more spans of the object are opened from, on the blocking pool.
enum Opener {
    Local(Arc<dyn crate::store::blobs::BlobStore>, String),
    Remote(super::retrieve::Opener),
}

impl Opener {
    fn open(&self, from: u64, to: u64) -> io::Result<Box<dyn Read + Send>> {
        match self {
            Opener::Local(blobs, key) => blobs.open_range(key, from, to - from)?.ok_or_else(missing_object),
            Opener::Remote(opener) => Ok(Box::new(opener.open_blocking(from, to)?)),
        }
    }
}

/// The object's bytes as the plan reads them: one span after another,
/// the next opened when a leaf is not where the last one ended.
struct Source {
    runs: Vec<(u64, u64)>,
    reader: Option<Box<dyn Read + Send>>,
    pos: u64,
    opener: Option<Opener>,
}

impl Source {
    fn read_leaf(&mut self, leaf: LeafSpan<'_>, buf: &mut Vec<u8>) -> io::Result<()> {
        if leaf.len > 0 && (self.reader.is_none() || self.pos != leaf.offset) {
            let run = self.runs.iter().find(|r| r.0 == leaf.offset).copied().unwrap_or((leaf.offset, leaf.offset + leaf.len));
            let opener = self.opener.as_ref().ok_or_else(|| io::Error::other("no source for the object"))?;
            self.reader = Some(opener.open(run.0, run.1)?);
            self.pos = run.0;
        }
        let mut nothing = io::empty();
        let input: &mut dyn Read = match self.reader.as_mut() {
            Some(r) if leaf.len > 0 => r.as_mut(),
            _ => &mut nothing,
        };
        read_leaf(input, leaf, buf)?;
        self.pos += leaf.len;
        Ok(())
    }
}

async fn open_located(
    state: &Services,
    located: &Located,
    path: &[&str],
    format: Format,
    range: Option<(u64, u64)>,
    reader: Option<&str>,
    count_to: Option<i64>,
) -> AppResult<Content> {
    let (len, runs) = {
        let (len, plan) = Plan::make(located, path, format, range)?;
        (len, plan.runs())
    };
    let Some(client) = reader else {
        return Ok(Content { len, body: None });
    };
    let slot = state.download_slots.take(client, state.settings.downloads_max, state.settings.downloads_per_client)?;
    let cid = located.root.to_string();
    // The first span is opened here (a store that cannot be read is an
    // error before the answer starts); the rest as the body gets to them.
    // The local copy if the coordinator keeps one, else (or if it is gone
    // meanwhile) the nodes holding replicas.
    let mut source = Source { runs: runs.clone(), reader: None, pos: 0, opener: None };
    if let Some(&(from, to)) = runs.first() {
        let kept = state.db.has_local_copy(&cid).await?.unwrap_or(true);
        let local = if kept {
            let blobs = state.blobs.clone();
            let key = cid.clone();
            tokio::task::spawn_blocking(move || blobs.open_range(&key, from, to - from))
                .await
                .map_err(AppError::internal)?
                .map_err(AppError::storage)?
        } else {
            None
        };
        let (reader, opener) = match local {
            Some(reader) => (reader, Opener::Local(state.blobs.clone(), cid.clone())),
            None if kept && state.settings.keep_local_copy => return Err(AppError::storage(missing_object())),
            None => {
                let reader = super::retrieve::open(state, &cid, located.index.clone(), from, to).await?;
                (Box::new(reader) as Box<dyn Read + Send>, Opener::Remote(super::retrieve::opener(state, &cid, located.index.clone())))
            }
        };
        source = Source { runs, reader: Some(reader), pos: from, opener: Some(opener) };
    }
    let located = located.clone();
    let path: Vec<String> = path.iter().map(|p| (*p).to_owned()).collect();
    let body = produce(state, count_to, len, slot, move |out| {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let (_, plan) = Plan::make(&located, &path, format, range).map_err(|e| io::Error::other(e.message))?;
        let mut source = source;
        let mut buf = Vec::new();
        match plan {
            Plan::Bytes(parts) => {
                for (leaf, from, to) in parts {
                    source.read_leaf(leaf, &mut buf)?;
                    out.write_all(&buf[from as usize..to as usize])?;
                }
                Ok(())
            }
            Plan::Car(plan) => {
                let mut car = CarWriter::new(&located.start, out)?;
                for step in plan.steps {
                    match step {
                        Step::Node { cid, bytes } => car.block(cid, bytes)?,
                        Step::Leaf { span, write } => {
                            source.read_leaf(span, &mut buf)?;
                            if write {
                                car.block(span.cid, &buf)?;
                            }
                        }
                    }
                }
                Ok(())
            }
            Plan::Raw(RootBlock::Node(bytes)) => out.write_all(bytes),
            Plan::Raw(RootBlock::Leaf(leaf)) => {
                source.read_leaf(leaf, &mut buf)?;
                out.write_all(&buf)
            }
        }
    });
    Ok(Content { len, body: Some(body) })
}

fn missing_object() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "object missing from the blob store")
}

/// Reads the next leaf from `input` (positioned at its offset) into `buf`
/// and checks it against its CID.
fn read_leaf(input: &mut dyn Read, leaf: LeafSpan<'_>, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.resize(leaf.len as usize, 0);
    input.read_exact(buf)?;
    if !leaf.cid.verifies(buf) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("stored block {} does not match its CID", leaf.cid)));
    }
    Ok(())
}

/// The object's block index; for an object stored before indexes were
/// kept, made once from its content (which must still hash to its CID)
/// and kept.
pub async fn index_of(state: &Services, cid: &str, size: u64) -> AppResult<BlockIndex> {
    match state.db.block_index(cid).await? {
        None => Err(AppError::not_found("File not found")),
        Some(Some(bytes)) => BlockIndex::decode(&bytes, size).map_err(AppError::internal),
        Some(None) => {
            let blobs = state.blobs.clone();
            let root = crate::service::files::parse_cid(cid)?;
            let key = cid.to_owned();
            let index = tokio::task::spawn_blocking(move || -> io::Result<BlockIndex> {
                let mut reader = blobs.open_range(&key, 0, size)?.ok_or_else(missing_object)?;
                let mut importer = Importer::new(Params::IPFS_CAR, true);
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = reader.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    importer.write(&buf[..n], &mut |_| {});
                }
                let imported = importer.finish(&mut |_| {});
                if imported.root != root || imported.size != size {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "stored object does not match its CID"));
                }
                Ok(BlockIndex::of(&imported))
            })
            .await
            .map_err(AppError::internal)?
            .map_err(AppError::storage)?;
            state.db.fill_block_index(cid, &index.encode()).await?;
            tracing::info!(%cid, "block index rebuilt for an object stored without one");
            Ok(index)
        }
    }
}

/// Adds `bytes` served to the owner's downloaded total (and today's traffic).
pub async fn record_download(db: &Db, now_ms: i64, owner_id: i64, bytes: u64) -> AppResult<()> {
    Ok(db.add_downloaded(owner_id, bytes.min(i64::MAX as u64) as i64, now_ms).await?)
}

/// Downloads whose bodies are being read from the store, in all and per
/// client address: each holds a blocking thread while its client reads, so
/// clients that open many and read slowly (or not at all) get 429 (their
/// own share) or 503 (everyone's) instead of taking every thread.
#[derive(Default)]
pub struct Slots {
    busy: std::sync::Mutex<(u32, std::collections::HashMap<String, u32>)>,
}

/// One download's slot, given back when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    client: String,
}

impl Slots {
    /// A slot for `client`, if it holds fewer than `per_client` and all
    /// together fewer than `max`.
    pub fn take(self: &Arc<Self>, client: &str, max: u32, per_client: u32) -> AppResult<Slot> {
        let mut busy = self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, by_client) = &mut *busy;
        if by_client.get(client).copied().unwrap_or(0) >= per_client {
            return Err(AppError::new(429, "Too many downloads at once from this address: let one finish first"));
        }
        if *total >= max {
            return Err(AppError::new(503, "Too many downloads at once: try again in a moment"));
        }
        *total += 1;
        *by_client.entry(client.to_owned()).or_default() += 1;
        Ok(Slot { slots: self.clone(), client: client.to_owned() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut busy = self.slots.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, by_client) = &mut *busy;
        *total = total.saturating_sub(1);
        if let Some(n) = by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                by_client.remove(&self.client);
            }
        }
    }
}

/// A `Write` whose bytes become the stream, sent in 256 KiB pieces.
struct BodyWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const PIECE: usize = 256 * 1024;

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
            self.tx.blocking_send(Ok(piece)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))?;
        }
        Ok(())
    }
}

/// The `len`-byte stream `write` produces on the blocking pool, counted to
/// `owner_id`: once the last byte is ready the whole is recorded *before*
/// it is handed on; a stream dropped early (the client went away) records
/// what it had handed on.
fn produce(
    state: &Services,
    owner_id: Option<i64>,
    len: u64,
    slot: Slot,
    write: impl FnOnce(&mut BodyWriter) -> io::Result<()> + Send + 'static,
) -> ByteStream {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        // Held while this thread works for the body: until it is all
        // handed on, or the client is gone (a client that reads nothing
        // is cut after `send_timeout_secs`).
        let _slot = slot;
        let mut writer = BodyWriter { tx: tx.clone(), buf: Vec::with_capacity(PIECE) };
        if let Err(e) = write(&mut writer).and_then(|()| writer.flush()) {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::error!(error = %e, "reading a stored object failed");
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    let tally = Tally { db: state.db.clone(), clock: state.clock.clone(), owner_id, len, served: 0, recorded: false };
    Box::pin(futures::stream::unfold((rx, tally), |(mut rx, mut tally)| async move {
        let item = rx.recv().await?;
        match item {
            Ok(piece) => {
                tally.served += piece.len() as u64;
                if tally.served >= tally.len && !tally.recorded {
                    tally.recorded = true;
                    if let Some(owner) = tally.owner_id {
                        if let Err(e) = record_download(&tally.db, tally.clock.now_ms(), owner, tally.served).await {
                            tracing::error!(error = %e, "could not count downloaded bytes");
                        }
                    }
                }
                Some((Ok(piece), (rx, tally)))
            }
            Err(e) => {
                rx.close();
                Some((Err(e), (rx, tally)))
            }
        }
    }))
}

/// Bytes handed on for one download, and whether they were recorded.
struct Tally {
    db: Db,
    clock: Arc<crate::clock::Clock>,
    owner_id: Option<i64>,
    len: u64,
    served: u64,
    recorded: bool,
}

impl Drop for Tally {
    fn drop(&mut self) {
        let Some(owner) = self.owner_id else { return };
        if self.recorded || self.served == 0 {
            return;
        }
        let (db, now, served) = (self.db.clone(), self.clock.now_ms(), self.served);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = record_download(&db, now, owner, served).await {
                    tracing::error!(error = %e, "could not count downloaded bytes");
                }
            });
        }
    }
}

