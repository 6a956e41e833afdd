//! Incremental Internet checksum update (RFC 1624), for the TTL decrement.

/// The checksum after one 16-bit word of the covered data changes from `old` to `new`:
/// RFC 1624 eqn. 3, `HC' = ~(~HC + ~m + m')`, which never yields the -0 that eqn. 2 can.
/// All three values are the big-endian words read as numbers.
#[inline(always)]
pub fn replace16(check: u16, old: u16, new: u16) -> u16 {
    let mut sum = (!check) as u32 + (!old) as u32 + new as u32;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// The Internet checksum of `data` (RFC 1071): what a header's checksum field must hold
/// for the header to verify. Used by tests and by userspace, never per packet.
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 header with a valid checksum.
    fn header(ttl: u8, id: u16) -> [u8; 20] {
        let mut h = [
            0x45, 0, 0, 84, 0, 0, 0x40, 0, ttl, 17, 0, 0, 10, 244, 1, 5, 10, 244, 2, 9,
        ];
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let c = internet_checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn ttl_decrement_keeps_the_header_valid() {
        for ttl in 2..=255u8 {
            for id in [0u16, 1, 0x1234, 0xfffe, 0xffff] {
                let mut h = header(ttl, id);
                let old = u16::from_be_bytes([h[8], h[9]]);
                h[8] -= 1;
                let new = u16::from_be_bytes([h[8], h[9]]);
                let c = replace16(u16::from_be_bytes([h[10], h[11]]), old, new);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                assert_eq!(internet_checksum(&h), 0, "ttl {ttl} id {id:#x}");
                assert_eq!(c, {
                    let mut z = h;
                    z[10] = 0;
                    z[11] = 0;
                    internet_checksum(&z)
                });
            }
        }
    }
}
