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

/// Opens `format` of the file a checked link names: for `Bytes`, the
/// inclusive byte `range` if given. With `with_body` false (a HEAD) only
/// the length is worked out. The object is opened before this returns, so
/// a store that cannot be read is an error here, not a body cut short.
pub async fn open(
    state: &Services,
    download: &Download,
    format: Format,
    range: Option<(u64, u64)>,
    with_body: bool,
) -> AppResult<Content> {
    let file = &download.file;
    let target = Target { cid: &file.cid, size: file.size.max(0) as u64, block: download.block.as_ref() };
    open_object(state, target, format, range, with_body, Some(download.owner_id)).await
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
    with_body: bool,
    count_to: Option<i64>,
) -> AppResult<Content> {
    let Target { cid, size, block } = target;
    if format == Format::Bytes && !with_body {
        return Ok(Content { len: range.map_or(size, |(a, b)| b - a + 1), body: None });
    }
    let index = Arc::new(index_of(state, cid, size).await?);
    let (len, plan) = match format {
        Format::Bytes => {
            let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
            let len = if size == 0 { 0 } else { end - start + 1 };
            (len, Plan::Bytes { start, end })
        }
        Format::Car(options) => {
            let car = car_plan(&index, block, options)?;
            (car.len, Plan::Car { options, reads: car.reads })
        }
        Format::Raw => match raw_block(&index, block)? {
            RootBlock::Node(bytes) => (bytes.len() as u64, Plan::Raw),
            RootBlock::Leaf(leaf) => (leaf.len, Plan::Raw),
        },
    };
    if !with_body {
        return Ok(Content { len, body: None });
    }
    // The part of the object the body reads: the leaves it needs, in one range.
    let (from, to) = match plan {
        Plan::Bytes { start, end } if len > 0 => {
            let covering: Vec<(u64, u64)> = index.leaves_covering(start, end).map(|l| (l.offset, l.offset + l.len)).collect();
            match (covering.first(), covering.last()) {
                (Some(first), Some(last)) => (first.0, last.1),
                _ => return Err(AppError::internal("the block index does not cover the range")),
            }
        }
        Plan::Bytes { .. } => (0, 0),
        Plan::Car { reads, .. } => reads,
        Plan::Raw => match raw_block(&index, block)? {
            RootBlock::Leaf(leaf) => (leaf.offset, leaf.offset + leaf.len),
            RootBlock::Node(_) => (0, 0),
        },
    };
    let reader = if to > from {
        // The local copy if the coordinator keeps one, else (or if it is
        // gone meanwhile) the nodes holding replicas.
        let kept = state.db.has_local_copy(cid).await?.unwrap_or(true);
        let local = if kept {
            let blobs = state.blobs.clone();
            let key = cid.to_owned();
            tokio::task::spawn_blocking(move || blobs.open_range(&key, from, to - from))
                .await
                .map_err(AppError::internal)?
                .map_err(AppError::storage)?
        } else {
            None
        };
        match local {
            Some(reader) => Some(reader),
            None if kept && state.settings.keep_local_copy => {
                return Err(AppError::storage(missing_object()));
            }
            None => Some(Box::new(super::retrieve::open(state, cid, index.clone(), from, to).await?) as Box<dyn Read + Send>),
        }
    } else {
        None
    };
    let root = crate::service::files::parse_cid(cid)?;
    if index.root() != Some(&root) {
        return Err(AppError::internal(format!("the block index of {root} names another root")));
    }
    let block = block.cloned();
    let body = produce(state, count_to, len, move |out| {
        let mut reader = reader;
        let mut nothing = io::empty();
        let input: &mut dyn Read = match reader.as_mut() {
            Some(r) => r.as_mut(),
            None => &mut nothing,
        };
        match plan {
            Plan::Bytes { start, end } => {
                if len == 0 {
                    return Ok(());
                }
                let mut buf = Vec::new();
                for leaf in index.leaves_covering(start, end) {
                    read_leaf(input, leaf, &mut buf)?;
                    let a = start.max(leaf.offset) - leaf.offset;
                    let b = (end + 1).min(leaf.offset + leaf.len) - leaf.offset;
                    out.write_all(&buf[a as usize..b as usize])?;
                }
                Ok(())
            }
            Plan::Car { options, .. } => {
                let plan = car_plan(&index, block.as_ref(), options).map_err(|e| io::Error::other(e.message))?;
                let start = block.as_ref().unwrap_or(&root);
                let mut car = CarWriter::new(start, out)?;
                let mut buf = Vec::new();
                for step in plan.steps {
                    match step {
                        Step::Node { cid, bytes } => car.block(cid, bytes)?,
                        Step::Leaf { span, write } => {
                            read_leaf(input, span, &mut buf)?;
                            if write {
                                car.block(span.cid, &buf)?;
                            }
                        }
                    }
                }
                Ok(())
            }
            Plan::Raw => match raw_block(&index, block.as_ref()).map_err(|e| io::Error::other(e.message))? {
                RootBlock::Node(bytes) => out.write_all(bytes),
                RootBlock::Leaf(leaf) => {
                    let mut buf = Vec::new();
                    if leaf.len > 0 {
                        read_leaf(input, leaf, &mut buf)?;
                    }
                    out.write_all(&buf)
                }
            },
        }
    });
    Ok(Content { len, body: Some(body) })
}

/// The block a raw request serves: `block` of the DAG, or its root.
fn raw_block<'a>(index: &'a BlockIndex, block: Option<&ContentCid>) -> AppResult<RootBlock<'a>> {
    match block {
        None => index.root_block().ok_or_else(|| AppError::internal("empty block index")),
        Some(cid) => index.block(cid).ok_or_else(|| AppError::not_found("Block not found")),
    }
}

/// Which blocks a CAR of `block` (the root when `None`) carries.
fn car_plan<'a>(index: &'a BlockIndex, block: Option<&ContentCid>, options: CarOptions) -> AppResult<crate::content::CarPlan<'a>> {
    let dag = Dag::of(index).map_err(|e| AppError::internal(format!("{e:?}")))?;
    let start = match block {
        Some(cid) => cid,
        None => index.root().ok_or_else(|| AppError::internal("empty block index"))?,
    };
    dag.plan(start, options).map_err(|e| match e {
        PlanError::NotInDag => AppError::not_found("Block not found"),
        PlanError::OutOfRange => AppError::bad_request("entity-bytes starts past the end of the file"),
        PlanError::Broken(why) => AppError::internal(format!("block index of {start}: {why}")),
    })
}

#[derive(Debug, Clone, Copy)]
enum Plan {
    Bytes { start: u64, end: u64 },
    Car { options: CarOptions, reads: (u64, u64) },
    Raw,
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
    write: impl FnOnce(&mut BodyWriter) -> io::Result<()> + Send + 'static,
) -> ByteStream {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
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

