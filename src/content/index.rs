//! The block index of a stored file: every block's CID in CAR order, with
//! each leaf's place in the file and each node's bytes. Kept with the
//! stored object, it is what serves one block, a byte range or the CAR
//! without re-importing the file, and what an audit picks leaves from.
//!
//! Binary form: version byte 1, a varint block count, then per block a tag
//! (0 leaf, 1 node), the CID (varint length + bytes) and either the leaf's
//! offset and length (varints) or the node's bytes (varint length + bytes).

use super::cids::{ContentCid, CODEC_RAW};
use super::importer::{Imported, PlannedBlock};
use super::layout::NodeBlock;
use super::varint::{put, take};
use std::io;

const VERSION: u8 = 1;
const LEAF: u8 = 0;
const NODE: u8 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct BlockIndex {
    /// Root last.
    blocks: Vec<PlannedBlock>,
}

/// A leaf: `len` bytes of the file from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafSpan<'a> {
    pub cid: &'a ContentCid,
    pub offset: u64,
    pub len: u64,
}

/// The root block: a node's bytes, or a leaf (the whole file, one chunk at most).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootBlock<'a> {
    Node(&'a [u8]),
    Leaf(LeafSpan<'a>),
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("block index: {what}"))
}

impl BlockIndex {
    pub fn of(imported: &Imported) -> Self {
        Self { blocks: imported.plan.clone() }
    }

    pub fn blocks(&self) -> &[PlannedBlock] {
        &self.blocks
    }

    pub fn root(&self) -> Option<&ContentCid> {
        self.blocks.last().map(|b| match b {
            PlannedBlock::Leaf { cid, .. } => cid,
            PlannedBlock::Node(node) => &node.cid,
        })
    }

    pub fn root_block(&self) -> Option<RootBlock<'_>> {
        self.blocks.last().map(|b| match b {
            PlannedBlock::Leaf { cid, offset, len } => RootBlock::Leaf(LeafSpan { cid, offset: *offset, len: *len }),
            PlannedBlock::Node(node) => RootBlock::Node(&node.bytes),
        })
    }

    /// The block `cid` of this DAG (the root or any other), if it is one.
    pub fn block(&self, cid: &ContentCid) -> Option<RootBlock<'_>> {
        self.blocks.iter().find_map(|b| match b {
            PlannedBlock::Leaf { cid: c, offset, len } if c == cid => Some(RootBlock::Leaf(LeafSpan { cid: c, offset: *offset, len: *len })),
            PlannedBlock::Node(node) if &node.cid == cid => Some(RootBlock::Node(&node.bytes)),
            _ => None,
        })
    }

    /// The leaves in file order (the CAR lists them so), each once.
    pub fn leaves(&self) -> impl Iterator<Item = LeafSpan<'_>> {
        self.blocks.iter().filter_map(|b| match b {
            PlannedBlock::Leaf { cid, offset, len } => Some(LeafSpan { cid, offset: *offset, len: *len }),
            PlannedBlock::Node(_) => None,
        })
    }

    /// The leaves holding bytes `start..=end` of the file.
    pub fn leaves_covering(&self, start: u64, end: u64) -> impl Iterator<Item = LeafSpan<'_>> {
        self.leaves().filter(move |l| l.len > 0 && l.offset <= end && l.offset + l.len > start)
    }

    /// The length of the CAR (`car_header` of the root, then every block framed).
    pub fn car_len(&self) -> u64 {
        let Some(root) = self.root() else { return 0 };
        let framed = super::car::framed_len;
        let blocks: u64 = self
            .blocks
            .iter()
            .map(|b| match b {
                PlannedBlock::Leaf { cid, len, .. } => framed(cid, *len),
                PlannedBlock::Node(node) => framed(&node.cid, node.bytes.len() as u64),
            })
            .sum();
        super::car::car_header(root).len() as u64 + blocks
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.blocks.len() * 48);
        out.push(VERSION);
        put(&mut out, self.blocks.len() as u64);
        for block in &self.blocks {
            match block {
                PlannedBlock::Leaf { cid, offset, len } => {
                    out.push(LEAF);
                    put(&mut out, cid.as_bytes().len() as u64);
                    out.extend_from_slice(cid.as_bytes());
                    put(&mut out, *offset);
                    put(&mut out, *len);
                }
                PlannedBlock::Node(node) => {
                    out.push(NODE);
                    put(&mut out, node.cid.as_bytes().len() as u64);
                    out.extend_from_slice(node.cid.as_bytes());
                    put(&mut out, node.bytes.len() as u64);
                    out.extend_from_slice(&node.bytes);
                }
            }
        }
        out
    }

    /// Reads an encoded index of a file of `size` bytes; checks that the
    /// leaves tile the file in order and that every node's bytes match its CID.
    pub fn decode(mut input: &[u8], size: u64) -> io::Result<Self> {
        let input = &mut input;
        let byte = |input: &mut &[u8]| -> io::Result<u8> {
            let (&b, rest) = input.split_first().ok_or_else(|| bad("cut short"))?;
            *input = rest;
            Ok(b)
        };
        let bytes = |input: &mut &[u8]| -> io::Result<Vec<u8>> {
            let n = take(input).ok_or_else(|| bad("bad length"))? as usize;
            if n > input.len() {
                return Err(bad("cut short"));
            }
            let (head, rest) = input.split_at(n);
            *input = rest;
            Ok(head.to_vec())
        };
        if byte(input)? != VERSION {
            return Err(bad("unknown version"));
        }
        let count = take(input).ok_or_else(|| bad("bad count"))?;
        let mut blocks = Vec::with_capacity(count.min(1 << 20) as usize);
        let mut next_offset = 0u64;
        for _ in 0..count {
            let tag = byte(input)?;
            let cid = ContentCid::from_bytes(&bytes(input)?).map_err(|e| bad(&e))?;
            match tag {
                LEAF => {
                    let offset = take(input).ok_or_else(|| bad("bad offset"))?;
                    let len = take(input).ok_or_else(|| bad("bad length"))?;
                    if cid.codec() != CODEC_RAW || offset != next_offset || len > size - offset.min(size) {
                        return Err(bad("leaves do not tile the file"));
                    }
                    next_offset = offset + len;
                    blocks.push(PlannedBlock::Leaf { cid, offset, len });
                }
                NODE => {
                    let node = bytes(input)?;
                    if !cid.verifies(&node) {
                        return Err(bad("a node does not match its CID"));
                    }
                    blocks.push(PlannedBlock::Node(NodeBlock { cid, bytes: node }));
                }
                _ => return Err(bad("unknown block tag")),
            }
        }
        if !input.is_empty() || next_offset != size || blocks.is_empty() {
            return Err(bad("does not describe the whole file"));
        }
        Ok(Self { blocks })
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn index_of(data: &[u8], params: Params) -> (Imported, BlockIndex) {
        let mut imp = Importer::new(params, true);
        imp.write(data, &mut |_| {});
        let imported = imp.finish(&mut |_| {});
        let index = BlockIndex::of(&imported);
        (imported, index)
    }

    #[test]
    fn round_trips_and_knows_the_car_length() {
        let small = Params { chunk_size: 4, width: 3 };
        for data in [&b""[..], b"abc", b"abcd", b"0123456789abcdefghijklmnopqrstuvwxyz"] {
            let (imported, index) = index_of(data, small);
            let decoded = BlockIndex::decode(&index.encode(), data.len() as u64).expect("decodes");
            assert_eq!(decoded, index);
            assert_eq!(index.root(), Some(&imported.root));
            let mut car = CarWriter::new(&imported.root, Vec::new()).unwrap();
            car.plan(&imported, data).unwrap();
            assert_eq!(index.car_len(), car.into_inner().len() as u64, "{data:?}");
            let covered: u64 = index.leaves().map(|l| l.len).sum();
            assert_eq!(covered, data.len() as u64);
        }
        let (_, index) = index_of(b"0123456789abcdefghijklmnopqrstuvwxyz", small);
        let spans: Vec<(u64, u64)> = index.leaves_covering(5, 9).map(|l| (l.offset, l.len)).collect();
        assert_eq!(spans, [(4, 4), (8, 4)]);
    }

    #[test]
    fn refuses_what_does_not_describe_the_file() {
        let (_, index) = index_of(b"0123456789", Params { chunk_size: 4, width: 3 });
        let bytes = index.encode();
        assert!(BlockIndex::decode(&bytes, 11).is_err(), "wrong size");
        assert!(BlockIndex::decode(&bytes[..bytes.len() - 1], 10).is_err(), "cut short");
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(BlockIndex::decode(&extra, 10).is_err(), "trailing bytes");
        let mut tampered = bytes.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1; // a byte of the root node
        assert!(BlockIndex::decode(&tampered, 10).is_err(), "node bytes changed");
        assert!(BlockIndex::decode(&[], 0).is_err());
    }
}
