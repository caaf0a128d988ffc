//! The streaming UnixFS importer: bytes in (any slice sizes), blocks out.

use super::cids::{ContentCid, CODEC_RAW};
use super::layout::{Link, NodeBlock, Root, TreeBuilder};
use super::Params;
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::Path;

/// A block as the importer produces it.
#[derive(Debug)]
pub enum Block<'a> {
    /// File content: `data` starts at byte `offset` of the file.
    Leaf { cid: &'a ContentCid, offset: u64, data: &'a [u8] },
    /// A dag-pb File node.
    Node { cid: &'a ContentCid, bytes: &'a [u8] },
}

/// A block in CAR order, without the file content it may point at: what is
/// needed to write the CAR again from the file.
#[derive(Debug, Clone, PartialEq)]
pub enum PlannedBlock {
    Leaf { cid: ContentCid, offset: u64, len: u64 },
    Node(NodeBlock),
}

impl PlannedBlock {
    pub fn cid(&self) -> &ContentCid {
        match self {
            PlannedBlock::Leaf { cid, .. } => cid,
            PlannedBlock::Node(node) => &node.cid,
        }
    }
}

/// The result of importing a file.
#[derive(Debug, Clone)]
pub struct Imported {
    pub root: ContentCid,
    pub size: u64,
    /// Every block in the order the CAR lists them, root last.
    pub plan: Vec<PlannedBlock>,
}

pub struct Importer {
    params: Params,
    buf: Vec<u8>,
    offset: u64,
    tree: TreeBuilder,
    nodes: Vec<NodeBlock>,
    plan: Option<Vec<PlannedBlock>>,
}

impl Importer {
    /// `keep_plan`: remember every block (for writing the CAR afterwards).
    pub fn new(params: Params, keep_plan: bool) -> Self {
        assert!(params.chunk_size > 0, "chunk size must be positive");
        Self {
            params,
            buf: Vec::new(),
            offset: 0,
            tree: TreeBuilder::new(params.width),
            nodes: Vec::new(),
            plan: keep_plan.then(Vec::new),
        }
    }

    /// Bytes taken so far.
    pub fn len(&self) -> u64 {
        self.offset + self.buf.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feeds the next bytes of the file; `sink` sees each block as it is made.
    pub fn write(&mut self, mut data: &[u8], sink: &mut impl FnMut(Block<'_>)) {
        let size = self.params.chunk_size;
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= size {
                // A whole chunk straight from the caller's slice: no copy.
                let (chunk, rest) = data.split_at(size);
                let digest: [u8; 32] = Sha256::digest(chunk).into();
                self.leaf(chunk, digest, sink);
                data = rest;
            } else {
                let take = (size - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.buf.len() == size {
                    let chunk = std::mem::take(&mut self.buf);
                    let digest: [u8; 32] = Sha256::digest(&chunk).into();
                    self.leaf(&chunk, digest, sink);
                    self.buf = chunk;
                    self.buf.clear();
                }
            }
        }
    }

    /// Adds a leaf whose digest is already known (used by the parallel path).
    pub fn push_hashed_leaf(&mut self, chunk_len: usize, digest: [u8; 32], sink: &mut impl FnMut(Block<'_>)) {
        self.leaf_inner(None, chunk_len, digest, sink);
    }

    fn leaf(&mut self, chunk: &[u8], digest: [u8; 32], sink: &mut impl FnMut(Block<'_>)) {
        self.leaf_inner(Some(chunk), chunk.len(), digest, sink);
    }

    fn leaf_inner(&mut self, chunk: Option<&[u8]>, len: usize, digest: [u8; 32], sink: &mut impl FnMut(Block<'_>)) {
        let link = self.record_leaf(chunk, len, digest, sink);
        self.tree.push_leaf(link, &mut self.nodes);
        self.drain_nodes(sink);
    }

    fn drain_nodes(&mut self, sink: &mut impl FnMut(Block<'_>)) {
        for node in self.nodes.drain(..) {
            sink(Block::Node { cid: &node.cid, bytes: &node.bytes });
            if let Some(plan) = &mut self.plan {
                plan.push(PlannedBlock::Node(node));
            }
        }
    }

    /// Ends the file: the last (short) chunk, the remaining nodes, the root.
    pub fn finish(mut self, sink: &mut impl FnMut(Block<'_>)) -> Imported {
        let last = if self.buf.is_empty() {
            None
        } else {
            let chunk = std::mem::take(&mut self.buf);
            let digest: [u8; 32] = Sha256::digest(&chunk).into();
            Some(self.record_leaf(Some(&chunk), chunk.len(), digest, sink))
        };
        self.finish_tree(last, sink)
    }

    /// Ends a file fed through `push_hashed_leaf`; `last` is its final
    /// chunk when that is shorter than a full chunk (as the streaming
    /// importer only cuts it on `finish`).
    pub fn finish_hashed(mut self, last: Option<(usize, [u8; 32])>, sink: &mut impl FnMut(Block<'_>)) -> Imported {
        let last = last.map(|(len, digest)| self.record_leaf(None, len, digest, sink));
        self.finish_tree(last, sink)
    }

    /// Writes a leaf's block (when its bytes are at hand) and notes it in the
    /// plan; returns its link for the tree.
    fn record_leaf(&mut self, chunk: Option<&[u8]>, len: usize, digest: [u8; 32], sink: &mut impl FnMut(Block<'_>)) -> Link {
        let cid = ContentCid::from_digest(CODEC_RAW, digest);
        let offset = self.offset;
        if let Some(data) = chunk {
            sink(Block::Leaf { cid: &cid, offset, data });
        }
        if let Some(plan) = &mut self.plan {
            plan.push(PlannedBlock::Leaf { cid: cid.clone(), offset, len: len as u64 });
        }
        self.offset += len as u64;
        Link { cid, content_len: len as u64, dag_len: len as u64 }
    }

    fn finish_tree(mut self, last: Option<Link>, sink: &mut impl FnMut(Block<'_>)) -> Imported {
        let mut nodes = Vec::new();
        let tree = std::mem::replace(&mut self.tree, TreeBuilder::new(2));
        let root = tree.close(last, &mut nodes);
        self.nodes = nodes;
        self.drain_nodes(sink);
        let root = match root {
            Root::Leaf(link) | Root::Node(link) => link.cid,
            Root::Empty => {
                let cid = ContentCid::of(CODEC_RAW, b"");
                sink(Block::Leaf { cid: &cid, offset: 0, data: b"" });
                if let Some(plan) = &mut self.plan {
                    plan.push(PlannedBlock::Leaf { cid: cid.clone(), offset: 0, len: 0 });
                }
                cid
            }
        };
        Imported { root, size: self.offset, plan: self.plan.unwrap_or_default() }
    }
}

/// Imports the file at `path`, hashing its chunks on `threads` threads at
/// once; returns the root, the size and the CAR plan.
pub fn import_path(path: &Path, params: Params, threads: usize) -> io::Result<Imported> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let chunk = params.chunk_size as u64;
    let chunks = size.div_ceil(chunk);
    let threads = threads.clamp(1, chunks.max(1) as usize);
    let mut digests = vec![[0u8; 32]; chunks as usize];
    // Thread t hashes the t-th run of consecutive chunks: sequential reads
    // for each thread, no shared state.
    let per_thread = (chunks as usize).div_ceil(threads).max(1);
    std::thread::scope(|scope| -> io::Result<()> {
        let mut handles = Vec::new();
        for (t, slots) in digests.chunks_mut(per_thread).enumerate() {
            let path = path.to_path_buf();
            handles.push(scope.spawn(move || -> io::Result<()> {
                let mut f = std::fs::File::open(&path)?;
                let first = (t * per_thread) as u64;
                io::Seek::seek(&mut f, io::SeekFrom::Start(first * chunk))?;
                let mut buf = vec![0u8; params.chunk_size];
                for (i, slot) in slots.iter_mut().enumerate() {
                    let want = (size - (first + i as u64) * chunk).min(chunk) as usize;
                    f.read_exact(&mut buf[..want])?;
                    *slot = Sha256::digest(&buf[..want]).into();
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join().map_err(|_| io::Error::other("hashing thread panicked"))??;
        }
        Ok(())
    })?;
    let mut importer = Importer::new(params, true);
    let mut none = |_: Block<'_>| {};
    // A short final chunk is cut on close, as when streaming.
    let short_tail = size % chunk != 0;
    let mut last = None;
    for (i, digest) in digests.into_iter().enumerate() {
        let len = (size - i as u64 * chunk).min(chunk) as usize;
        if short_tail && i as u64 == chunks - 1 {
            last = Some((len, digest));
        } else {
            importer.push_hashed_leaf(len, digest, &mut none);
        }
    }
    Ok(importer.finish_hashed(last, &mut none))
}
