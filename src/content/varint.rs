//! Unsigned LEB128 varints, as multiformats and CAR use them.

/// Appends `n` as an unsigned varint.
pub fn put(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_like_multiformats() {
        let enc = |n| {
            let mut v = Vec::new();
            super::put(&mut v, n);
            v
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(0x0202), [0x82, 0x04]);
        assert_eq!(enc(1_048_576), [0x80, 0x80, 0x40]);
    }
}
