//! The prefix types the tables are keyed by: ipnet's `Ipv4Net` (5 bytes) and `Ipv6Net`
//! (17 bytes), always truncated (no host bits), behind one trait so that one generic table
//! serves both families.

use std::{fmt::Debug, hash::Hash};

use bgp_wire::Family;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Network bits of a prefix that place it within its block of the table's index
/// rather than being hashed: 16 consecutive prefixes of one length (`10.0.0.0/32` to
/// `10.0.0.15/32`, or `10.0.0.0/24` to `10.0.15.0/24`) share a block.
pub(crate) const LOCAL_BITS: u32 = 4;

/// [`RibPrefix::hash_split`] of the network bits `net` (right-aligned) of a prefix of
/// length `len`. The block key keeps the length apart from the bits (shifting them left
/// loses at most the top 8 bits of a /128's block, which only makes rare blocks share a
/// key: the table compares prefixes).
fn split(net: u128, len: u8) -> (u128, u32) {
    let local = (net & ((1 << LOCAL_BITS) - 1)) as u32;
    ((net >> LOCAL_BITS) << 8 | u128::from(len), local)
}

/// A prefix of one address family.
pub(crate) trait RibPrefix: Copy + Eq + Hash + Ord + Debug + Into<IpNet> {
    /// Longest prefix length of the family.
    const MAX_LEN: u8;
    /// The family.
    const FAMILY: Family;
    /// Index of the family in per-family arrays.
    const INDEX: usize;
    /// Prefix length.
    fn len(&self) -> u8;
    /// The prefix split for the table's hash: its length with all network bits but the
    /// last [`LOCAL_BITS`] as one integer (the block, hashed), and those last bits (the
    /// place in the block, kept as they are). See [`crate::rib`]'s table.
    fn hash_split(&self) -> (u128, u32);
    /// This prefix shortened to `len` bits (host bits cleared); `len` must not exceed
    /// [`Self::len`].
    fn shortened(&self, len: u8) -> Self;
}

impl RibPrefix for Ipv4Net {
    const MAX_LEN: u8 = 32;
    const FAMILY: Family = Family::IPV4_UNICAST;
    const INDEX: usize = 0;
    fn len(&self) -> u8 {
        self.prefix_len()
    }
    fn hash_split(&self) -> (u128, u32) {
        let net = u128::from(self.addr().to_bits())
            .checked_shr(u32::from(32 - self.prefix_len()))
            .unwrap_or(0);
        split(net, self.prefix_len())
    }
    fn shortened(&self, len: u8) -> Self {
        Ipv4Net::new(self.addr(), len.min(32))
            .map(|n| n.trunc())
            .unwrap_or(*self)
    }
}

impl RibPrefix for Ipv6Net {
    const MAX_LEN: u8 = 128;
    const FAMILY: Family = Family::IPV6_UNICAST;
    const INDEX: usize = 1;
    fn len(&self) -> u8 {
        self.prefix_len()
    }
    fn hash_split(&self) -> (u128, u32) {
        let net = self
            .addr()
            .to_bits()
            .checked_shr(u32::from(128 - self.prefix_len()))
            .unwrap_or(0);
        split(net, self.prefix_len())
    }
    fn shortened(&self, len: u8) -> Self {
        Ipv6Net::new(self.addr(), len.min(128))
            .map(|n| n.trunc())
            .unwrap_or(*self)
    }
}
