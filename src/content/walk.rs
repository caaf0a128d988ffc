//! Which blocks of a stored DAG a CAR response carries, and in what order,
//! as the IPFS trustless gateway asks (`dag-scope`, `entity-bytes`,
//! `order`, `dups`): worked out from the block index alone, before a byte
//! of content is read.
//!
//! `order=dfs` is depth-first from the requested block, each node before
//! its children, children in link order. In a file, leaves are then met in
//! file order, so its content is one contiguous span of the stored object,
//! read once from start to end; in a folder, a file's leaves are where its
//! bytes are, so the span read jumps from file to file (`runs`). With
//! `dups=n` a block met again is not written again (a repeated leaf inside
//! a run is still read past). The CAR exactly as ipfs-car writes it (leaves
//! first, each node once complete, repeats written again) is
//! `order=unk; dups=y`.
//!
//! A path (`/ipfs/<folder>/a/b.txt`) is resolved through the directory
//! nodes (and HAMT shards) on the way, which a CAR of it carries first.

use super::cids::ContentCid;
use super::dagpb;
use super::importer::PlannedBlock;
use super::index::{BlockIndex, LeafSpan};
use std::collections::{HashMap, HashSet};

/// `dag-scope`: how much of the DAG below the requested block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The block alone.
    Block,
    /// What reading the whole entity (a file) needs: for a file, its DAG.
    Entity,
    /// The whole DAG below the block.
    All,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Block => "block",
            Scope::Entity => "entity",
            Scope::All => "all",
        }
    }
}

/// `entity-bytes=from:to` as asked: negative counts from the end, `to`
/// `None` for `*` (the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityBytes {
    pub from: i64,
    pub to: Option<i64>,
}

impl EntityBytes {
    /// Reads `from:to` (integers, `to` may be `*`).
    pub fn parse(text: &str) -> Option<Self> {
        let (from, to) = text.split_once(':')?;
        let int = |s: &str| -> Option<i64> {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let from = int(from)?;
        let to = if to == "*" { None } else { Some(int(to)?) };
        Some(Self { from, to })
    }

    /// The inclusive byte range of an entity of `size` bytes this asks for:
    /// `Ok(None)` when it is empty (the answer is then the block alone),
    /// `Err` when it starts past the end.
    fn resolve(self, size: u64) -> Result<Option<(u64, u64)>, OutOfRange> {
        if size == 0 {
            return Ok(None);
        }
        let size = i128::from(size);
        let from = if self.from < 0 { (size + i128::from(self.from)).max(0) } else { i128::from(self.from) };
        if from >= size {
            return Err(OutOfRange);
        }
        let to = match self.to {
            None => size - 1,
            Some(t) if t < 0 => size + i128::from(t),
            Some(t) => i128::from(t).min(size - 1),
        };
        if to < from {
            return Ok(None);
        }
        Ok(Some((from as u64, to as u64)))
    }
}

/// `entity-bytes` starts past the end of the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange;

/// What a CAR request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarOptions {
    pub scope: Scope,
    /// `order=dfs` (else `unk`).
    pub dfs: bool,
    /// `dups=y`.
    pub dups: bool,
    pub bytes: Option<EntityBytes>,
}

impl Default for CarOptions {
    /// The gateway's default: the whole DAG, depth-first, no duplicates.
    fn default() -> Self {
        Self { scope: Scope::All, dfs: true, dups: false, bytes: None }
    }
}

impl CarOptions {
    /// The CAR exactly as ipfs-car writes it (what nodes are given to keep).
    pub const IPFS_CAR: CarOptions = CarOptions { scope: Scope::All, dfs: false, dups: true, bytes: None };

    /// True when the answer is the CAR ipfs-car writes of the whole file:
    /// asked for with `order=unk` and `dups=y`, of the root, all of it.
    pub fn ipfs_car_order(&self, at_root: bool) -> bool {
        at_root && !self.dfs && self.dups && self.scope == Scope::All && self.bytes.is_none()
    }
}

/// One block of the answer, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Node { cid: &'a ContentCid, bytes: &'a [u8] },
    /// A leaf, read from the object; written unless `write` is false (a
    /// repeat under `dups=n`, read past).
    Leaf { span: LeafSpan<'a>, write: bool },
}

/// The blocks of a CAR answer and what it takes to write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarPlan<'a> {
    pub steps: Vec<Step<'a>>,
    /// The spans of the object the leaves are read from, `from..to`, in
    /// the order they are read (one for a file; none when no leaf is read).
    pub runs: Vec<(u64, u64)>,
    /// Bytes of the CAR: its header (naming the requested block) and every
    /// written block.
    pub len: u64,
}

/// Why no plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The block is not in this DAG.
    NotInDag,
    /// `entity-bytes` starts past the end.
    OutOfRange,
    /// A path names nothing in this DAG (or goes through a file).
    NoSuchPath,
    /// The index does not hold together (a node links a block it lacks, ...).
    Broken(String),
}

enum Child {
    Node(usize),
    Leaf(ContentCid, u64),
}

struct Node<'a> {
    cid: &'a ContentCid,
    bytes: &'a [u8],
    children: Vec<Child>,
    /// Their names (directories and HAMT shards name their links).
    names: Vec<String>,
    len: u64,
    /// UnixFS type: 1 a directory, 2 a file, 5 a HAMT shard.
    kind: u64,
}

/// UnixFS node types.
const DIRECTORY: u64 = 1;
const HAMT_SHARD: u64 = 5;

/// A block of the DAG a path ends at, with the nodes it went through.
pub struct Resolved<'a> {
    /// The directory nodes and shards on the way, from the root.
    pub through: Vec<&'a ContentCid>,
    /// The block each name of the path led to, after `start`: the
    /// path's logical roots (no HAMT shard between them).
    pub named: Vec<ContentCid>,
    pub target: ContentCid,
}

/// A stored DAG read from its block index: its nodes with their children
/// and content length, its leaves by position.
pub struct Dag<'a> {
    index: &'a BlockIndex,
    nodes: Vec<Node<'a>>,
    by_cid: HashMap<&'a ContentCid, usize>,
    leaves: Vec<LeafSpan<'a>>,
    /// The first leaf of each CID, and each leaf by where it starts.
    first_leaf: HashMap<&'a ContentCid, LeafSpan<'a>>,
    leaf_at: HashMap<u64, LeafSpan<'a>>,
}

const MAX_DEPTH: usize = 64;

impl<'a> Dag<'a> {
    pub fn of(index: &'a BlockIndex) -> Result<Self, PlanError> {
        let broken = |what: &str| PlanError::Broken(what.to_owned());
        let mut leaf_len: HashMap<&ContentCid, u64> = HashMap::new();
        let mut nodes = Vec::new();
        let mut by_cid = HashMap::new();
        for block in index.blocks() {
            match block {
                PlannedBlock::Leaf { cid, len, .. } => {
                    leaf_len.insert(cid, *len);
                }
                PlannedBlock::Node(node) => {
                    if by_cid.contains_key(&node.cid) {
                        continue;
                    }
                    by_cid.insert(&node.cid, nodes.len());
                    nodes.push((&node.cid, node.bytes.as_slice()));
                }
            }
        }
        // Children in link order; a node's content length is its children's.
        let mut built: Vec<Node<'a>> = Vec::with_capacity(nodes.len());
        for (cid, bytes) in &nodes {
            let mut children = Vec::new();
            let mut names = Vec::new();
            for link in dagpb::links(bytes).map_err(PlanError::Broken)? {
                names.push(link.name.clone());
                let child = ContentCid::from_bytes(&link.hash).map_err(|_| broken("a link that is not a stored block"))?;
                if let Some(&i) = by_cid.get(&child) {
                    children.push(Child::Node(i));
                } else if let Some(&len) = leaf_len.get(&child) {
                    children.push(Child::Leaf(child, len));
                } else {
                    return Err(broken("a node links a block the index lacks"));
                }
            }
            let kind = dagpb::unixfs_type(bytes).unwrap_or(0);
            built.push(Node { cid, bytes, children, names, len: 0, kind });
        }
        let leaves: Vec<LeafSpan<'a>> = index.leaves().collect();
        let mut first_leaf = HashMap::new();
        let mut leaf_at = HashMap::new();
        for leaf in &leaves {
            first_leaf.entry(leaf.cid).or_insert(*leaf);
            leaf_at.insert(leaf.offset, *leaf);
        }
        let mut dag = Dag { index, nodes: built, by_cid, leaves, first_leaf, leaf_at };
        let mut memo: Vec<Option<u64>> = vec![None; dag.nodes.len()];
        for i in 0..dag.nodes.len() {
            let len = dag.content_len(i, &mut memo, 0)?;
            dag.nodes[i].len = len;
        }
        Ok(dag)
    }

    fn content_len(&self, i: usize, memo: &mut Vec<Option<u64>>, depth: usize) -> Result<u64, PlanError> {
        if depth > MAX_DEPTH {
            return Err(PlanError::Broken("the DAG is too deep".into()));
        }
        if let Some(len) = memo[i] {
            return Ok(len);
        }
        let mut len = 0u64;
        for child in &self.nodes[i].children {
            len += match child {
                Child::Leaf(_, l) => *l,
                Child::Node(j) => self.content_len(*j, memo, depth + 1)?,
            };
        }
        memo[i] = Some(len);
        Ok(len)
    }

    /// Where to read a leaf `cid`: at `near` if the leaf there is one
    /// (the next leaf of the same file), else its first copy.
    fn span_of(&self, cid: &ContentCid, near: Option<u64>) -> Result<LeafSpan<'a>, PlanError> {
        if let Some(leaf) = near.and_then(|at| self.leaf_at.get(&at)).filter(|l| l.cid == cid) {
            return Ok(*leaf);
        }
        self.first_leaf.get(cid).copied().ok_or_else(|| PlanError::Broken("a node links a leaf the index lacks".into()))
    }

    /// The block `path` (names, `/`-separated) leads to from `start`,
    /// through directories and HAMT shards.
    pub fn resolve(&self, start: &ContentCid, path: &[&str]) -> Result<Resolved<'a>, PlanError> {
        let mut through = Vec::new();
        let mut named = Vec::with_capacity(path.len());
        let mut at = start.clone();
        for name in path {
            let mut i = *self.by_cid.get(&at).ok_or(PlanError::NoSuchPath)?;
            through.push(self.nodes[i].cid);
            let next = match self.nodes[i].kind {
                DIRECTORY => self.child_named(i, name),
                HAMT_SHARD => {
                    // Down the shards: at each level the slot of the name's hash.
                    let mut depth = 0;
                    loop {
                        let prefix = format!("{:02X}", super::dir::hamt_slot(name, depth));
                        let node = &self.nodes[i];
                        let found = node.names.iter().position(|n| n.strip_prefix(&prefix).is_some_and(|rest| rest == *name));
                        if let Some(k) = found {
                            break Some(k).map(|k| (i, k));
                        }
                        match node.names.iter().position(|n| *n == prefix).map(|k| &node.children[k]) {
                            Some(Child::Node(j)) if self.nodes[*j].kind == HAMT_SHARD => {
                                i = *j;
                                through.push(self.nodes[i].cid);
                                depth += 1;
                            }
                            _ => break None,
                        }
                    }
                    .map(|(i, k)| self.child_cid(i, k))
                }
                _ => None,
            };
            at = next.ok_or(PlanError::NoSuchPath)?;
            named.push(at.clone());
        }
        Ok(Resolved { through, named, target: at })
    }

    fn child_named(&self, i: usize, name: &str) -> Option<ContentCid> {
        let k = self.nodes[i].names.iter().position(|n| n == name)?;
        Some(self.child_cid(i, k))
    }

    fn child_cid(&self, i: usize, k: usize) -> ContentCid {
        match &self.nodes[i].children[k] {
            Child::Node(j) => self.nodes[*j].cid.clone(),
            Child::Leaf(cid, _) => cid.clone(),
        }
    }

    /// The bytes of content under `cid` (a file's size), if it is a block of this DAG.
    pub fn size_of(&self, cid: &ContentCid) -> Option<u64> {
        match self.by_cid.get(cid) {
            Some(&i) => Some(self.nodes[i].len),
            None => self.first_leaf.get(cid).map(|l| l.len),
        }
    }

    /// True when `cid` is a directory (a UnixFS directory or HAMT shard).
    pub fn is_directory(&self, cid: &ContentCid) -> bool {
        self.by_cid.get(cid).is_some_and(|&i| matches!(self.nodes[i].kind, DIRECTORY | HAMT_SHARD))
    }

    /// The entries of the directory `cid` (through its shards): name, CID,
    /// content bytes, and whether it is a directory; `None` for a file.
    pub fn entries(&self, cid: &ContentCid) -> Option<Vec<(String, ContentCid, u64, bool)>> {
        let i = *self.by_cid.get(cid)?;
        let mut out = Vec::new();
        match self.nodes[i].kind {
            DIRECTORY => self.collect_entries(i, 0, &mut out),
            HAMT_SHARD => self.collect_entries(i, 2, &mut out),
            _ => return None,
        }
        Some(out)
    }

    fn collect_entries(&self, i: usize, prefix: usize, out: &mut Vec<(String, ContentCid, u64, bool)>) {
        let node = &self.nodes[i];
        for (k, child) in node.children.iter().enumerate() {
            let name = &node.names[k];
            match child {
                Child::Node(j) if prefix > 0 && name.len() == prefix && self.nodes[*j].kind == HAMT_SHARD => {
                    self.collect_entries(*j, prefix, out)
                }
                Child::Node(j) => {
                    let dir = matches!(self.nodes[*j].kind, DIRECTORY | HAMT_SHARD);
                    out.push((name[prefix.min(name.len())..].to_owned(), self.nodes[*j].cid.clone(), self.nodes[*j].len, dir));
                }
                Child::Leaf(cid, len) => out.push((name[prefix.min(name.len())..].to_owned(), cid.clone(), *len, false)),
            }
        }
        if prefix > 0 {
            out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        }
    }

    /// The leaves holding bytes `start..=end` of the file `cid` (a block
    /// of this DAG), in order, with where each starts in that file.
    pub fn file_leaves(&self, cid: &ContentCid, start: u64, end: u64) -> Result<Vec<(u64, LeafSpan<'a>)>, PlanError> {
        let options = CarOptions { scope: Scope::All, dfs: true, dups: true, bytes: None };
        let mut steps = Vec::new();
        match self.by_cid.get(cid) {
            None => {
                let leaf = self.span_of(cid, None).map_err(|_| PlanError::NotInDag)?;
                return Ok(vec![(0, leaf)]);
            }
            Some(&i) => {
                let mut seen = HashSet::new();
                let mut near = None;
                self.walk(i, 0, Some((start, end)), options.dups, &mut seen, &mut steps, &mut near, 0)?;
            }
        }
        // Where each leaf starts in the file: the walk keeps file order.
        let mut at = self.first_offset(cid, start)?;
        let mut out = Vec::new();
        for step in steps {
            if let Step::Leaf { span, .. } = step {
                out.push((at, span));
                at += span.len;
            }
        }
        Ok(out)
    }

    /// Where the first leaf meeting byte `start` of the file `cid` starts in it.
    fn first_offset(&self, cid: &ContentCid, start: u64) -> Result<u64, PlanError> {
        let mut i = *self.by_cid.get(cid).ok_or(PlanError::NotInDag)?;
        let mut base = 0u64;
        'down: loop {
            let mut offset = base;
            for child in &self.nodes[i].children {
                let len = match child {
                    Child::Leaf(_, len) => *len,
                    Child::Node(j) => self.nodes[*j].len,
                };
                if len > 0 && offset + len > start {
                    match child {
                        Child::Leaf(..) => return Ok(offset),
                        Child::Node(j) => {
                            i = *j;
                            base = offset;
                            continue 'down;
                        }
                    }
                }
                offset += len;
            }
            return Ok(offset);
        }
    }

    /// The CAR answer for the block `start` of this DAG.
    pub fn plan(&self, start: &ContentCid, options: CarOptions) -> Result<CarPlan<'a>, PlanError> {
        let root = self.index.root().ok_or_else(|| PlanError::Broken("empty block index".into()))?;
        let mut steps = Vec::new();
        if options.ipfs_car_order(start == root) {
            for block in self.index.blocks() {
                steps.push(match block {
                    PlannedBlock::Leaf { cid, offset, len } => Step::Leaf { span: LeafSpan { cid, offset: *offset, len: *len }, write: true },
                    PlannedBlock::Node(node) => Step::Node { cid: &node.cid, bytes: &node.bytes },
                });
            }
            return Ok(self.finish(start, steps));
        }
        let scope = if options.bytes.is_some() { Scope::Entity } else { options.scope };
        match self.by_cid.get(start) {
            None => {
                // A leaf: a raw block is its own entity.
                let leaf = self.leaves.iter().find(|l| l.cid == start).copied().ok_or(PlanError::NotInDag)?;
                if let Some(bytes) = options.bytes {
                    bytes.resolve(leaf.len).map_err(|OutOfRange| PlanError::OutOfRange)?;
                }
                steps.push(Step::Leaf { span: leaf, write: true });
            }
            Some(&i) => {
                let node = &self.nodes[i];
                let range = match options.bytes {
                    Some(bytes) => match bytes.resolve(node.len).map_err(|OutOfRange| PlanError::OutOfRange)? {
                        Some(range) => Some(range),
                        None => {
                            steps.push(Step::Node { cid: node.cid, bytes: node.bytes });
                            return Ok(self.finish(start, steps));
                        }
                    },
                    None => None,
                };
                if scope == Scope::Block {
                    steps.push(Step::Node { cid: node.cid, bytes: node.bytes });
                } else if scope == Scope::Entity && node.kind == DIRECTORY {
                    // A directory's entity is the listing: its own node.
                    steps.push(Step::Node { cid: node.cid, bytes: node.bytes });
                } else if scope == Scope::Entity && node.kind == HAMT_SHARD {
                    let mut seen = HashSet::new();
                    self.shards(i, &mut seen, &mut steps, 0)?;
                } else {
                    let mut seen = HashSet::new();
                    let mut near = None;
                    self.walk(i, 0, range, options.dups, &mut seen, &mut steps, &mut near, 0)?;
                }
            }
        }
        Ok(self.finish(start, steps))
    }

    /// Depth-first from node `i`, whose content starts at `base`: the node,
    /// then each child whose content meets `range` (all when `None`).
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        i: usize,
        base: u64,
        range: Option<(u64, u64)>,
        dups: bool,
        seen: &mut HashSet<&'a ContentCid>,
        steps: &mut Vec<Step<'a>>,
        near: &mut Option<u64>,
        depth: usize,
    ) -> Result<(), PlanError> {
        if depth > MAX_DEPTH {
            return Err(PlanError::Broken("the DAG is too deep".into()));
        }
        let node = &self.nodes[i];
        if dups || seen.insert(node.cid) {
            steps.push(Step::Node { cid: node.cid, bytes: node.bytes });
        }
        let meets = |start: u64, len: u64| match range {
            None => true,
            Some((a, b)) => len > 0 && start <= b && start + len > a,
        };
        let mut offset = base;
        for child in &node.children {
            match child {
                Child::Leaf(cid, len) => {
                    if meets(offset, *len) {
                        let span = self.span_of(cid, *near)?;
                        *near = Some(span.offset + span.len);
                        let write = dups || seen.insert(span.cid);
                        steps.push(Step::Leaf { span, write });
                    }
                    offset += len;
                }
                Child::Node(j) => {
                    let len = self.nodes[*j].len;
                    if meets(offset, len) {
                        self.walk(*j, offset, range, dups, seen, steps, near, depth + 1)?;
                    }
                    offset += len;
                }
            }
        }
        Ok(())
    }

    /// A HAMT directory's own blocks: its shards, depth first.
    fn shards(&self, i: usize, seen: &mut HashSet<&'a ContentCid>, steps: &mut Vec<Step<'a>>, depth: usize) -> Result<(), PlanError> {
        if depth > MAX_DEPTH {
            return Err(PlanError::Broken("the DAG is too deep".into()));
        }
        let node = &self.nodes[i];
        if seen.insert(node.cid) {
            steps.push(Step::Node { cid: node.cid, bytes: node.bytes });
        }
        for (k, child) in node.children.iter().enumerate() {
            if let Child::Node(j) = child {
                if node.names[k].len() == 2 && self.nodes[*j].kind == HAMT_SHARD {
                    self.shards(*j, seen, steps, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    /// The CAR answer for `path` below the block `start`: the directory
    /// nodes the path goes through, then what `options` ask of its end.
    pub fn plan_path(&self, start: &ContentCid, path: &[&str], options: CarOptions) -> Result<(ContentCid, CarPlan<'a>), PlanError> {
        let resolved = self.resolve(start, path)?;
        let mut plan = self.plan(&resolved.target, options)?;
        let mut steps = Vec::with_capacity(resolved.through.len() + plan.steps.len());
        for cid in resolved.through {
            let i = self.by_cid[cid];
            let already = !options.dups && steps.iter().any(|s| matches!(s, Step::Node { cid: c, .. } if *c == cid));
            if !already {
                steps.push(Step::Node { cid, bytes: self.nodes[i].bytes });
            }
        }
        let path_nodes: HashSet<&ContentCid> = steps.iter().filter_map(|s| match s { Step::Node { cid, .. } => Some(*cid), _ => None }).collect();
        for step in plan.steps.drain(..) {
            match step {
                Step::Node { cid, .. } if !options.dups && path_nodes.contains(cid) => {}
                other => steps.push(other),
            }
        }
        Ok((resolved.target, self.finish(start, steps)))
    }

    /// Drops leaves read only to be skipped at either end, and works out
    /// the span read and the CAR's length.
    fn finish(&self, start: &ContentCid, steps: Vec<Step<'a>>) -> CarPlan<'a> {
        // A leaf read only to be skipped is kept where it saves opening
        // another span (between two leaves of one run), dropped elsewhere.
        let mut kept: Vec<Step<'a>> = Vec::with_capacity(steps.len());
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut pending: Vec<Step<'a>> = Vec::new();
        for step in steps {
            match step {
                Step::Leaf { span, write: false } => {
                    if runs.last().is_some_and(|r| r.1 == span.offset) || !pending.is_empty() {
                        pending.push(step);
                    }
                }
                Step::Leaf { span, write: true } => {
                    // The skipped leaves since the last written one count only if they lead here.
                    let mut end = runs.last().map(|r| r.1);
                    let mut bridge = Vec::new();
                    for p in pending.drain(..) {
                        if let Step::Leaf { span: s, .. } = p {
                            if end == Some(s.offset) {
                                end = Some(s.offset + s.len);
                                bridge.push(p);
                            } else {
                                break;
                            }
                        }
                    }
                    if end == Some(span.offset) {
                        kept.extend(bridge);
                        if let Some(run) = runs.last_mut() {
                            run.1 = span.offset + span.len;
                        }
                    } else {
                        runs.push((span.offset, span.offset + span.len));
                    }
                    kept.push(step);
                }
                Step::Node { .. } => kept.push(step),
            }
        }
        runs.retain(|r| r.1 > r.0);
        let framed = super::car::framed_len;
        let blocks: u64 = kept
            .iter()
            .map(|s| match s {
                Step::Node { cid, bytes } => framed(cid, bytes.len() as u64),
                Step::Leaf { span, write: true } => framed(span.cid, span.len),
                Step::Leaf { write: false, .. } => 0,
            })
            .sum();
        let len = super::car::car_header(start).len() as u64 + blocks;
        CarPlan { steps: kept, runs, len }
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn index_of(data: &[u8], params: Params) -> BlockIndex {
        let mut imp = Importer::new(params, true);
        imp.write(data, &mut |_| {});
        BlockIndex::of(&imp.finish(&mut |_| {}))
    }

    fn written<'a>(plan: &CarPlan<'a>) -> Vec<&'a ContentCid> {
        plan.steps
            .iter()
            .filter_map(|s| match s {
                Step::Node { cid, .. } => Some(*cid),
                Step::Leaf { span, write: true } => Some(span.cid),
                Step::Leaf { write: false, .. } => None,
            })
            .collect()
    }

    /// Writes the plan's CAR from `data`, as the gateway does.
    fn car(plan: &CarPlan<'_>, start: &ContentCid, data: &[u8]) -> Vec<u8> {
        let mut w = CarWriter::new(start, Vec::new()).unwrap();
        for step in &plan.steps {
            match step {
                Step::Node { cid, bytes } => w.block(cid, bytes).unwrap(),
                Step::Leaf { span, write: true } => {
                    w.block(span.cid, &data[span.offset as usize..(span.offset + span.len) as usize]).unwrap()
                }
                Step::Leaf { .. } => {}
            }
        }
        w.into_inner()
    }

    const SMALL: Params = Params { chunk_size: 4, width: 3 };

    #[test]
    fn depth_first_each_block_once_or_every_time() {
        // 12 leaves of which several repeat: "aaaa" x4, then distinct.
        let data = b"aaaaaaaaaaaaaaaa0123456789abcdefghijklmnopqrstuvwxyzABCD";
        let index = index_of(data, SMALL);
        let dag = Dag::of(&index).unwrap();
        let root = index.root().unwrap().clone();
        let all = dag.plan(&root, CarOptions::default()).unwrap();
        let cids = written(&all);
        assert_eq!(cids[0], &root, "the root first");
        let distinct: HashSet<&ContentCid> = cids.iter().copied().collect();
        assert_eq!(distinct.len(), cids.len(), "dups=n: each block once");
        let every: HashSet<&ContentCid> = index.blocks().iter().map(PlannedBlock::cid).collect();
        assert_eq!(distinct, every, "every block of the DAG");
        assert_eq!(all.runs, [(0, data.len() as u64)]);
        assert_eq!(all.len, car(&all, &root, data).len() as u64);

        let with_dups = dag.plan(&root, CarOptions { dups: true, ..CarOptions::default() }).unwrap();
        let leaves: Vec<_> = with_dups.steps.iter().filter_map(|s| match s { Step::Leaf { span, .. } => Some(span.offset), _ => None }).collect();
        assert_eq!(leaves, (0..data.len() as u64).step_by(4).collect::<Vec<_>>(), "dups=y: every leaf, in file order");
        // Depth-first: each node, then what each of its links leads to, in link order.
        fn dfs(cid: &ContentCid, nodes: &HashMap<ContentCid, Vec<u8>>, out: &mut Vec<ContentCid>) {
            out.push(cid.clone());
            if let Some(bytes) = nodes.get(cid) {
                for link in dagpb::links(bytes).unwrap() {
                    dfs(&ContentCid::from_bytes(&link.hash).unwrap(), nodes, out);
                }
            }
        }
        let nodes: HashMap<ContentCid, Vec<u8>> = index.blocks().iter().filter_map(|b| match b {
            PlannedBlock::Node(n) => Some((n.cid.clone(), n.bytes.clone())),
            PlannedBlock::Leaf { .. } => None,
        }).collect();
        let mut expected = Vec::new();
        dfs(&root, &nodes, &mut expected);
        assert_eq!(written(&with_dups).into_iter().cloned().collect::<Vec<_>>(), expected);
        let mut once = HashSet::new();
        expected.retain(|c| once.insert(c.clone()));
        assert_eq!(written(&all).into_iter().cloned().collect::<Vec<_>>(), expected, "dups=n: the same walk, repeats left out");

        let ipfs_car = dag.plan(&root, CarOptions { dfs: false, dups: true, ..CarOptions::default() }).unwrap();
        let mut reference = CarWriter::new(&root, Vec::new()).unwrap();
        let mut imp = Importer::new(SMALL, true);
        imp.write(data, &mut |_| {});
        reference.plan(&imp.finish(&mut |_| {}), &data[..]).unwrap();
        assert_eq!(car(&ipfs_car, &root, data), reference.into_inner(), "order=unk; dups=y is ipfs-car's CAR");
    }

    #[test]
    fn scopes_and_entity_bytes() {
        let data: Vec<u8> = (0..100u8).collect();
        let index = index_of(&data, SMALL);
        let dag = Dag::of(&index).unwrap();
        let root = index.root().unwrap().clone();
        let opts = |scope, bytes: Option<&str>| CarOptions { scope, bytes: bytes.map(|b| EntityBytes::parse(b).unwrap()), ..CarOptions::default() };
        let block = dag.plan(&root, opts(Scope::Block, None)).unwrap();
        assert_eq!(written(&block), [&root]);
        assert_eq!(block.runs, []);
        assert_eq!(dag.plan(&root, opts(Scope::Entity, None)).unwrap(), dag.plan(&root, opts(Scope::All, None)).unwrap());

        let leaf_offsets = |plan: &CarPlan<'_>| -> Vec<u64> {
            plan.steps.iter().filter_map(|s| match s { Step::Leaf { span, write: true } => Some(span.offset), _ => None }).collect()
        };
        let range = |b: &str| dag.plan(&root, opts(Scope::All, Some(b))).unwrap();
        assert_eq!(leaf_offsets(&range("0:*")), (0..100).step_by(4).collect::<Vec<_>>());
        assert_eq!(leaf_offsets(&range("5:9")), [4, 8]);
        assert_eq!(range("5:9").runs, [(4, 12)]);
        assert_eq!(leaf_offsets(&range("-10:*")), [88, 92, 96]);
        assert_eq!(leaf_offsets(&range("-1000:3")), [0]);
        assert_eq!(leaf_offsets(&range("50:-45")), [48, 52]);
        assert_eq!(leaf_offsets(&range("98:5000")), [96]);
        assert_eq!(written(&range("9:3")), [&root], "an empty range: the root block alone");
        assert_eq!(dag.plan(&root, opts(Scope::All, Some("100:*"))), Err(PlanError::OutOfRange));
        // Every node on the way to a leaf comes with it, and nothing else.
        let plan = range("50:50");
        assert_eq!(leaf_offsets(&plan), [48]);
        let nodes = written(&plan).len() - 1;
        assert!(nodes >= 2, "root and the nodes above the leaf");
        assert_eq!(plan.len, car(&plan, &root, &data).len() as u64);

        // Another block of the DAG: its own sub-DAG, its own offsets.
        let inner = index.blocks().iter().find_map(|b| match b {
            PlannedBlock::Node(n) if n.cid != root => Some(n.cid.clone()),
            _ => None,
        }).unwrap();
        let sub = dag.plan(&inner, CarOptions::default()).unwrap();
        assert_eq!(written(&sub)[0], &inner);
        assert_eq!(sub.runs, [(0, 12)], "the first node covers the first three leaves");
        assert_eq!(leaf_offsets(&dag.plan(&inner, opts(Scope::All, Some("-1:*"))).unwrap()), [8]);
        let leaf = index.leaves().nth(3).unwrap().cid.clone();
        assert_eq!(written(&dag.plan(&leaf, CarOptions::default()).unwrap()), [&leaf]);
        let stranger = ContentCid::of(CODEC_RAW, b"not here");
        assert_eq!(dag.plan(&stranger, CarOptions::default()), Err(PlanError::NotInDag));
    }

    #[test]
    fn a_single_leaf_and_an_empty_file() {
        for data in [&b""[..], b"abc"] {
            let index = index_of(data, Params::IPFS_CAR);
            let dag = Dag::of(&index).unwrap();
            let root = index.root().unwrap().clone();
            for scope in [Scope::Block, Scope::Entity, Scope::All] {
                let plan = dag.plan(&root, CarOptions { scope, ..CarOptions::default() }).unwrap();
                assert_eq!(written(&plan), [&root]);
                assert_eq!(plan.len, car(&plan, &root, data).len() as u64);
            }
            let ranged = dag.plan(&root, CarOptions { bytes: EntityBytes::parse("0:0"), ..CarOptions::default() });
            if data.is_empty() {
                assert_eq!(written(&ranged.unwrap()), [&root]);
            } else {
                assert_eq!(written(&ranged.unwrap()), [&root]);
                assert_eq!(dag.plan(&root, CarOptions { bytes: EntityBytes::parse("3:*"), ..CarOptions::default() }), Err(PlanError::OutOfRange));
            }
        }
    }

    #[test]
    fn entity_bytes_syntax() {
        assert_eq!(EntityBytes::parse("0:*"), Some(EntityBytes { from: 0, to: None }));
        assert_eq!(EntityBytes::parse("-1024:*"), Some(EntityBytes { from: -1024, to: None }));
        assert_eq!(EntityBytes::parse("499:-1000"), Some(EntityBytes { from: 499, to: Some(-1000) }));
        for bad in ["", "0", "*:0", "a:1", "1:", ":1", "1:2:3", "+1:2", "1:-", "1 :2", "99999999999999999999:1"] {
            assert_eq!(EntityBytes::parse(bad), None, "{bad:?}");
        }
    }
}
