//! Content addressing, byte-identical to `ipfs-car pack --no-wrap` (v3).
//!
//! A file is cut into fixed-size chunks (1 MiB); each chunk is a raw block
//! (CIDv1, codec raw, sha2-256). Chunks are grouped by the balanced layout
//! of `@ipld/unixfs` (at most 1024 links per node) into dag-pb UnixFS File
//! nodes. A file of one chunk is its own root. The CAR (v1) lists the
//! blocks in the order ipfs-car writes them: each leaf as it is cut, each
//! node as soon as it is complete, the root last; repeated chunks are
//! written again.
//!
//! Pure and synchronous: no web framework, no database, no async runtime.
//! Memory is a chunk buffer plus at most `width` pending links per tree
//! level; the plan kept for writing a CAR adds one small entry per block.
//!
//! Why some of this is written here rather than taken from a crate (read
//! when this module was written, 2026-11):
//! - `cid` (with its `multihash`) is used for CIDs: parsing, bytes, base32.
//! - `sha2` does the hashing (SHA-NI when the CPU has it).
//! - `rust-unixfs` builds go-ipfs's balanced tree, whose shape differs from
//!   `@ipld/unixfs`'s (which keeps a trailing node under its own parent and
//!   flushes a level only past `width`), and it does not promise
//!   ipfs-car's block order, so the CIDs of multi-level files and the CAR
//!   bytes would not match. The layout is ~100 lines, written in `layout.rs`.
//! - `iroh-car` is async-only (tokio); this module must stay synchronous.
//!   CARv1 framing is a varint and a fixed dag-cbor header, in `car.rs`.
//! - dag-pb encoding of a File node is a few protobuf fields, in `dagpb.rs`.

mod car;
mod car_reader;
mod cids;
mod dagpb;
mod dir;
mod importer;
mod index;
mod layout;
mod varint;
mod walk;

pub use car::{car_cid_of, car_header, car_header_of, CarWriter, Sha256Writer};
pub use car_reader::CarReader;
pub use cids::{car_cid, identity_raw, parse_cid, ContentCid, CODEC_CAR, CODEC_DAG_PB, CODEC_RAW};
pub use importer::{import_path, Block, Imported, Importer, PlannedBlock};
pub use dir::{common_depth, folder, hamt_slot, js_order, path_parts, FolderFile, SHARD_THRESHOLD};
pub use index::{BlockIndex, LeafSpan, RootBlock};
pub use layout::Link;
pub use walk::{CarOptions, CarPlan, Dag, EntityBytes, PlanError, Scope, Step};

/// How a file is cut and grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Bytes per leaf (the last one may be shorter).
    pub chunk_size: usize,
    /// Most links in one node.
    pub width: usize,
}

impl Params {
    /// What ipfs-car uses: 1 MiB chunks, 1024 links per node.
    pub const IPFS_CAR: Params = Params { chunk_size: 1 << 20, width: 1024 };
}

impl Default for Params {
    fn default() -> Self {
        Self::IPFS_CAR
    }
}
