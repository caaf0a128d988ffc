//! Which blocks of a stored DAG a CAR response carries, and in what order,
//! as the IPFS trustless gateway asks (`dag-scope`, `entity-bytes`,
//! `order`, `dups`): worked out from the block index alone, before a byte
//! of content is read.
//!
//! `order=dfs` is depth-first from the requested block, each node before
//! its children, children in link order. Leaves are then met in file
//! order, so the content a CAR needs is always one contiguous span of the
//! stored object, read once from start to end. With `dups=n` a block met
//! again is not written again (a repeated leaf inside that span is still
//! read past). The CAR exactly as ipfs-car writes it (leaves first, each
//! node once complete, repeats written again) is `order=unk; dups=y`.

use super::cids::ContentCid;
use super::dagpb;
use super::importer::PlannedBlock;
use super::index::{BlockIndex, LeafSpan};
use super::varint::put;
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
    /// The span of the object the leaves are read from, `from..to`
    /// (empty when no leaf is read).
    pub reads: (u64, u64),
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
    len: u64,
}

/// A stored DAG read from its block index: its nodes with their children
/// and content length, its leaves by position.
pub struct Dag<'a> {
    index: &'a BlockIndex,
    nodes: Vec<Node<'a>>,
    by_cid: HashMap<&'a ContentCid, usize>,
    leaves: Vec<LeafSpan<'a>>,
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
            for link in dagpb::links(bytes).map_err(PlanError::Broken)? {
                let child = ContentCid::from_bytes(&link.hash).map_err(|_| broken("a link that is not a stored block"))?;
                if let Some(&i) = by_cid.get(&child) {
                    children.push(Child::Node(i));
                } else if let Some(&len) = leaf_len.get(&child) {
                    children.push(Child::Leaf(child, len));
                } else {
                    return Err(broken("a node links a block the index lacks"));
                }
            }
            built.push(Node { cid, bytes, children, len: 0 });
        }
        let mut dag = Dag { index, nodes: built, by_cid, leaves: index.leaves().collect() };
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

    /// The leaf at byte `offset` of the file, which must be `cid`.
    fn leaf_at(&self, offset: u64, cid: &ContentCid) -> Result<LeafSpan<'a>, PlanError> {
        let at = self.leaves.partition_point(|l| l.offset < offset);
        match self.leaves.get(at) {
            Some(leaf) if leaf.offset == offset && leaf.cid == cid => Ok(*leaf),
            _ => Err(PlanError::Broken("the leaves do not follow the DAG".into())),
        }
    }

    /// Where the content under node `target` first starts in the file.
    fn offset_of(&self, at: usize, base: u64, target: usize, depth: usize) -> Option<u64> {
        if at == target {
            return Some(base);
        }
        if depth > MAX_DEPTH {
            return None;
        }
        let mut offset = base;
        for child in &self.nodes[at].children {
            match child {
                Child::Leaf(_, len) => offset += len,
                Child::Node(j) => {
                    if let Some(found) = self.offset_of(*j, offset, target, depth + 1) {
                        return Some(found);
                    }
                    offset += self.nodes[*j].len;
                }
            }
        }
        None
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
                } else {
                    let root_index = self.by_cid.get(root).copied();
                    let base = match root_index {
                        Some(r) => self.offset_of(r, 0, i, 0).ok_or_else(|| PlanError::Broken("a node outside its DAG".into()))?,
                        None => 0,
                    };
                    let range = range.map(|(a, b)| (base + a, base + b));
                    let mut seen = HashSet::new();
                    self.walk(i, base, range, options.dups, &mut seen, &mut steps, 0)?;
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
                        let span = self.leaf_at(offset, cid)?;
                        let write = dups || seen.insert(span.cid);
                        steps.push(Step::Leaf { span, write });
                    }
                    offset += len;
                }
                Child::Node(j) => {
                    let len = self.nodes[*j].len;
                    if meets(offset, len) {
                        self.walk(*j, offset, range, dups, seen, steps, depth + 1)?;
                    }
                    offset += len;
                }
            }
        }
        Ok(())
    }

    /// Drops leaves read only to be skipped at either end, and works out
    /// the span read and the CAR's length.
    fn finish(&self, start: &ContentCid, mut steps: Vec<Step<'a>>) -> CarPlan<'a> {
        let skipped = |s: &Step<'_>| matches!(s, Step::Leaf { write: false, .. });
        while steps.last().is_some_and(skipped) {
            steps.pop();
        }
        let first_written = steps.iter().position(|s| !skipped(s)).unwrap_or(steps.len());
        let mut kept = Vec::with_capacity(steps.len());
        for (n, step) in steps.into_iter().enumerate() {
            // A skipped leaf before the first leaf written need not be read.
            if n < first_written && skipped(&step) {
                continue;
            }
            kept.push(step);
        }
        let leaves = kept.iter().filter_map(|s| match s {
            Step::Leaf { span, .. } => Some(*span),
            Step::Node { .. } => None,
        });
        let (mut from, mut to) = (u64::MAX, 0);
        for leaf in leaves {
            from = from.min(leaf.offset);
            to = to.max(leaf.offset + leaf.len);
        }
        let reads = if from < to { (from, to) } else { (0, 0) };
        let framed = |cid: &ContentCid, data_len: u64| {
            let n = cid.as_bytes().len() as u64 + data_len;
            let mut v = Vec::new();
            put(&mut v, n);
            v.len() as u64 + n
        };
        let blocks: u64 = kept
            .iter()
            .map(|s| match s {
                Step::Node { cid, bytes } => framed(cid, bytes.len() as u64),
                Step::Leaf { span, write: true } => framed(span.cid, span.len),
                Step::Leaf { write: false, .. } => 0,
            })
            .sum();
        let len = super::car::car_header(start).len() as u64 + blocks;
        CarPlan { steps: kept, reads, len }
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
        assert_eq!(all.reads, (0, data.len() as u64));
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
        assert_eq!(block.reads, (0, 0));
        assert_eq!(dag.plan(&root, opts(Scope::Entity, None)).unwrap(), dag.plan(&root, opts(Scope::All, None)).unwrap());

        let leaf_offsets = |plan: &CarPlan<'_>| -> Vec<u64> {
            plan.steps.iter().filter_map(|s| match s { Step::Leaf { span, write: true } => Some(span.offset), _ => None }).collect()
        };
        let range = |b: &str| dag.plan(&root, opts(Scope::All, Some(b))).unwrap();
        assert_eq!(leaf_offsets(&range("0:*")), (0..100).step_by(4).collect::<Vec<_>>());
        assert_eq!(leaf_offsets(&range("5:9")), [4, 8]);
        assert_eq!(range("5:9").reads, (4, 12));
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
        assert_eq!(sub.reads, (0, 12), "the first node covers the first three leaves");
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
