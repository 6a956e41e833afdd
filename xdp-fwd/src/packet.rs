//! Header layouts and bounds-checked access to packet bytes.
//!
//! Multi-byte fields are byte arrays: the program never assumes the alignment of packet
//! data, and converts with `from_be_bytes` where it needs a number.

use aya_ebpf::programs::XdpContext;

/// Ethernet header.
#[repr(C)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub proto: [u8; 2],
}

/// IPv4 header without options.
#[repr(C)]
pub struct Ipv4Hdr {
    pub version_ihl: u8,
    pub tos: u8,
    pub tot_len: [u8; 2],
    pub id: [u8; 2],
    pub frag_off: [u8; 2],
    pub ttl: u8,
    pub protocol: u8,
    pub check: [u8; 2],
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
}

/// IPv6 fixed header.
#[repr(C)]
pub struct Ipv6Hdr {
    pub version_class: [u8; 4],
    pub payload_len: [u8; 2],
    pub next_header: u8,
    pub hop_limit: u8,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

pub const ETH_LEN: usize = core::mem::size_of::<EthHdr>();
pub const IPV4_LEN: usize = core::mem::size_of::<Ipv4Hdr>();
pub const IPV6_LEN: usize = core::mem::size_of::<Ipv6Hdr>();

/// A pointer to a `T` at `offset` into the packet, if the whole `T` lies inside it.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}
