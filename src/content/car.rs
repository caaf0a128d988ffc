//! CARv1 framing: a varint-prefixed dag-cbor header `{roots: [root], version: 1}`,
//! then each block as varint(len(cid) + len(data)) || cid || data.

use super::cids::ContentCid;
use super::importer::{Block, Imported, PlannedBlock};
use super::varint::put;
use std::io::{self, Read, Write};

/// The header naming `root`, in dag-cbor's canonical form (keys by length:
/// "roots" before "version"), with its varint length prefix.
pub fn car_header(root: &ContentCid) -> Vec<u8> {
    car_header_of(root.as_bytes())
}

/// [`car_header`] for a root given as a binary CID (also one that is not a
/// [`ContentCid`], such as an identity CID).
pub fn car_header_of(cid: &[u8]) -> Vec<u8> {
    let mut cbor = Vec::with_capacity(64);
    cbor.push(0xa2); // map(2)
    cbor.push(0x65); // text(5)
    cbor.extend_from_slice(b"roots");
    cbor.push(0x81); // array(1)
    cbor.extend_from_slice(&[0xd8, 0x2a]); // tag(42): CID
    // byte string: the identity multibase prefix 0x00, then the CID
    let n = cid.len() + 1;
    if n < 24 {
        cbor.push(0x40 | n as u8);
    } else {
        cbor.push(0x58);
        cbor.push(n as u8);
    }
    cbor.push(0x00);
    cbor.extend_from_slice(cid);
    cbor.push(0x67); // text(7)
    cbor.extend_from_slice(b"version");
    cbor.push(0x01);
    let mut out = Vec::with_capacity(cbor.len() + 2);
    put(&mut out, cbor.len() as u64);
    out.extend_from_slice(&cbor);
    out
}

/// Bytes a block takes in a CAR: its varint frame length, CID and data.
pub(super) fn framed_len(cid: &ContentCid, data_len: u64) -> u64 {
    let n = cid.as_bytes().len() as u64 + data_len;
    let mut v = Vec::new();
    put(&mut v, n);
    v.len() as u64 + n
}

/// Writes CAR bytes to `out`.
pub struct CarWriter<W: Write> {
    out: W,
    frame: Vec<u8>,
}

impl<W: Write> CarWriter<W> {
    /// Starts a CAR whose single root is `root`.
    pub fn new(root: &ContentCid, mut out: W) -> io::Result<Self> {
        out.write_all(&car_header(root))?;
        Ok(Self { out, frame: Vec::with_capacity(48) })
    }

    pub fn block(&mut self, cid: &ContentCid, data: &[u8]) -> io::Result<()> {
        self.frame.clear();
        put(&mut self.frame, (cid.as_bytes().len() + data.len()) as u64);
        self.frame.extend_from_slice(cid.as_bytes());
        self.out.write_all(&self.frame)?;
        self.out.write_all(data)
    }

    /// Writes one block as the importer hands it over.
    pub fn importer_block(&mut self, block: Block<'_>) -> io::Result<()> {
        match block {
            Block::Leaf { cid, data, .. } => self.block(cid, data),
            Block::Node { cid, bytes } => self.block(cid, bytes),
        }
    }

    /// Writes every block of `imported`, reading leaf content from `file`
    /// (positioned at the start of the file; read sequentially).
    pub fn plan<R: Read>(&mut self, imported: &Imported, mut file: R) -> io::Result<()> {
        let mut buf = Vec::new();
        for block in &imported.plan {
            match block {
                PlannedBlock::Leaf { cid, len, .. } => {
                    buf.resize(*len as usize, 0);
                    file.read_exact(&mut buf)?;
                    self.block(cid, &buf)?;
                }
                PlannedBlock::Node(node) => self.block(&node.cid, &node.bytes)?,
            }
        }
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A `Write` that only hashes (sha2-256).
#[derive(Default)]
pub struct Sha256Writer(sha2::Sha256);

impl Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sha2::Digest::update(&mut self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The `carCid` of the CAR of `imported`, whose content `file` reads from
/// its start: the CAR is hashed as it would be written, never stored.
pub fn car_cid_of<R: Read>(imported: &Imported, file: R) -> io::Result<ContentCid> {
    let mut car = CarWriter::new(&imported.root, Sha256Writer::default())?;
    car.plan(imported, file)?;
    let digest = sha2::Digest::finalize(car.into_inner().0);
    Ok(super::cids::car_cid(digest.into()))
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use sha2::{Digest, Sha256};

    fn car_of(data: &[u8], params: Params) -> (String, Vec<u8>) {
        let mut imp = Importer::new(params, true);
        imp.write(data, &mut |_| {});
        let imported = imp.finish(&mut |_| {});
        let mut w = CarWriter::new(&imported.root, Vec::new()).unwrap();
        w.plan(&imported, data).unwrap();
        (imported.root.to_string(), w.into_inner())
    }

    /// Reference values printed by `ipfs-car pack F --no-wrap -o F.car` and
    /// `ipfs-car hash F.car` (ipfs-car 3.1.0) for the files named.
    #[test]
    fn tiny_files_match_ipfs_car() {
        let (root, car) = car_of(b"", Params::IPFS_CAR);
        assert_eq!(root, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
        assert_eq!(car_cid(Sha256::digest(&car).into()).to_string(), "bagbaierakdtubdzo53sy6crqkmmwdhomjse3vj5yijkvbopbwt66zqbangpa");
        let (root, car) = car_of(b"a", Params::IPFS_CAR);
        assert_eq!(root, "bafkreigks6arfsq3xxfpvqrrwonchxcnu6do76auprhhfomao6c273sixm");
        assert_eq!(car_cid(Sha256::digest(&car).into()).to_string(), "bagbaieraqu6uxas6f3pkcyp4sauvdludxjmzhactu6yaowysroneul2g6btq");
        assert_eq!(car.len(), 59 + 1 + 36 + 1);
    }

    #[test]
    fn any_slicing_gives_the_same_car() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let params = Params { chunk_size: 97, width: 3 };
        let (root, whole) = car_of(&data, params);
        let root_cid = parse_cid(&root).unwrap();
        for step in [1usize, 2, 96, 97, 98, 500, 9_999] {
            // Streaming with the root known up front, as the gateway does.
            let mut imp = Importer::new(params, false);
            let mut w = CarWriter::new(&root_cid, Vec::new()).unwrap();
            for piece in data.chunks(step) {
                imp.write(piece, &mut |b| w.importer_block(b).unwrap());
            }
            let imported = imp.finish(&mut |b| w.importer_block(b).unwrap());
            assert_eq!(imported.root.to_string(), root, "step {step}");
            assert_eq!(whole, w.into_inner(), "step {step}");
        }
    }

    #[test]
    fn parallel_import_matches_streaming() {
        let dir = std::env::temp_dir().join(format!("pv-content-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.bin");
        let data: Vec<u8> = (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let params = Params { chunk_size: 1000, width: 4 };
        let mut imp = Importer::new(params, true);
        imp.write(&data, &mut |_| {});
        let streamed = imp.finish(&mut |_| {});
        for threads in [1, 2, 3, 8] {
            let parallel = import_path(&path, params, threads).unwrap();
            assert_eq!(parallel.root, streamed.root);
            assert_eq!(parallel.size, data.len() as u64);
            assert_eq!(parallel.plan.len(), streamed.plan.len());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
