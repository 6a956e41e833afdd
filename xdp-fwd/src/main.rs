//! xdp-fwd: the node's XDP forwarding program.
//!
//! Per packet: parse Ethernet and IPv4/IPv6 with bounds checks; look the destination up
//! (exact-match host table, then the LPM trie); pick the ECMP member from the route's
//! group by flow hash; for a forward next hop, queue the redirect, rewrite MACs and
//! decrement TTL/hop limit (RFC 1624 checksum update). Everything else goes to the kernel
//! unchanged (XDP_PASS) with a counter saying why; the only drop is a blackhole route.
#![no_std]
#![no_main]

mod packet;

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_REDIRECT},
    btf_maps::{Array, ArrayOfMaps, DevMapHash, HashMap, LpmTrie, PerCpuArray, lpm_trie::Key},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use xdp_fwd_common::{
    CFG_F_FORWARD_FRAGMENTS, Config, Counters, GroupSlotRef, Ipv4Key, Ipv6Key, MAX_EGRESS_IFS,
    MAX_GROUP_MEMBERS, MAX_GROUPS, MAX_NEXT_HOPS, MAX_ROUTES_V4, MAX_ROUTES_V6, NH_BLACKHOLE,
    NH_FORWARD, NH_LOCAL, NH_UNRESOLVED, NextHop, NextHopGroup, NextHopKeyEntry, NextHopSlotRef,
    Route, checksum, flow,
};

use packet::{ETH_LEN, EthHdr, IPV4_LEN, IPV6_LEN, Ipv4Hdr, Ipv6Hdr, ptr_at};

/// BPF_F_NO_PREALLOC: host-route entries are allocated on insert, not 2M up front.
const NO_PREALLOC: usize = 1;

#[btf_map(name = "routes_v4")]
static ROUTES_V4: LpmTrie<Ipv4Key, Route, { MAX_ROUTES_V4 as usize }> = LpmTrie::new();
#[btf_map(name = "routes_v6")]
static ROUTES_V6: LpmTrie<Ipv6Key, Route, { MAX_ROUTES_V6 as usize }> = LpmTrie::new();
#[btf_map(name = "hosts_v4")]
static HOSTS_V4: HashMap<Ipv4Key, Route, { MAX_ROUTES_V4 as usize }, NO_PREALLOC> = HashMap::new();
#[btf_map(name = "hosts_v6")]
static HOSTS_V6: HashMap<Ipv6Key, Route, { MAX_ROUTES_V6 as usize }, NO_PREALLOC> = HashMap::new();
#[btf_map(name = "group_refs")]
static GROUP_REFS: Array<GroupSlotRef, { MAX_GROUPS as usize }> = Array::new();
#[btf_map(name = "groups")]
static GROUPS: Array<NextHopGroup, { 2 * MAX_GROUPS as usize }> = Array::new();
#[btf_map(name = "next_hop_refs")]
static NEXT_HOP_REFS: Array<NextHopSlotRef, { MAX_NEXT_HOPS as usize }> = Array::new();
#[btf_map(name = "next_hops")]
static NEXT_HOPS: Array<NextHop, { 2 * MAX_NEXT_HOPS as usize }> = Array::new();
#[btf_map(name = "next_hop_keys")]
static NEXT_HOP_KEYS: Array<NextHopKeyEntry, { MAX_NEXT_HOPS as usize }> = Array::new();
#[btf_map(name = "egress_ifs")]
static EGRESS_IFS: DevMapHash<{ MAX_EGRESS_IFS as usize }> = DevMapHash::new();
#[btf_map(name = "counters")]
static COUNTERS: PerCpuArray<Counters, 1> = PerCpuArray::new();
#[btf_map(name = "config")]
static CONFIG: Array<Config, 1> = Array::new();
#[btf_map(name = "rcu_barrier")]
static RCU_BARRIER: ArrayOfMaps<Array<u32, 1>, 1> = ArrayOfMaps::new();

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPV6_FRAGMENT: u8 = 44;

/// Why a packet went where it went; each maps to one counter.
#[derive(Clone, Copy)]
enum Verdict {
    Forwarded,
    NotIp,
    Vlan,
    Malformed,
    NoRoute,
    Ttl,
    IpOptions,
    Fragment,
    NeighUnresolved,
    Local,
    TooBig,
    NoNextHop,
    NoEgress,
    Blackhole,
}

impl Verdict {
    #[inline(always)]
    fn action(self) -> u32 {
        match self {
            Self::Forwarded => XDP_REDIRECT,
            Self::Blackhole => XDP_DROP,
            _ => XDP_PASS,
        }
    }

    #[inline(always)]
    fn count(self, c: &mut Counters) {
        let n = match self {
            Self::Forwarded => &mut c.forwarded,
            Self::NotIp => &mut c.pass_not_ip,
            Self::Vlan => &mut c.pass_vlan,
            Self::Malformed => &mut c.pass_malformed,
            Self::NoRoute => &mut c.pass_no_route,
            Self::Ttl => &mut c.pass_ttl,
            Self::IpOptions => &mut c.pass_ip_options,
            Self::Fragment => &mut c.pass_fragment,
            Self::NeighUnresolved => &mut c.pass_neigh_unresolved,
            Self::Local => &mut c.pass_local,
            Self::TooBig => &mut c.pass_too_big,
            Self::NoNextHop => &mut c.pass_no_next_hop,
            Self::NoEgress => &mut c.pass_no_egress,
            Self::Blackhole => &mut c.drop_blackhole,
        };
        *n += 1;
    }
}

#[xdp]
pub fn xdp_fwd(ctx: XdpContext) -> u32 {
    let verdict = forward(&ctx);
    if let Some(c) = COUNTERS.get_ptr_mut(0) {
        // SAFETY: per-CPU value; only this CPU touches it while the program runs.
        let c = unsafe { &mut *c };
        c.rx += 1;
        verdict.count(c);
    }
    verdict.action()
}

#[inline(always)]
fn forward(ctx: &XdpContext) -> Verdict {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return Verdict::Malformed;
    };
    // SAFETY: ptr_at checked the header lies inside the packet.
    match u16::from_be_bytes(unsafe { (*eth).proto }) {
        ETH_P_IP => forward_v4(ctx, eth),
        ETH_P_IPV6 => forward_v6(ctx, eth),
        ETH_P_8021Q | ETH_P_8021AD => Verdict::Vlan,
        _ => Verdict::NotIp,
    }
}

#[inline(always)]
fn config() -> Config {
    match CONFIG.get(0) {
        Some(c) => *c,
        None => Config::default(),
    }
}

#[inline(always)]
fn forward_v4(ctx: &XdpContext, eth: *mut EthHdr) -> Verdict {
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, ETH_LEN) else {
        return Verdict::Malformed;
    };
    // SAFETY: ptr_at checked the header lies inside the packet.
    let ip = unsafe { &mut *ip };
    let ihl = (ip.version_ihl & 0x0f) as usize;
    let tot_len = u16::from_be_bytes(ip.tot_len) as usize;
    if ip.version_ihl >> 4 != 4
        || ihl < 5
        || tot_len < ihl * 4
        || ctx.data() + ETH_LEN + tot_len > ctx.data_end()
    {
        return Verdict::Malformed;
    }
    let Some(route) = lookup_v4(ip.daddr) else {
        return Verdict::NoRoute;
    };
    // Whether the destination is ours is known before anything about forwarding: local
    // traffic (BGP with TTL 1, BFD, options, fragments) all belongs to the kernel.
    let group = match resolve_group(route) {
        Ok(g) => g,
        Err(v) => return v,
    };
    if ihl != 5 {
        return Verdict::IpOptions;
    }
    let cfg = config();
    let frag = u16::from_be_bytes(ip.frag_off) & 0x3fff != 0;
    let ports = if frag {
        if cfg.flags & CFG_F_FORWARD_FRAGMENTS == 0 {
            return Verdict::Fragment;
        }
        0
    } else if ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP {
        match ptr_at::<[u8; 4]>(ctx, ETH_LEN + IPV4_LEN) {
            // SAFETY: in bounds, checked by ptr_at.
            Some(p) => u32::from_be_bytes(unsafe { *p }),
            None => return Verdict::Malformed,
        }
    } else {
        0
    };
    let hash = flow::hash_v4(cfg.hash_seed, ip.saddr, ip.daddr, ip.protocol, ports);
    let nh = match pick_next_hop(group, hash) {
        Ok(nh) => nh,
        Err(v) => return v,
    };
    if ip.ttl <= 1 {
        return Verdict::Ttl;
    }
    if nh.mtu != 0 && tot_len > nh.mtu as usize {
        return Verdict::TooBig;
    }
    // Queue the redirect before touching the packet: if the egress is missing the frame
    // still goes to the kernel exactly as it arrived.
    if EGRESS_IFS.redirect(nh.ifindex, 0).is_err() {
        return Verdict::NoEgress;
    }
    let old = u16::from_be_bytes([ip.ttl, ip.protocol]);
    ip.ttl -= 1;
    let new = u16::from_be_bytes([ip.ttl, ip.protocol]);
    ip.check = checksum::replace16(u16::from_be_bytes(ip.check), old, new).to_be_bytes();
    rewrite_macs(eth, nh);
    Verdict::Forwarded
}

#[inline(always)]
fn forward_v6(ctx: &XdpContext, eth: *mut EthHdr) -> Verdict {
    let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, ETH_LEN) else {
        return Verdict::Malformed;
    };
    // SAFETY: ptr_at checked the header lies inside the packet.
    let ip = unsafe { &mut *ip };
    let payload_len = u16::from_be_bytes(ip.payload_len) as usize;
    if ip.version_class[0] >> 4 != 6
        || ctx.data() + ETH_LEN + IPV6_LEN + payload_len > ctx.data_end()
    {
        return Verdict::Malformed;
    }
    let Some(route) = lookup_v6(&ip.daddr) else {
        return Verdict::NoRoute;
    };
    let group = match resolve_group(route) {
        Ok(g) => g,
        Err(v) => return v,
    };
    let cfg = config();
    let ports = match ip.next_header {
        IPPROTO_TCP | IPPROTO_UDP => match ptr_at::<[u8; 4]>(ctx, ETH_LEN + IPV6_LEN) {
            // SAFETY: in bounds, checked by ptr_at.
            Some(p) => u32::from_be_bytes(unsafe { *p }),
            None => return Verdict::Malformed,
        },
        IPV6_FRAGMENT => {
            if cfg.flags & CFG_F_FORWARD_FRAGMENTS == 0 {
                return Verdict::Fragment;
            }
            0
        }
        // Hop-by-hop, routing, destination options, AH, mobility, HIP, shim6, tests.
        0 | 43 | 51 | 60 | 135 | 139 | 140 | 253 | 254 => return Verdict::IpOptions,
        _ => 0,
    };
    let hash = flow::hash_v6(cfg.hash_seed, &ip.saddr, &ip.daddr, ip.next_header, ports);
    let nh = match pick_next_hop(group, hash) {
        Ok(nh) => nh,
        Err(v) => return v,
    };
    if ip.hop_limit <= 1 {
        return Verdict::Ttl;
    }
    if nh.mtu != 0 && IPV6_LEN + payload_len > nh.mtu as usize {
        return Verdict::TooBig;
    }
    if EGRESS_IFS.redirect(nh.ifindex, 0).is_err() {
        return Verdict::NoEgress;
    }
    ip.hop_limit -= 1;
    rewrite_macs(eth, nh);
    Verdict::Forwarded
}

#[inline(always)]
fn lookup_v4(daddr: [u8; 4]) -> Option<Route> {
    let key = Ipv4Key { addr: daddr };
    if let Some(r) = HOSTS_V4.get_ptr(key) {
        // SAFETY: a value pointer from a successful lookup.
        return Some(unsafe { *r });
    }
    ROUTES_V4.get(&Key::new(32, key)).copied()
}

#[inline(always)]
fn lookup_v6(daddr: &[u8; 16]) -> Option<Route> {
    let key = Ipv6Key { addr: *daddr };
    if let Some(r) = HOSTS_V6.get_ptr(key) {
        // SAFETY: a value pointer from a successful lookup.
        return Some(unsafe { *r });
    }
    ROUTES_V6.get(&Key::new(128, key)).copied()
}

/// The live slot of the route's group, or why there is none.
#[inline(always)]
fn resolve_group(route: Route) -> Result<&'static NextHopGroup, Verdict> {
    let slot = GROUP_REFS.get(route.group).ok_or(Verdict::NoNextHop)?.slot;
    let group = GROUPS.get(slot).ok_or(Verdict::NoNextHop)?;
    if group.n_members == 0 {
        return Err(Verdict::NoNextHop);
    }
    // Special next hops (local, unresolved, blackhole) decide before any forwarding
    // check; a group holding one is a single-member group.
    let first = next_hop(group.members[0])?;
    match first.kind {
        NH_LOCAL => Err(Verdict::Local),
        NH_BLACKHOLE => Err(Verdict::Blackhole),
        _ => Ok(group),
    }
}

#[inline(always)]
fn next_hop(id: u32) -> Result<&'static NextHop, Verdict> {
    let slot = NEXT_HOP_REFS.get(id).ok_or(Verdict::NoNextHop)?.slot;
    NEXT_HOPS.get(slot).ok_or(Verdict::NoNextHop)
}

/// The member of `group` that the flow hash selects, if it forwards.
#[inline(always)]
fn pick_next_hop(group: &NextHopGroup, hash: u32) -> Result<&'static NextHop, Verdict> {
    let member = group.buckets[flow::bucket(hash)] as usize;
    if member >= MAX_GROUP_MEMBERS || member as u32 >= group.n_members {
        return Err(Verdict::NoNextHop);
    }
    let nh = next_hop(group.members[member])?;
    match nh.kind {
        NH_FORWARD => Ok(nh),
        NH_UNRESOLVED => Err(Verdict::NeighUnresolved),
        NH_LOCAL => Err(Verdict::Local),
        NH_BLACKHOLE => Err(Verdict::Blackhole),
        _ => Err(Verdict::NoNextHop),
    }
}

#[inline(always)]
fn rewrite_macs(eth: *mut EthHdr, nh: &NextHop) {
    // Two- and four-byte moves: a `[u8; 6]` assignment compiles to an out-of-line
    // memmove loop on BPF (two calls, ~13% of the program's time). `dst_mac` sits at an
    // even offset of the map value and `src_mac` at a multiple of four; the packet's
    // alignment is unknown, hence unaligned accesses (the JIT emits plain moves).
    // SAFETY: eth was bounds-checked by ptr_at (14 bytes); nh points into a map value.
    unsafe {
        let frame = eth.cast::<u8>();
        let dst = nh.dst_mac.as_ptr();
        let src = nh.src_mac.as_ptr();
        for i in [0usize, 2, 4] {
            frame
                .add(i)
                .cast::<u16>()
                .write_unaligned(dst.add(i).cast::<u16>().read_unaligned());
            frame
                .add(6 + i)
                .cast::<u16>()
                .write_unaligned(src.add(i).cast::<u16>().read_unaligned());
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
