//! Map keys and values shared by the `xdp-fwd` XDP program and its userspace owner
//! (`bgp-ctl`'s `fib` module).
//!
//! Every layout here is `#[repr(C)]` and is described by BTF in the built object, so
//! `bpftool map dump` shows named fields. Any change to a type, a size or a map's shape
//! must bump [`LAYOUT_VERSION`]: userspace refuses to adopt maps pinned by a binary with
//! another layout version instead of misreading them.
#![no_std]

pub mod checksum;
pub mod flow;

/// Version of the map layouts below. Stored in the pinned `config` map so that a newer
/// binary can tell what an older one left behind.
pub const LAYOUT_VERSION: u32 = 1;

/// Maximum number of IPv4 routes (LPM trie, and the exact-match host table in front of it).
pub const MAX_ROUTES_V4: u32 = 1 << 21;
/// Maximum number of IPv6 routes.
pub const MAX_ROUTES_V6: u32 = 1 << 19;
/// Number of next-hop groups. Groups are shared by every route with the same member set,
/// so a fabric needs a handful; 4096 leaves room for policy-made variety.
pub const MAX_GROUPS: u32 = 4096;
/// Number of next hops (neighbors, local pods, special next hops).
pub const MAX_NEXT_HOPS: u32 = 65536;
/// Members per group (ECMP width).
pub const MAX_GROUP_MEMBERS: usize = 16;
/// Buckets of a group's resilient hash table; a flow hashes to a bucket, a bucket names a
/// member. Removing a member only re-points that member's buckets.
pub const GROUP_BUCKETS: usize = 256;
/// Number of egress interfaces in the redirect device map.
pub const MAX_EGRESS_IFS: u32 = 1024;

/// Names of the maps in the object; also the file names of their pins.
pub mod map_name {
    /// IPv4 LPM trie: `{prefix_len, Ipv4Key}` -> [`Route`].
    pub const ROUTES_V4: &str = "routes_v4";
    /// IPv6 LPM trie: `{prefix_len, Ipv6Key}` -> [`Route`].
    pub const ROUTES_V6: &str = "routes_v6";
    /// IPv4 exact-match host routes (/32) in front of the trie.
    pub const HOSTS_V4: &str = "hosts_v4";
    /// IPv6 exact-match host routes (/128) in front of the trie.
    pub const HOSTS_V6: &str = "hosts_v6";
    /// Group id -> which of its two slots is live ([`GroupSlotRef`]).
    pub const GROUP_REFS: &str = "group_refs";
    /// Double-buffered group slots ([`NextHopGroup`]), two per group id.
    pub const GROUPS: &str = "groups";
    /// Next-hop id -> which of its two slots is live ([`NextHopSlotRef`]).
    pub const NEXT_HOP_REFS: &str = "next_hop_refs";
    /// Double-buffered next-hop slots ([`NextHop`]), two per next-hop id.
    pub const NEXT_HOPS: &str = "next_hops";
    /// Next-hop id -> its identity ([`NextHopKeyEntry`]); userspace bookkeeping that
    /// survives restarts with the maps. Never read by the program.
    pub const NEXT_HOP_KEYS: &str = "next_hop_keys";
    /// Egress interfaces for `bpf_redirect_map` (DEVMAP_HASH keyed by ifindex).
    pub const EGRESS_IFS: &str = "egress_ifs";
    /// Per-CPU [`Counters`].
    pub const COUNTERS: &str = "counters";
    /// The single [`Config`] entry.
    pub const CONFIG: &str = "config";
    /// An ARRAY_OF_MAPS never read by the program: updating it makes the kernel wait
    /// for an RCU grace period, after which no packet still reads a retired slot.
    pub const RCU_BARRIER: &str = "rcu_barrier";

    /// Every map, in a stable order.
    pub const ALL: [&str; 13] = [
        ROUTES_V4,
        ROUTES_V6,
        HOSTS_V4,
        HOSTS_V6,
        GROUP_REFS,
        GROUPS,
        NEXT_HOP_REFS,
        NEXT_HOPS,
        NEXT_HOP_KEYS,
        EGRESS_IFS,
        COUNTERS,
        CONFIG,
        RCU_BARRIER,
    ];
}

/// Name of the XDP program in the object.
pub const PROGRAM_NAME: &str = "xdp_fwd";

/// An IPv4 address in network byte order, as the LPM trie and host table key it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Key {
    /// Address octets, most significant first.
    pub addr: [u8; 4],
}

/// An IPv6 address in network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Key {
    /// Address octets, most significant first.
    pub addr: [u8; 16],
}

/// What a route resolves to: the next-hop group that forwards it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Route {
    /// Index into `group_refs`.
    pub group: u32,
    /// `ROUTE_F_*` flags.
    pub flags: u32,
}

/// [`Route::flags`]: the entry hands one of the node's own addresses (or address space
/// that is always the node's: IPv6 link-local, multicast, the IPv4 limited broadcast) to
/// the kernel. Installed from the kernel's address list, not from the Loc-RIB, and ahead
/// of any route for the same prefix. The program does not read it (the entry's group
/// holds the local next hop); a restarted `bgp-ctl` adopts such entries as the node's
/// addresses instead of as routes. A binary that predates the flag adopts them as routes
/// (removed after its resync), so the flag changes no layout.
pub const ROUTE_F_LOCAL_ADDRESS: u32 = 1 << 0;

/// The live slot of a group or next hop: an index into `groups` / `next_hops`.
///
/// Writers fill the idle slot, then flip this reference (one aligned 32-bit store), so a
/// packet sees the old entry or the new one, never a half-written one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupSlotRef {
    /// Index into `groups` (`2 * group_id` or `2 * group_id + 1`).
    pub slot: u32,
}

/// The live slot of a next hop; see [`GroupSlotRef`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NextHopSlotRef {
    /// Index into `next_hops` (`2 * next_hop_id` or `2 * next_hop_id + 1`).
    pub slot: u32,
}

/// An ECMP group with a resilient bucket table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NextHopGroup {
    /// Number of valid entries in `members`; 0 means the group is unused.
    pub n_members: u32,
    /// Next-hop ids of the members.
    pub members: [u32; MAX_GROUP_MEMBERS],
    /// Flow-hash bucket -> index into `members`.
    pub buckets: [u8; GROUP_BUCKETS],
}

impl Default for NextHopGroup {
    fn default() -> Self {
        Self {
            n_members: 0,
            members: [0; MAX_GROUP_MEMBERS],
            buckets: [0; GROUP_BUCKETS],
        }
    }
}

/// Forward: rewrite MACs and redirect to `ifindex`.
pub const NH_FORWARD: u32 = 1;
/// Pass to the kernel: the neighbor is not resolved yet, and the kernel will resolve it.
pub const NH_UNRESOLVED: u32 = 2;
/// Pass to the kernel: the destination belongs to this node.
pub const NH_LOCAL: u32 = 3;
/// Drop: a blackhole route (e.g. the uncovered space of an aggregate).
pub const NH_BLACKHOLE: u32 = 4;

/// A next hop: where and how a packet leaves.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// One of `NH_*`; 0 means unused (passed to the kernel).
    pub kind: u32,
    /// Egress interface (must be in `egress_ifs` for `NH_FORWARD`).
    pub ifindex: u32,
    /// Largest IP packet (L3 bytes) the egress link takes; 0 means unchecked.
    pub mtu: u32,
    /// Source MAC written into forwarded frames (the egress interface's own).
    pub src_mac: [u8; 6],
    /// Destination MAC written into forwarded frames (the neighbor's).
    pub dst_mac: [u8; 6],
}

/// [`NextHopKeyEntry::kind`]: the slot is free.
pub const NHK_FREE: u32 = 0;
/// A neighbor reached over IPv4 (`addr[..4]`) on `ifindex`.
pub const NHK_NEIGHBOR_V4: u32 = 4;
/// A neighbor reached over IPv6 on `ifindex`.
pub const NHK_NEIGHBOR_V6: u32 = 6;
/// The node itself.
pub const NHK_LOCAL: u32 = 1;
/// The blackhole.
pub const NHK_BLACKHOLE: u32 = 2;

/// What a next-hop id stands for, so that a restarted process can adopt next hops left
/// in the maps instead of flushing them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NextHopKeyEntry {
    /// One of `NHK_*`.
    pub kind: u32,
    /// Interface the neighbor is on.
    pub ifindex: u32,
    /// Neighbor address, network byte order (IPv4 in the first four bytes).
    pub addr: [u8; 16],
}

/// Forward IP fragments (hashed on the 3-tuple) instead of passing them to the kernel.
pub const CFG_F_FORWARD_FRAGMENTS: u32 = 1 << 0;

/// Dataplane-wide settings, entry 0 of the `config` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Config {
    /// [`LAYOUT_VERSION`] of the binary that created the maps; 0 until initialised.
    pub layout_version: u32,
    /// `CFG_F_*` flags.
    pub flags: u32,
    /// Seed of the flow hash; kept across restarts so flows keep their paths.
    pub hash_seed: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Per-CPU packet counters: what happened to every packet the program saw.
///
/// `rx = forwarded + Σ pass_* + Σ drop_*`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counters {
    /// Frames the program saw.
    pub rx: u64,
    /// Frames redirected to an egress interface.
    pub forwarded: u64,
    /// Not IPv4/IPv6 (ARP, LLDP, ...).
    pub pass_not_ip: u64,
    /// VLAN-tagged.
    pub pass_vlan: u64,
    /// Too short for its headers, or a header that does not parse.
    pub pass_malformed: u64,
    /// No route matches the destination.
    pub pass_no_route: u64,
    /// TTL / hop limit <= 1: the kernel sends the ICMP error.
    pub pass_ttl: u64,
    /// IPv4 options or IPv6 extension headers.
    pub pass_ip_options: u64,
    /// Fragments, when fragment forwarding is off.
    pub pass_fragment: u64,
    /// The next hop's MAC is not resolved yet.
    pub pass_neigh_unresolved: u64,
    /// The destination belongs to this node.
    pub pass_local: u64,
    /// Larger than the egress MTU: the kernel fragments or sends the ICMP error.
    pub pass_too_big: u64,
    /// The route's group or next hop is missing or inconsistent.
    pub pass_no_next_hop: u64,
    /// The egress interface is not in `egress_ifs`.
    pub pass_no_egress: u64,
    /// Dropped by a blackhole route.
    pub drop_blackhole: u64,
}

impl Counters {
    /// Every counter with its name, in program order (the names `show stats` prints).
    pub fn named(&self) -> [(&'static str, u64); 15] {
        [
            ("rx", self.rx),
            ("forwarded", self.forwarded),
            ("pass_not_ip", self.pass_not_ip),
            ("pass_vlan", self.pass_vlan),
            ("pass_malformed", self.pass_malformed),
            ("pass_no_route", self.pass_no_route),
            ("pass_ttl", self.pass_ttl),
            ("pass_ip_options", self.pass_ip_options),
            ("pass_fragment", self.pass_fragment),
            ("pass_neigh_unresolved", self.pass_neigh_unresolved),
            ("pass_local", self.pass_local),
            ("pass_too_big", self.pass_too_big),
            ("pass_no_next_hop", self.pass_no_next_hop),
            ("pass_no_egress", self.pass_no_egress),
            ("drop_blackhole", self.drop_blackhole),
        ]
    }
}

#[cfg(feature = "user")]
mod pod {
    use super::*;

    // SAFETY: every type is #[repr(C)], made only of integers and integer arrays, with no
    // padding bytes, so any bit pattern is a valid value.
    unsafe impl aya::Pod for Ipv4Key {}
    unsafe impl aya::Pod for Ipv6Key {}
    unsafe impl aya::Pod for Route {}
    unsafe impl aya::Pod for GroupSlotRef {}
    unsafe impl aya::Pod for NextHopSlotRef {}
    unsafe impl aya::Pod for NextHopGroup {}
    unsafe impl aya::Pod for NextHop {}
    unsafe impl aya::Pod for NextHopKeyEntry {}
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for Counters {}
}

// Layouts are ABI: pin the sizes so an accidental change fails to compile.
const _: () = {
    assert!(core::mem::size_of::<Route>() == 8);
    assert!(core::mem::size_of::<NextHopGroup>() == 4 + 4 * MAX_GROUP_MEMBERS + GROUP_BUCKETS);
    assert!(core::mem::size_of::<NextHop>() == 24);
    assert!(core::mem::size_of::<Config>() == 16);
    assert!(core::mem::size_of::<NextHopKeyEntry>() == 24);
    assert!(core::mem::size_of::<Counters>() == 15 * 8);
};
