//! Reading a CARv1 (as [`super::CarWriter`] writes it, one root): the
//! header, then each block checked against its CID as it is read. What a
//! storage node verifies content with, and what the coordinator verifies a
//! node's delivery with: a block whose bytes do not hash to its CID stops
//! the read with an error, before anyone uses it.

use super::car::car_header;
use super::cids::ContentCid;
use super::varint::take;
use std::io::{self, Read};

/// The largest header this reader accepts (one root CID needs about 60 bytes).
const MAX_HEADER: u64 = 1024;
/// The largest block: a 1 MiB leaf, or a node of 1024 links, with its CID.
const MAX_FRAME: u64 = (1 << 20) + 64 * 1024;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Reads one unsigned varint from `input` a byte at a time; `None` at a
/// clean end (no byte at all).
fn read_varint(input: &mut impl Read) -> io::Result<Option<u64>> {
    let mut bytes = Vec::with_capacity(10);
    let mut byte = [0u8; 1];
    loop {
        match input.read(&mut byte) {
            Ok(0) if bytes.is_empty() => return Ok(None),
            Ok(0) => return Err(invalid("CAR cut short in a length")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        bytes.push(byte[0]);
        if byte[0] & 0x80 == 0 {
            let mut slice = &bytes[..];
            return take(&mut slice).map(Some).ok_or_else(|| invalid("bad length in CAR"));
        }
        if bytes.len() == 10 {
            return Err(invalid("bad length in CAR"));
        }
    }
}

pub struct CarReader<R: Read> {
    input: R,
    root: ContentCid,
    /// Bytes read so far (header included).
    read: u64,
}

impl<R: Read> CarReader<R> {
    /// Reads the header: exactly the canonical one-root header this crate
    /// (and ipfs-car) writes.
    pub fn new(mut input: R) -> io::Result<Self> {
        let len = read_varint(&mut input)?.ok_or_else(|| invalid("empty CAR"))?;
        if len == 0 || len > MAX_HEADER {
            return Err(invalid("CAR header of a bad size"));
        }
        let mut header = vec![0u8; len as usize];
        input.read_exact(&mut header).map_err(|_| invalid("CAR cut short in its header"))?;
        // {"roots": [CID], "version": 1}: the CID sits after a fixed prefix
        // and a byte-string length, behind the multibase identity 0x00.
        const PREFIX: &[u8] = &[0xa2, 0x65, b'r', b'o', b'o', b't', b's', 0x81, 0xd8, 0x2a];
        let rest = header.strip_prefix(PREFIX).ok_or_else(|| invalid("not a one-root CARv1 header"))?;
        let (n, rest) = match rest {
            [0x58, n, rest @ ..] => (*n as usize, rest),
            [b, rest @ ..] if (0x40..0x58).contains(b) => ((b - 0x40) as usize, rest),
            _ => return Err(invalid("not a one-root CARv1 header")),
        };
        if n < 2 || rest.len() < n || rest[0] != 0 {
            return Err(invalid("not a one-root CARv1 header"));
        }
        let root = ContentCid::from_bytes(&rest[1..n]).map_err(|e| invalid(format!("CAR root: {e}")))?;
        let mut canonical = Vec::new();
        super::varint::put(&mut canonical, len);
        canonical.extend_from_slice(&header);
        if canonical != car_header(&root) {
            return Err(invalid("not a one-root CARv1 header"));
        }
        Ok(Self { input, root, read: canonical.len() as u64 })
    }

    pub fn root(&self) -> &ContentCid {
        &self.root
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The next block into `data`, checked against its CID; `None` at the end.
    pub fn next_block(&mut self, data: &mut Vec<u8>) -> io::Result<Option<ContentCid>> {
        let before = self.read;
        let Some(len) = read_varint(&mut self.input)? else { return Ok(None) };
        if len > MAX_FRAME {
            return Err(invalid("CAR block too large"));
        }
        let mut frame = vec![0u8; len as usize];
        self.input.read_exact(&mut frame).map_err(|_| invalid("CAR cut short in a block"))?;
        // CIDv1: version, codec, hash code, digest length, then the digest.
        let mut cursor = &frame[..];
        for _ in 0..3 {
            take(&mut cursor).ok_or_else(|| invalid("bad CID in CAR"))?;
        }
        let digest_len = take(&mut cursor).ok_or_else(|| invalid("bad CID in CAR"))? as usize;
        if cursor.len() < digest_len {
            return Err(invalid("bad CID in CAR"));
        }
        let cid_len = frame.len() - cursor.len() + digest_len;
        let cid = ContentCid::from_bytes(&frame[..cid_len]).map_err(|e| invalid(format!("CAR block CID: {e}")))?;
        data.clear();
        data.extend_from_slice(&frame[cid_len..]);
        if !cid.verifies(data) {
            return Err(invalid(format!("block {cid} does not match its CID")));
        }
        let mut prefix = Vec::new();
        super::varint::put(&mut prefix, len);
        self.read = before + prefix.len() as u64 + len;
        Ok(Some(cid))
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn car_of(data: &[u8], params: Params) -> (ContentCid, Vec<u8>) {
        let mut imp = Importer::new(params, true);
        imp.write(data, &mut |_| {});
        let imported = imp.finish(&mut |_| {});
        let mut w = CarWriter::new(&imported.root, Vec::new()).unwrap();
        w.plan(&imported, data).unwrap();
        (imported.root, w.into_inner())
    }

    fn read_all(car: &[u8]) -> io::Result<(ContentCid, Vec<ContentCid>, u64)> {
        let mut r = CarReader::new(car)?;
        let mut cids = Vec::new();
        let mut buf = Vec::new();
        while let Some(cid) = r.next_block(&mut buf)? {
            cids.push(cid);
        }
        Ok((r.root().clone(), cids, r.bytes_read()))
    }

    #[test]
    fn reads_back_what_the_writer_wrote() {
        let small = Params { chunk_size: 4, width: 3 };
        for data in [&b""[..], b"a", b"0123456789abcdefghijklmnopqrstuvwxyz"] {
            let (root, car) = car_of(data, small);
            let (read_root, cids, read) = read_all(&car).expect("reads");
            assert_eq!(read_root, root);
            assert_eq!(cids.last(), Some(&root), "the root block comes last");
            assert_eq!(read, car.len() as u64);
        }
    }

    #[test]
    fn refuses_damaged_or_cut_cars() {
        let (_, car) = car_of(b"0123456789abcdefghijklmnopqrstuvwxyz", Params { chunk_size: 4, width: 3 });
        let mut flipped = car.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(read_all(&flipped).is_err(), "a changed byte in a block");
        assert!(read_all(&car[..car.len() - 3]).is_err(), "cut in a block");
        assert!(read_all(&car[..10]).is_err(), "cut in the header");
        assert!(read_all(b"").is_err());
        let mut other_header = car.clone();
        other_header[2] = 0xa3;
        assert!(read_all(&other_header).is_err(), "another header form");
    }
}
