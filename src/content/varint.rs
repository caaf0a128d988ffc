//! Unsigned LEB128 varints, as multiformats and CAR use them.

/// Appends `n` as an unsigned varint.
pub fn put(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads an unsigned varint from the front of `input`, advancing it;
/// `None` when it is cut short or longer than 64 bits.
pub fn take(input: &mut &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for (i, &b) in input.iter().enumerate().take(10) {
        let bits = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return None;
        }
        n |= bits << (7 * i);
        if b & 0x80 == 0 {
            *input = &input[i + 1..];
            return Some(n);
        }
    }
    None
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
        for n in [0, 1, 127, 128, 300, 1 << 20, u64::MAX] {
            let v = enc(n);
            let mut input = &v[..];
            assert_eq!(super::take(&mut input), Some(n));
            assert!(input.is_empty());
        }
        assert_eq!(super::take(&mut &[0x80u8][..]), None);
        assert_eq!(super::take(&mut &[0xffu8; 10][..]), None);
    }
}
