//! The CIDs this module makes: CIDv1 with a sha2-256 multihash.

use sha2::{Digest, Sha256};
use std::fmt;

pub const CODEC_RAW: u64 = 0x55;
pub const CODEC_DAG_PB: u64 = 0x70;
pub const CODEC_CAR: u64 = 0x0202;
const SHA2_256: u64 = 0x12;
const IDENTITY: u64 = 0x00;

/// A CIDv1 over a sha2-256 digest, kept as its binary form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ContentCid {
    bytes: Vec<u8>,
}

impl ContentCid {
    pub fn from_digest(codec: u64, digest: [u8; 32]) -> Self {
        let mut bytes = Vec::with_capacity(38);
        super::varint::put(&mut bytes, 1);
        super::varint::put(&mut bytes, codec);
        super::varint::put(&mut bytes, SHA2_256);
        super::varint::put(&mut bytes, 32);
        bytes.extend_from_slice(&digest);
        Self { bytes }
    }

    /// The CID of `data` hashed with sha2-256 under `codec`.
    pub fn of(codec: u64, data: &[u8]) -> Self {
        Self::from_digest(codec, Sha256::digest(data).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A CID from its binary form: CIDv1 over a sha2-256 digest only.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let cid = cid::Cid::try_from(bytes).map_err(|e| e.to_string())?;
        if cid.version() != cid::Version::V1 || cid.hash().code() != SHA2_256 || cid.hash().size() != 32 {
            return Err("not a CIDv1 over sha2-256".into());
        }
        Ok(Self { bytes: cid.to_bytes() })
    }

    /// True when `data` is the block this CID names (its hash matches).
    pub fn verifies(&self, data: &[u8]) -> bool {
        Self::of(self.codec(), data) == *self
    }

    pub fn codec(&self) -> u64 {
        self.to_cid().codec()
    }

    fn to_cid(&self) -> cid::Cid {
        cid::Cid::try_from(self.bytes.as_slice()).expect("a ContentCid is always a valid CID")
    }
}

impl fmt::Display for ContentCid {
    /// Base32 lower case, multibase prefix `b`: what ipfs-car prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_cid())
    }
}

impl fmt::Debug for ContentCid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentCid({self})")
    }
}

/// The `carCid` of a CAR whose sha2-256 digest is `digest`.
pub fn car_cid(digest: [u8; 32]) -> ContentCid {
    ContentCid::from_digest(CODEC_CAR, digest)
}

/// The bytes an identity CID of a raw block holds inline (`bafkqaaa`, the
/// empty block, is the trustless gateway's probe), with its binary form;
/// `None` for any other CID. At most 128 bytes, as gateways allow.
pub fn identity_raw(text: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let cid = cid::Cid::try_from(text.trim()).ok()?;
    let inline = cid.version() == cid::Version::V1 && cid.codec() == CODEC_RAW && cid.hash().code() == IDENTITY;
    (inline && cid.hash().size() <= 128).then(|| (cid.hash().digest().to_vec(), cid.to_bytes()))
}

/// Parses a CID string in any multibase. Only CIDv1 with a sha2-256
/// multihash can name content stored here; anything else is an error
/// saying what is wrong.
pub fn parse_cid(text: &str) -> Result<ContentCid, String> {
    let cid = cid::Cid::try_from(text.trim()).map_err(|_| "not a valid CID".to_string())?;
    if cid.version() != cid::Version::V1 {
        return Err("only CIDv1 is supported".into());
    }
    let hash = cid.hash();
    if hash.code() != SHA2_256 || hash.size() != 32 {
        return Err("only sha2-256 CIDs are supported".into());
    }
    let digest: [u8; 32] = hash.digest().try_into().map_err(|_| "bad digest length".to_string())?;
    Ok(ContentCid::from_digest(cid.codec(), digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_cids_hold_their_bytes() {
        assert_eq!(identity_raw("bafkqaaa"), Some((Vec::new(), vec![1, 0x55, 0, 0])));
        assert_eq!(identity_raw("bafkqablimvwgy3y").map(|(data, _)| data), Some(b"hello".to_vec()));
        assert_eq!(identity_raw("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"), None);
        assert_eq!(identity_raw("nonsense"), None);
    }

    #[test]
    fn empty_raw_block_matches_ipfs() {
        assert_eq!(ContentCid::of(CODEC_RAW, b"").to_string(), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
    }

    #[test]
    fn parse_round_trip_and_errors() {
        let s = "bafkreigks6arfsq3xxfpvqrrwonchxcnu6do76auprhhfomao6c273sixm";
        let c = parse_cid(s).unwrap();
        assert_eq!(c.to_string(), s);
        assert_eq!(c.codec(), CODEC_RAW);
        assert_eq!(c.as_bytes().len(), 36);
        assert!(parse_cid("hello").is_err());
        assert!(parse_cid("").is_err());
        // CIDv0
        assert!(parse_cid("QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR").is_err());
    }
}
