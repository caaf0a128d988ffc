//! dag-pb encoding of a UnixFS File node, field for field what
//! `@ipld/unixfs` + `@ipld/dag-pb` produce: each link `{Hash, Name: "", Tsize}`
//! first, then `Data` = UnixFS `{Type: File, filesize, blocksizes...}`.

use super::layout::Link;
use super::varint::put;

fn put_field_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The node linking `children` (in order).
pub fn file_node(children: &[Link]) -> Vec<u8> {
    let mut out = Vec::with_capacity(children.len() * 48 + 16);
    let mut link = Vec::with_capacity(48);
    for child in children {
        link.clear();
        put_field_bytes(&mut link, 0x0a, child.cid.as_bytes()); // Hash
        link.extend_from_slice(&[0x12, 0x00]); // Name: ""
        link.push(0x18); // Tsize
        put(&mut link, child.dag_len);
        put_field_bytes(&mut out, 0x12, &link); // PBNode.Links
    }
    let mut data = Vec::with_capacity(children.len() * 4 + 16);
    data.extend_from_slice(&[0x08, 0x02]); // Type: File
    data.push(0x18); // filesize
    put(&mut data, children.iter().map(|c| c.content_len).sum());
    for child in children {
        data.push(0x20); // blocksizes (repeated, unpacked)
        put(&mut data, child.content_len);
    }
    put_field_bytes(&mut out, 0x0a, &data); // PBNode.Data
    out
}

/// A link of a dag-pb node as read back: the child's binary CID, its name
/// and the `Tsize` it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbLink {
    pub hash: Vec<u8>,
    pub name: String,
    pub tsize: u64,
}

/// Reads the links of a dag-pb node (`PBNode.Links`, in order); the
/// node's `Data` is skipped. Any protobuf this cannot read is an error.
pub fn links(mut input: &[u8]) -> Result<Vec<PbLink>, String> {
    let mut links = Vec::new();
    while !input.is_empty() {
        let (number, value) = field(&mut input)?;
        if number == 2 {
            let Value::Bytes(mut link) = value else { return Err("a link is not length-delimited".into()) };
            let mut out = PbLink { hash: Vec::new(), name: String::new(), tsize: 0 };
            while !link.is_empty() {
                match field(&mut link)? {
                    (1, Value::Bytes(hash)) => out.hash = hash.to_vec(),
                    (2, Value::Bytes(name)) => out.name = String::from_utf8(name.to_vec()).map_err(|_| "a link name is not UTF-8")?,
                    (3, Value::Varint(n)) => out.tsize = n,
                    _ => return Err("unexpected field in a link".into()),
                }
            }
            if out.hash.is_empty() {
                return Err("a link without a hash".into());
            }
            links.push(out);
        }
    }
    Ok(links)
}

/// The UnixFS type of a dag-pb node (`Data.Type`: 1 directory, 2 file,
/// 5 HAMT shard); `None` when it has no UnixFS data.
pub fn unixfs_type(mut input: &[u8]) -> Option<u64> {
    while !input.is_empty() {
        let (number, value) = field(&mut input).ok()?;
        if let (1, Value::Bytes(mut data)) = (number, value) {
            while !data.is_empty() {
                if let (1, Value::Varint(kind)) = field(&mut data).ok()? {
                    return Some(kind);
                }
            }
            return None;
        }
    }
    None
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The next protobuf field of `input`: its number and value.
fn field<'a>(input: &mut &'a [u8]) -> Result<(u64, Value<'a>), String> {
    let key = super::varint::take(input).ok_or("a field key is cut short")?;
    let value = match key & 7 {
        0 => Value::Varint(super::varint::take(input).ok_or("a varint is cut short")?),
        2 => {
            let n = super::varint::take(input).ok_or("a length is cut short")?;
            let n = usize::try_from(n).map_err(|_| "a length is too large")?;
            if n > input.len() {
                return Err("a field is cut short".into());
            }
            let (head, rest) = input.split_at(n);
            *input = rest;
            Value::Bytes(head)
        }
        _ => return Err("unsupported protobuf wire type".into()),
    };
    Ok((key >> 3, value))
}

#[cfg(test)]
mod tests {
    use super::super::cids::{ContentCid, CODEC_RAW};
    use super::*;

    #[test]
    fn reads_back_the_links_it_writes() {
        let children: Vec<Link> = (0..3u8)
            .map(|i| Link { cid: ContentCid::of(CODEC_RAW, &[i]), content_len: 1 + u64::from(i), dag_len: 300 + u64::from(i) })
            .collect();
        let node = file_node(&children);
        let read = links(&node).expect("reads");
        assert_eq!(read.len(), 3);
        for (link, child) in read.iter().zip(&children) {
            assert_eq!(link.hash, child.cid.as_bytes());
            assert_eq!(link.name, "");
            assert_eq!(link.tsize, child.dag_len);
        }
        assert!(links(&node[..node.len() - 1]).is_err(), "cut short");
        assert!(links(&[0x12, 0x02, 0x18, 0x01]).is_err(), "a link without a hash");
        assert_eq!(links(&[]).unwrap(), []);
    }
}
