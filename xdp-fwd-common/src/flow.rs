//! The flow hash that picks an ECMP bucket, shared so that userspace can tell which
//! member a given flow uses (and tests can predict it).
//!
//! murmur3 (32-bit) over whole words: one multiply-rotate round per word, cheap enough for
//! the per-packet path and well mixed in the low byte that selects the bucket.

#[inline(always)]
fn round(h: u32, word: u32) -> u32 {
    let k = word
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline(always)]
fn finish(mut h: u32, words: u32) -> u32 {
    h ^= words * 4;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Hash of an IPv4 flow. `ports` is `(src_port << 16) | dst_port` for TCP/UDP and 0
/// otherwise (including every fragment, so all fragments of a packet hash alike).
#[inline(always)]
pub fn hash_v4(seed: u32, src: [u8; 4], dst: [u8; 4], proto: u8, ports: u32) -> u32 {
    let mut h = seed;
    h = round(h, u32::from_ne_bytes(src));
    h = round(h, u32::from_ne_bytes(dst));
    h = round(h, ports);
    h = round(h, proto as u32);
    finish(h, 4)
}

/// Hash of an IPv6 flow; see [`hash_v4`].
#[inline(always)]
pub fn hash_v6(seed: u32, src: &[u8; 16], dst: &[u8; 16], proto: u8, ports: u32) -> u32 {
    let mut h = seed;
    let mut i = 0;
    while i < 16 {
        h = round(
            h,
            u32::from_ne_bytes([src[i], src[i + 1], src[i + 2], src[i + 3]]),
        );
        i += 4;
    }
    i = 0;
    while i < 16 {
        h = round(
            h,
            u32::from_ne_bytes([dst[i], dst[i + 1], dst[i + 2], dst[i + 3]]),
        );
        i += 4;
    }
    h = round(h, ports);
    h = round(h, proto as u32);
    finish(h, 10)
}

/// The bucket of a group's table that a flow hash selects.
#[inline(always)]
pub fn bucket(hash: u32) -> usize {
    (hash as usize) % crate::GROUP_BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_and_ports_change_the_hash() {
        let a = hash_v4(1, [10, 0, 0, 1], [10, 0, 0, 2], 17, (1000 << 16) | 53);
        let b = hash_v4(1, [10, 0, 0, 1], [10, 0, 0, 2], 17, (1001 << 16) | 53);
        let c = hash_v4(1, [10, 0, 0, 1], [10, 0, 0, 2], 17, 0);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn the_seed_changes_the_hash() {
        let a = hash_v4(1, [10, 0, 0, 1], [10, 0, 0, 2], 6, 7);
        let b = hash_v4(2, [10, 0, 0, 1], [10, 0, 0, 2], 6, 7);
        assert_ne!(a, b);
    }

    #[test]
    fn buckets_are_evenly_used() {
        let mut seen = [0u32; crate::GROUP_BUCKETS];
        for port in 0..65536u32 {
            seen[bucket(hash_v4(7, [10, 1, 0, 1], [10, 2, 0, 1], 17, port))] += 1;
        }
        let expect = 65536 / crate::GROUP_BUCKETS as u32;
        for (b, n) in seen.iter().enumerate() {
            assert!(
                n.abs_diff(expect) < expect / 4,
                "bucket {b}: {n} vs {expect}"
            );
        }
    }
}
