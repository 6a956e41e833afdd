//! UPDATEs as raw bytes (RFC 4271 4.3), for what no encoder writes: malformed path
//! attributes and NLRI. The scripted peer (`lab::scripted_peer`) sends them.

use std::net::Ipv4Addr;

/// An UPDATE message: header, withdrawn routes, path attributes, NLRI.
pub fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let len = 19 + 2 + withdrawn.len() + 2 + attrs.len() + nlri.len();
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&(len as u16).to_be_bytes());
    m.push(2);
    m.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    m.extend_from_slice(withdrawn);
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(attrs);
    m.extend_from_slice(nlri);
    m
}

/// One path attribute with a one-octet length.
pub fn attr(flags: u8, kind: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, kind, value.len() as u8];
    a.extend_from_slice(value);
    a
}

/// Well-known transitive.
const WELL_KNOWN: u8 = 0x40;
/// Optional non-transitive.
const OPTIONAL: u8 = 0x80;
/// Optional transitive.
const OPTIONAL_TRANSITIVE: u8 = 0xc0;

/// ORIGIN with any value (0 IGP .. 2 INCOMPLETE are the valid ones).
pub fn origin(value: u8) -> Vec<u8> {
    attr(WELL_KNOWN, 1, &[value])
}

/// AS_PATH of one AS_SEQUENCE of 4-octet ASNs.
pub fn as_path(asns: &[u32]) -> Vec<u8> {
    let mut v = vec![2, asns.len() as u8];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    attr(WELL_KNOWN, 2, &v)
}

/// NEXT_HOP.
pub fn next_hop(addr: Ipv4Addr) -> Vec<u8> {
    attr(WELL_KNOWN, 3, &addr.octets())
}

/// MULTI_EXIT_DISC.
pub fn med(value: u32) -> Vec<u8> {
    attr(OPTIONAL, 4, &value.to_be_bytes())
}

/// AGGREGATOR with any value bytes (8 on a 4-octet AS session).
pub fn aggregator(value: &[u8]) -> Vec<u8> {
    attr(OPTIONAL_TRANSITIVE, 7, value)
}

/// COMMUNITIES with any value bytes (a non-zero multiple of 4 is well-formed).
pub fn communities(value: &[u8]) -> Vec<u8> {
    attr(OPTIONAL_TRANSITIVE, 8, value)
}

/// An IPv4 prefix in NLRI encoding: length, then the significant octets.
pub fn prefix(addr: Ipv4Addr, len: u8) -> Vec<u8> {
    let octets = usize::from(len).div_ceil(8);
    let mut p = vec![len];
    p.extend_from_slice(&addr.octets()[..octets]);
    p
}

/// The IPv4 unicast End-of-RIB marker: an UPDATE with nothing in it (RFC 4724 2).
pub fn end_of_rib() -> Vec<u8> {
    update(&[], &[], &[])
}
