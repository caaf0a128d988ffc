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
