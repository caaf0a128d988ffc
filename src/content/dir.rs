//! UnixFS directories, byte-identical to `ipfs-car pack <dir>` (v3, with
//! `@ipld/unixfs` 3 underneath).
//!
//! What ipfs-car does with a folder, and so what this does:
//! - The files' paths lose the deepest directory all of them share (its
//!   `files-from-path` names files relative to their common parent), and
//!   are sorted as JavaScript sorts strings (by UTF-16 code units).
//! - A directory tree is made in that order; each file is imported as a
//!   file on its own (the importer of this module), each directory becomes
//!   a dag-pb node `{Links sorted by name bytes, Data: UnixFS Directory}`,
//!   or, past 1,000 entries, a HAMT: UnixFS HAMTShard nodes of fanout 256
//!   keyed by murmur3-x64-64 of the name (8 bits a level; past the 64 bits
//!   of a hash, the hash of the name with the level's frame number
//!   appended), a slot holding one entry (named by the slot as two upper
//!   case hex digits, then the entry's name) or a child shard (named by the
//!   slot alone).
//! - The CAR lists each entry's blocks in tree order (a file's as for a
//!   single file; a directory's entries, then its own node or shards, each
//!   child shard before its parent), the root directory last.

use super::cids::{ContentCid, CODEC_DAG_PB};
use super::dagpb;
use super::importer::{Imported, PlannedBlock};
use super::layout::NodeBlock;
use super::varint::put;
use std::collections::{BTreeMap, HashMap};

/// Most entries of a directory written as one node (ipfs-car's threshold).
pub const SHARD_THRESHOLD: usize = 1000;
const FANOUT: u64 = 256;
const MURMUR3_X64_64: u64 = 0x22;

/// One file of a folder: its path in the folder (`/`-separated), what
/// importing it gave, and where its bytes start in the folder's object
/// (the leaves of `imported` count from the start of the file).
pub struct FolderFile<'a> {
    pub path: &'a str,
    pub imported: &'a Imported,
    pub base: u64,
}

/// The parts of a path, checked: no empty part, no `.` or `..`.
pub fn path_parts(path: &str) -> Result<Vec<&str>, String> {
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts {
        if part.is_empty() || *part == "." || *part == ".." {
            return Err(format!("{path:?} is not a relative path of a file"));
        }
    }
    Ok(parts)
}

/// How many leading directories all these paths (split into parts, the
/// file's name last) share: the depth of the deepest folder every file is in.
pub fn common_depth<'a, 'b: 'a>(mut paths: impl Iterator<Item = &'a [&'b str]>) -> usize {
    let Some(first) = paths.next() else { return 0 };
    let mut n = first.len().saturating_sub(1);
    for parts in paths {
        n = n.min(parts.len().saturating_sub(1));
        n = (0..n).find(|&k| parts[k] != first[k]).unwrap_or(n);
    }
    n
}

/// Orders strings as JavaScript's `<` does: by UTF-16 code units.
pub fn js_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

enum Entry {
    File(usize),
    Dir(Dir),
}

#[derive(Default)]
struct Dir {
    /// In the order entries were first met.
    entries: Vec<(String, Entry)>,
    by_name: HashMap<String, usize>,
}

/// A child as its directory links it.
struct Named {
    name: String,
    cid: ContentCid,
    dag_len: u64,
}

/// The folder of `files` as ipfs-car makes it: its root directory and
/// every block in CAR order (leaf offsets in the folder's object), as an
/// [`Imported`] whose size is the bytes of all files together.
pub fn folder(files: &[FolderFile<'_>]) -> Result<Imported, String> {
    let mut split: Vec<(Vec<&str>, usize)> = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        split.push((path_parts(file.path)?, i));
    }
    // The deepest directory every file is in goes (ipfs-car names files
    // relative to it).
    let common = common_depth(split.iter().map(|(parts, _)| parts.as_slice()));
    let mut order: Vec<(String, Vec<&str>, usize)> =
        split.into_iter().map(|(parts, i)| (parts[common..].join("/"), parts[common..].to_vec(), i)).collect();
    order.sort_by(|a, b| js_order(&a.0, &b.0));

    let mut root = Dir::default();
    for (full, parts, file) in &order {
        let mut dir = &mut root;
        for (k, part) in parts.iter().enumerate() {
            let last = k == parts.len() - 1;
            match dir.by_name.get(*part).copied() {
                None => {
                    dir.by_name.insert((*part).to_owned(), dir.entries.len());
                    let entry = if last { Entry::File(*file) } else { Entry::Dir(Dir::default()) };
                    dir.entries.push(((*part).to_owned(), entry));
                }
                Some(_) if last => return Err(format!("{full:?} is given twice, or is also a directory")),
                Some(_) => {}
            }
            if !last {
                let at = dir.by_name[*part];
                dir = match &mut dir.entries[at].1 {
                    Entry::Dir(sub) => sub,
                    Entry::File(_) => return Err(format!("{part:?} is a file and a directory in {full:?}")),
                };
            }
        }
    }
    let mut plan = Vec::new();
    let top = finish(&root, files, &mut plan);
    let size = files.iter().map(|f| f.imported.size).sum();
    Ok(Imported { root: top.cid, size, plan })
}

/// Writes the blocks of `dir` (its entries', then its own) into `plan`;
/// returns its link.
fn finish(dir: &Dir, files: &[FolderFile<'_>], plan: &mut Vec<PlannedBlock>) -> Named {
    let mut links = Vec::with_capacity(dir.entries.len());
    for (name, entry) in &dir.entries {
        let (cid, dag_len) = match entry {
            Entry::File(i) => file_blocks(&files[*i], plan),
            Entry::Dir(sub) => {
                let named = finish(sub, files, plan);
                (named.cid, named.dag_len)
            }
        };
        links.push(Named { name: name.clone(), cid, dag_len });
    }
    let (cid, dag_len) = if links.len() <= SHARD_THRESHOLD { flat(links, plan) } else { sharded(links, plan) };
    Named { name: String::new(), cid, dag_len }
}

/// A file's blocks, moved to its place in the folder's object; its root
/// and the bytes of its DAG (`Tsize`).
fn file_blocks(file: &FolderFile<'_>, plan: &mut Vec<PlannedBlock>) -> (ContentCid, u64) {
    let mut dag_len = 0;
    for block in &file.imported.plan {
        match block {
            PlannedBlock::Leaf { cid, offset, len } => {
                plan.push(PlannedBlock::Leaf { cid: cid.clone(), offset: file.base + offset, len: *len });
            }
            PlannedBlock::Node(node) => plan.push(PlannedBlock::Node(node.clone())),
        }
    }
    // The root is the plan's last block: a leaf (the whole DAG) or a node
    // (its bytes and what its links record below it).
    match file.imported.plan.last() {
        Some(PlannedBlock::Leaf { len, .. }) => dag_len = *len,
        Some(PlannedBlock::Node(node)) => {
            let below: u64 = dagpb::links(&node.bytes).map(|l| l.iter().map(|l| l.tsize).sum()).unwrap_or(0);
            dag_len = node.bytes.len() as u64 + below;
        }
        None => {}
    }
    (file.imported.root.clone(), dag_len)
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A dag-pb node of `links` (sorted by name bytes, as `@ipld/dag-pb`
/// prepares them) and UnixFS `data`.
fn node(mut links: Vec<Named>, data: &[u8], plan: &mut Vec<PlannedBlock>) -> (ContentCid, u64) {
    links.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut out = Vec::with_capacity(links.len() * 64 + data.len() + 8);
    let mut link = Vec::with_capacity(96);
    for l in &links {
        link.clear();
        put_bytes(&mut link, 0x0a, l.cid.as_bytes()); // Hash
        put_bytes(&mut link, 0x12, l.name.as_bytes()); // Name
        link.push(0x18); // Tsize
        put(&mut link, l.dag_len);
        put_bytes(&mut out, 0x12, &link); // PBNode.Links
    }
    put_bytes(&mut out, 0x0a, data); // PBNode.Data
    let cid = ContentCid::of(CODEC_DAG_PB, &out);
    let dag_len = out.len() as u64 + links.iter().map(|l| l.dag_len).sum::<u64>();
    plan.push(PlannedBlock::Node(NodeBlock { cid: cid.clone(), bytes: out }));
    (cid, dag_len)
}

/// A directory of one node: UnixFS `{Type: Directory}`.
fn flat(links: Vec<Named>, plan: &mut Vec<PlannedBlock>) -> (ContentCid, u64) {
    node(links, &[0x08, 0x01], plan)
}

/// murmur3 x64 128 of `data` (seed 0): its first 64 bits, as
/// `@multiformats/murmur3`'s murmur3-x64-64 gives them (big-endian h1).
pub fn murmur3_x64_64(data: &[u8]) -> [u8; 8] {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let fmix = |mut k: u64| {
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    };
    let (mut h1, mut h2) = (0u64, 0u64);
    let blocks = data.chunks_exact(16);
    let tail = blocks.remainder();
    for block in blocks {
        let k1 = u64::from_le_bytes(block[..8].try_into().expect("8 bytes"));
        let k2 = u64::from_le_bytes(block[8..].try_into().expect("8 bytes"));
        h1 ^= k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 = h1.rotate_left(27).wrapping_add(h2).wrapping_mul(5).wrapping_add(0x52dc_e729);
        h2 ^= k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 = h2.rotate_left(31).wrapping_add(h1).wrapping_mul(5).wrapping_add(0x3849_5ab5);
    }
    let (mut k1, mut k2) = (0u64, 0u64);
    for (i, &b) in tail.iter().enumerate() {
        if i < 8 {
            k1 |= u64::from(b) << (8 * i);
        } else {
            k2 |= u64::from(b) << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        h2 ^= k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
    }
    if !tail.is_empty() {
        h1 ^= k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    h1.to_be_bytes()
}

/// The slot of `name` at `depth` of the HAMT: byte `depth % 8` of the
/// hash frame `depth / 8` (frame 0 the name's hash, frame n the hash of the
/// name with the byte n appended).
pub fn hamt_slot(name: &str, depth: usize) -> u8 {
    let frame = depth / 8;
    let hash = if frame == 0 {
        murmur3_x64_64(name.as_bytes())
    } else {
        let mut key = name.as_bytes().to_vec();
        key.push(frame as u8);
        murmur3_x64_64(&key)
    };
    hash[depth % 8]
}

enum Slot {
    Entry(Named),
    Shard(Shard),
}

#[derive(Default)]
struct Shard {
    slots: BTreeMap<u8, Slot>,
}

impl Shard {
    fn insert(&mut self, entry: Named, depth: usize) {
        let slot = hamt_slot(&entry.name, depth);
        match self.slots.remove(&slot) {
            None => {
                self.slots.insert(slot, Slot::Entry(entry));
            }
            Some(Slot::Entry(there)) => {
                let mut child = Shard::default();
                child.insert(there, depth + 1);
                child.insert(entry, depth + 1);
                self.slots.insert(slot, Slot::Shard(child));
            }
            Some(Slot::Shard(mut child)) => {
                child.insert(entry, depth + 1);
                self.slots.insert(slot, Slot::Shard(child));
            }
        }
    }

    /// Writes this shard's blocks (each child shard first); its link.
    fn finish(self, plan: &mut Vec<PlannedBlock>) -> (ContentCid, u64) {
        let mut bitfield = [0u8; 32];
        let mut links = Vec::with_capacity(self.slots.len());
        for (slot, content) in self.slots {
            bitfield[31 - usize::from(slot / 8)] |= 1 << (slot % 8);
            let prefix = format!("{slot:02X}");
            links.push(match content {
                Slot::Entry(entry) => Named { name: format!("{prefix}{}", entry.name), cid: entry.cid, dag_len: entry.dag_len },
                Slot::Shard(child) => {
                    let (cid, dag_len) = child.finish(plan);
                    Named { name: prefix, cid, dag_len }
                }
            });
        }
        let used = bitfield.iter().position(|&b| b != 0).unwrap_or(bitfield.len());
        let mut data = vec![0x08, 0x05]; // Type: HAMTShard
        put_bytes(&mut data, 0x12, &bitfield[used..]); // Data: the bitfield
        data.push(0x28); // hashType
        put(&mut data, MURMUR3_X64_64);
        data.push(0x30); // fanout
        put(&mut data, FANOUT);
        node(links, &data, plan)
    }
}

/// A directory of more than [`SHARD_THRESHOLD`] entries: a HAMT.
fn sharded(links: Vec<Named>, plan: &mut Vec<PlannedBlock>) -> (ContentCid, u64) {
    let mut root = Shard::default();
    for link in links {
        root.insert(link, 0);
    }
    root.finish(plan)
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn imported(data: &[u8]) -> Imported {
        let mut imp = Importer::new(Params::IPFS_CAR, true);
        imp.write(data, &mut |_| {});
        imp.finish(&mut |_| {})
    }

    /// Values printed by `@multiformats/murmur3` (murmur364.encode).
    #[test]
    fn murmur3_matches_multiformats() {
        let hex = |b: [u8; 8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(murmur3_x64_64(b"")), "0000000000000000");
        assert_eq!(hex(murmur3_x64_64(b"hello")), "cbd8a7b341bd9b02");
        assert_eq!(hex(murmur3_x64_64(b"a.txt")), "59a0c46995547089");
        assert_eq!(hex(murmur3_x64_64(b"file-0001.txt")), "c6b80999e8fbb598");
    }

    /// `ipfs-car pack` of an empty folder: the empty UnixFS directory.
    #[test]
    fn an_empty_folder() {
        let folder = folder(&[]).unwrap();
        assert_eq!(folder.root.to_string(), "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354");
        assert_eq!(folder.size, 0);
    }

    #[test]
    fn paths_are_checked_and_the_common_directory_goes() {
        let a = imported(b"a");
        let b = imported(b"b");
        let one = |path| folder(&[FolderFile { path, imported: &a, base: 0 }]);
        for bad in ["", "/x", "x/", "a//b", "./a", "a/../b", ".."] {
            assert!(one(bad).is_err(), "{bad:?}");
        }
        // A folder of one file is that file in a directory, whatever it was in.
        assert_eq!(one("top/sub/a.txt").unwrap().root, one("a.txt").unwrap().root);
        let two = |p: &'static str, q: &'static str| {
            folder(&[FolderFile { path: p, imported: &a, base: 0 }, FolderFile { path: q, imported: &b, base: 1 }])
        };
        assert_eq!(two("d/x/1", "d/x/2").unwrap().root, two("1", "2").unwrap().root);
        assert_ne!(two("d/x/1", "d/y/2").unwrap().root, two("1", "2").unwrap().root);
        assert!(two("same", "same").is_err());
        assert!(two("x", "x/y").is_err());
        assert!(two("x/y", "x").is_err());
    }

    #[test]
    fn javascript_string_order() {
        // U+FF5E sorts after U+1F600 by UTF-8 bytes' opposite: UTF-16 puts the surrogate first.
        assert_eq!(js_order("\u{1F600}", "\u{FF5E}"), std::cmp::Ordering::Less);
        assert_eq!(js_order("a.txt", "a/x"), std::cmp::Ordering::Less);
    }
}
