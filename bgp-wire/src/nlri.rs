//! NLRI prefixes (RFC 4271 4.3, RFC 4760 5): a length in bits, then the fewest octets
//! that hold it. Host bits beyond the length are cleared on decoding.
//!
//! These loops run for every prefix of every UPDATE: no allocation beyond the output
//! vector, no per-prefix error construction.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Wire size of a prefix of `bits` bits.
#[inline]
pub(crate) fn prefix_size(bits: u8) -> usize {
    1 + usize::from(bits).div_ceil(8)
}

/// Wire size of any prefix.
#[inline]
pub(crate) fn net_size(net: &IpNet) -> usize {
    prefix_size(net.prefix_len())
}

/// Why a prefix field could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrefixError {
    /// A length above the family's maximum.
    TooLong { bits: u8, max: u8 },
    /// The field ends inside a prefix.
    Truncated { bits: u8 },
}

impl std::fmt::Display for PrefixError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrefixError::TooLong { bits, max } => {
                write!(f, "prefix length {bits} exceeds {max}")
            }
            PrefixError::Truncated { bits } => {
                write!(f, "field ends inside a /{bits} prefix")
            }
        }
    }
}

/// Splits one prefix off `buf`: its length and up to `N` address octets (zero padded).
#[inline]
fn split_prefix<const N: usize>(buf: &[u8]) -> Result<(u8, [u8; N], &[u8]), PrefixError> {
    let Some((&bits, rest)) = buf.split_first() else {
        return Err(PrefixError::Truncated { bits: 0 });
    };
    let max = (N * 8) as u8;
    if bits > max {
        return Err(PrefixError::TooLong { bits, max });
    }
    let n = usize::from(bits).div_ceil(8);
    let Some((octets, rest)) = rest.split_at_checked(n) else {
        return Err(PrefixError::Truncated { bits });
    };
    let mut addr = [0u8; N];
    if let Some(dst) = addr.get_mut(..n) {
        dst.copy_from_slice(octets);
    }
    Ok((bits, addr, rest))
}

/// Parses a whole field of IPv4 prefixes, handing each to `push`.
#[inline]
fn decode_ipv4_with(mut buf: &[u8], mut push: impl FnMut(Ipv4Net)) -> Result<(), PrefixError> {
    while !buf.is_empty() {
        let (bits, addr, rest) = split_prefix::<4>(buf)?;
        let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
        let addr = Ipv4Addr::from(u32::from_be_bytes(addr) & mask);
        if let Ok(net) = Ipv4Net::new(addr, bits) {
            push(net);
        }
        buf = rest;
    }
    Ok(())
}

/// Parses a whole field of IPv4 prefixes into `out`.
pub(crate) fn decode_ipv4(buf: &[u8], out: &mut Vec<Ipv4Net>) -> Result<(), PrefixError> {
    // Five octets is the largest IPv4 prefix, four the usual one (/17 to /24).
    out.reserve(buf.len() / 4);
    decode_ipv4_with(buf, |n| out.push(n))
}

/// Parses a whole field of IPv4 prefixes into `out` as [`IpNet`]s (MP_REACH_NLRI).
pub(crate) fn decode_ipv4_nets(buf: &[u8], out: &mut Vec<IpNet>) -> Result<(), PrefixError> {
    out.reserve(buf.len() / 4);
    decode_ipv4_with(buf, |n| out.push(IpNet::V4(n)))
}

/// Parses a whole field of IPv6 prefixes into `out`.
pub(crate) fn decode_ipv6(mut buf: &[u8], out: &mut Vec<IpNet>) -> Result<(), PrefixError> {
    out.reserve(buf.len() / 8);
    while !buf.is_empty() {
        let (bits, addr, rest) = split_prefix::<16>(buf)?;
        let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
        let addr = Ipv6Addr::from(u128::from_be_bytes(addr) & mask);
        if let Ok(net) = Ipv6Net::new(addr, bits) {
            out.push(IpNet::V6(net));
        }
        buf = rest;
    }
    Ok(())
}

/// Writes one IPv4 prefix.
#[inline]
pub(crate) fn put_ipv4(out: &mut BytesMut, net: &Ipv4Net) {
    let bits = net.prefix_len();
    let octets = net.network().octets();
    out.put_u8(bits);
    out.put_slice(
        octets
            .get(..usize::from(bits).div_ceil(8))
            .unwrap_or(&octets),
    );
}

/// Writes one IPv6 prefix.
#[inline]
pub(crate) fn put_ipv6(out: &mut BytesMut, net: &Ipv6Net) {
    let bits = net.prefix_len();
    let octets = net.network().octets();
    out.put_u8(bits);
    out.put_slice(
        octets
            .get(..usize::from(bits).div_ceil(8))
            .unwrap_or(&octets),
    );
}

/// Writes one prefix of either family.
#[inline]
pub(crate) fn put_net(out: &mut BytesMut, net: &IpNet) {
    match net {
        IpNet::V4(n) => put_ipv4(out, n),
        IpNet::V6(n) => put_ipv6(out, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bits_are_cleared_and_lengths_checked() {
        let mut v = Vec::new();
        decode_ipv4(&[24, 10, 1, 2, 32, 192, 0, 2, 1], &mut v).unwrap();
        assert_eq!(
            v,
            vec![
                "10.1.2.0/24".parse::<Ipv4Net>().unwrap(),
                "192.0.2.1/32".parse().unwrap()
            ]
        );
        v.clear();
        decode_ipv4(&[9, 10, 127], &mut v).unwrap();
        assert_eq!(v, vec!["10.0.0.0/9".parse::<Ipv4Net>().unwrap()]);
        assert_eq!(
            decode_ipv4(&[33, 1, 2, 3, 4, 5], &mut v),
            Err(PrefixError::TooLong { bits: 33, max: 32 })
        );
        assert_eq!(
            decode_ipv4(&[24, 10, 1], &mut v),
            Err(PrefixError::Truncated { bits: 24 })
        );
        let mut v6 = Vec::new();
        decode_ipv6(&[0, 64, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 1], &mut v6).unwrap();
        assert_eq!(
            v6,
            vec![
                "::/0".parse::<IpNet>().unwrap(),
                "2001:db8:0:1::/64".parse().unwrap()
            ]
        );
        assert_eq!(
            decode_ipv6(&[129], &mut v6),
            Err(PrefixError::TooLong {
                bits: 129,
                max: 128
            })
        );
    }
}
