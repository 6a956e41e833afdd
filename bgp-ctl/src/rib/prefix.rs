//! The prefix types the tables are keyed by: ipnet's `Ipv4Net` (5 bytes) and `Ipv6Net`
//! (17 bytes), always truncated (no host bits), behind one trait so that one generic table
//! serves both families.

use std::{fmt::Debug, hash::Hash};

use bgp_wire::Family;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

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
    /// The prefix as one integer, for hashing: cheaper than the derived `Hash` (which
    /// feeds the address bytes and the length separately).
    fn hash_key(&self) -> u128;
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
    fn hash_key(&self) -> u128 {
        (u128::from(self.addr().to_bits()) << 8) | u128::from(self.prefix_len())
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
    fn hash_key(&self) -> u128 {
        // Rare equal keys (a /127 and a /126 whose address ends in 1) only cost one more
        // comparison in the table.
        self.addr().to_bits() ^ u128::from(self.prefix_len())
    }
    fn shortened(&self, len: u8) -> Self {
        Ipv6Net::new(self.addr(), len.min(128))
            .map(|n| n.trunc())
            .unwrap_or(*self)
    }
}
