//! Builders of Ethernet frames for program tests and the packet generator: IPv4/IPv6
//! with TCP, UDP or ICMP, with valid checksums unless told otherwise.

use std::net::{Ipv4Addr, Ipv6Addr};

/// IPv4 protocol numbers used here.
pub const TCP: u8 = 6;
/// UDP.
pub const UDP: u8 = 17;
/// ICMP.
pub const ICMP: u8 = 1;
/// ICMPv6.
pub const ICMPV6: u8 = 58;

/// Ethernet addresses of test frames (locally administered).
pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC of test frames (the router's uplink, nominally).
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

pub use xdp_fwd_common::checksum::internet_checksum as checksum;

/// An IPv4 packet description; `build` makes the frame.
#[derive(Clone, Debug)]
pub struct V4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ttl: u8,
    pub sport: u16,
    pub dport: u16,
    pub payload: usize,
    /// Raw flags+fragment-offset field (0x2000 = MF, low 13 bits = offset).
    pub frag: u16,
    /// Extra option bytes (multiple of 4): IHL grows accordingly.
    pub options: usize,
    pub id: u16,
    pub tos: u8,
}

impl V4 {
    /// A UDP packet `src:sport -> dst:dport`, TTL 64, 18 payload bytes: a 60-byte frame, 64 on the wire with the FCS.
    pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Self {
        Self {
            src,
            dst,
            proto: UDP,
            ttl: 64,
            sport,
            dport,
            payload: 18,
            frag: 0,
            options: 0,
            id: 0x1234,
            tos: 0,
        }
    }

    /// The Ethernet frame.
    pub fn build(&self) -> Vec<u8> {
        let l4 = l4_header(self.proto, self.sport, self.dport);
        let ihl = 20 + self.options;
        let tot = ihl + l4.len() + self.payload;
        let mut f = eth(0x0800);
        let mut ip = vec![
            0x40 | (ihl / 4) as u8,
            self.tos,
            (tot >> 8) as u8,
            tot as u8,
            (self.id >> 8) as u8,
            self.id as u8,
            (self.frag >> 8) as u8,
            self.frag as u8,
            self.ttl,
            self.proto,
            0,
            0,
        ];
        ip.extend_from_slice(&self.src.octets());
        ip.extend_from_slice(&self.dst.octets());
        // NOP options, then End.
        ip.extend(std::iter::repeat_n(1u8, self.options));
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&l4);
        f.extend((0..self.payload).map(|i| i as u8));
        f
    }
}

/// An IPv6 packet description.
#[derive(Clone, Debug)]
pub struct V6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub hop_limit: u8,
    pub sport: u16,
    pub dport: u16,
    pub payload: usize,
}

impl V6 {
    /// A UDP packet, hop limit 64.
    pub fn udp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> Self {
        Self {
            src,
            dst,
            next_header: UDP,
            hop_limit: 64,
            sport,
            dport,
            payload: 18,
        }
    }

    /// The Ethernet frame. Extension headers (0, 43, 44, 60) are built as one 8-byte
    /// header followed by UDP.
    pub fn build(&self) -> Vec<u8> {
        let ext = matches!(self.next_header, 0 | 43 | 44 | 60);
        let mut body = Vec::new();
        if ext {
            body.extend_from_slice(&[UDP, 0, 0, 0, 0, 0, 0, 0]);
        }
        let l4_proto = if ext { UDP } else { self.next_header };
        body.extend(l4_header(l4_proto, self.sport, self.dport));
        body.extend((0..self.payload).map(|i| i as u8));
        let mut f = eth(0x86dd);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(body.len() as u16).to_be_bytes());
        f.push(self.next_header);
        f.push(self.hop_limit);
        f.extend_from_slice(&self.src.octets());
        f.extend_from_slice(&self.dst.octets());
        f.extend(body);
        f
    }
}

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An L4 header; checksums are left zero (the dataplane never reads them, and a UDP
/// checksum of zero means none).
fn l4_header(proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let p = |v: u16| v.to_be_bytes();
    match proto {
        TCP => {
            let mut h = Vec::new();
            h.extend_from_slice(&p(sport));
            h.extend_from_slice(&p(dport));
            h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
            h
        }
        UDP => {
            let mut h = Vec::new();
            h.extend_from_slice(&p(sport));
            h.extend_from_slice(&p(dport));
            h.extend_from_slice(&[0, 8, 0, 0]);
            h
        }
        // ICMP echo request (also for ICMPv6, type 128).
        ICMP => vec![8, 0, 0, 0, 0, 1, 0, 1],
        ICMPV6 => vec![128, 0, 0, 0, 0, 1, 0, 1],
        _ => Vec::new(),
    }
}

/// `frame` with a VLAN tag inserted after the MACs.
pub fn vlan_tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// An ARP request frame.
pub fn arp() -> Vec<u8> {
    let mut f = eth(0x0806);
    f[..6].copy_from_slice(&[0xff; 6]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_ipv4_header_verifies() {
        let f = V4::udp([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), 1, 2).build();
        assert_eq!(f.len(), 60);
        assert_eq!(checksum(&f[14..34]), 0);
    }
}
