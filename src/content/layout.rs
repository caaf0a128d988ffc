//! The balanced layout of `@ipld/unixfs` (`withWidth(1024)` in ipfs-car).
//!
//! Leaves queue up in row 0's input; once more than `width` are waiting,
//! the first `width` become a node, pushed onto row 0; once a row holds
//! more than `width` nodes, its first `width` become a node one row up. On
//! close, what waits is folded up level by level (a lone trailing node still
//! gets its own parent while a higher row exists), and the top row becomes
//! the root (itself, if it holds exactly one node).
//!
//! Blocks are returned in the order ipfs-car writes them. While the file
//! streams, a node is written as soon as it is made (its children are all
//! written already). On close, `@ipld/unixfs` encodes nodes concurrently:
//! every node whose children are all written starts at once (in the order
//! the nodes were made), then nodes waiting on the last leaves, and each
//! finished node lets its parent start: a first-in first-out queue, which
//! `close` reproduces.

use super::cids::{ContentCid, CODEC_DAG_PB};
use super::dagpb;

/// A child as its parent records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub cid: ContentCid,
    /// Bytes of file content under this link.
    pub content_len: u64,
    /// Bytes of all blocks under this link (UnixFS `Tsize`).
    pub dag_len: u64,
}

/// A node block the layout made.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeBlock {
    pub cid: ContentCid,
    pub bytes: Vec<u8>,
}

/// What the root of a closed tree is.
#[derive(Debug)]
pub enum Root {
    /// No content at all: the root is the empty raw block (not yet written).
    Empty,
    /// One chunk: the root is that leaf (already written).
    Leaf(Link),
    /// The root is the last node returned by `close`.
    Node(Link),
}

/// A link waiting in a row, with the identity of what it points at (CIDs
/// repeat when chunks repeat; identities do not).
#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    link: Link,
}

/// A node just made: its block and the identities of its children.
struct Made {
    id: u64,
    children: Vec<u64>,
    block: NodeBlock,
}

pub struct TreeBuilder {
    width: usize,
    next_id: u64,
    /// The first leaf, held until a second one shows the file has branches.
    head: Option<Entry>,
    leaves: Vec<Entry>,
    rows: Vec<Vec<Entry>>,
}

/// Moves the first `n` items of `row` out.
fn take_front(row: &mut Vec<Entry>, n: usize) -> Vec<Entry> {
    let n = n.min(row.len());
    row.drain(..n).collect()
}

impl TreeBuilder {
    pub fn new(width: usize) -> Self {
        assert!(width >= 2, "a node needs room for two links");
        Self { width, next_id: 0, head: None, leaves: Vec::new(), rows: Vec::new() }
    }

    fn entry(&mut self, link: Link) -> Entry {
        self.next_id += 1;
        Entry { id: self.next_id, link }
    }

    fn make_node(&mut self, children: Vec<Entry>, made: &mut Vec<Made>) -> Entry {
        let links: Vec<Link> = children.iter().map(|c| c.link.clone()).collect();
        let bytes = dagpb::file_node(&links);
        let cid = ContentCid::of(CODEC_DAG_PB, &bytes);
        let link = Link {
            cid: cid.clone(),
            content_len: links.iter().map(|c| c.content_len).sum(),
            dag_len: bytes.len() as u64 + links.iter().map(|c| c.dag_len).sum::<u64>(),
        };
        let entry = self.entry(link);
        made.push(Made { id: entry.id, children: children.iter().map(|c| c.id).collect(), block: NodeBlock { cid, bytes } });
        entry
    }

    /// Adds a leaf to the layout; returns its identity.
    fn add_leaf(&mut self, leaf: Link, made: &mut Vec<Made>) -> u64 {
        let entry = self.entry(leaf);
        let id = entry.id;
        if self.head.is_none() && self.leaves.is_empty() && self.rows.is_empty() {
            self.head = Some(entry);
            return id;
        }
        if let Some(head) = self.head.take() {
            self.leaves.push(head);
        }
        self.leaves.push(entry);
        if self.leaves.len() > self.width {
            self.flush(false, made);
        }
        id
    }

    /// Adds the next leaf; appends the nodes this completes, in write order.
    pub fn push_leaf(&mut self, leaf: Link, out: &mut Vec<NodeBlock>) {
        let mut made = Vec::new();
        self.add_leaf(leaf, &mut made);
        out.extend(made.into_iter().map(|m| m.block));
    }

    fn row(&mut self, depth: usize) -> &mut Vec<Entry> {
        while self.rows.len() <= depth {
            self.rows.push(Vec::new());
        }
        &mut self.rows[depth]
    }

    fn flush(&mut self, close: bool, made: &mut Vec<Made>) {
        let width = self.width;
        while self.leaves.len() > width || (close && !self.leaves.is_empty()) {
            let children = take_front(&mut self.leaves, width);
            let entry = self.make_node(children, made);
            self.row(0).push(entry);
        }
        let mut depth = 0;
        while depth < self.rows.len() {
            depth += 1;
            loop {
                let len = self.rows[depth - 1].len();
                let higher_row_exists = depth < self.rows.len();
                if !(len > width || (close && len > 0 && higher_row_exists)) {
                    break;
                }
                let children = take_front(&mut self.rows[depth - 1], width);
                let entry = self.make_node(children, made);
                self.row(depth).push(entry);
            }
        }
    }

    /// Finishes the tree, `last` being the file's final leaf if it was cut
    /// only now (its block already written); nodes still to write are
    /// appended to `out` in ipfs-car's order, the root last.
    pub fn close(mut self, last: Option<Link>, out: &mut Vec<NodeBlock>) -> Root {
        let mut made = Vec::new();
        // Leaves whose links the closing step delivers: the final one, and
        // the head if it was still held back.
        let mut fresh = Vec::new();
        if let Some(leaf) = last {
            if let Some(head) = &self.head {
                fresh.push(head.id);
            }
            fresh.push(self.add_leaf(leaf, &mut made));
        }
        if let Some(head) = self.head.take() {
            return Root::Leaf(head.link);
        }
        if self.leaves.is_empty() && self.rows.is_empty() {
            return Root::Empty;
        }
        self.flush(true, &mut made);
        let mut top = self.rows.pop().unwrap_or_default();
        let root = if top.len() == 1 { top.remove(0) } else { self.make_node(top, &mut made) };
        write_order(made, &fresh, out);
        Root::Node(root.link)
    }
}

/// Orders the nodes made while closing as `@ipld/unixfs` writes them (see
/// the module comment): nodes with every child already written first, in
/// the order they were made; then those the fresh leaves complete; each
/// written node may complete its parent, which joins the end of the queue.
fn write_order(made: Vec<Made>, fresh: &[u64], out: &mut Vec<NodeBlock>) {
    use std::collections::{HashMap, VecDeque};
    let pending: std::collections::HashSet<u64> = made.iter().map(|m| m.id).chain(fresh.iter().copied()).collect();
    let mut missing: HashMap<u64, usize> = HashMap::new();
    let mut parent_of: HashMap<u64, usize> = HashMap::new();
    let mut queue = VecDeque::new();
    for (index, m) in made.iter().enumerate() {
        let waits = m.children.iter().filter(|c| pending.contains(c)).count();
        for c in m.children.iter().filter(|c| pending.contains(c)) {
            parent_of.insert(*c, index);
        }
        missing.insert(m.id, waits);
        if waits == 0 {
            queue.push_back(index);
        }
    }
    let mut slots: Vec<Option<Made>> = made.into_iter().map(Some).collect();
    let mut done = |id: u64, queue: &mut VecDeque<usize>, slots: &[Option<Made>]| {
        if let Some(&parent) = parent_of.get(&id) {
            if let Some(parent_id) = slots[parent].as_ref().map(|m| m.id) {
                let left = missing.get_mut(&parent_id).expect("every made node is counted");
                *left -= 1;
                if *left == 0 {
                    queue.push_back(parent);
                }
            }
        }
    };
    for id in fresh {
        done(*id, &mut queue, &slots);
    }
    while let Some(index) = queue.pop_front() {
        let m = slots[index].take().expect("a node is queued once");
        done(m.id, &mut queue, &slots);
        out.push(m.block);
    }
    debug_assert!(slots.iter().all(Option::is_none), "every node written");
}
