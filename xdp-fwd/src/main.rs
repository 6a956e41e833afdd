//! xdp-fwd: the node's XDP forwarding program.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, DevMapHash, HashMap, LpmTrie, PerCpuArray},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use xdp_fwd_common::{
    Config, Counters, GroupSlotRef, Ipv4Key, Ipv6Key, MAX_EGRESS_IFS, MAX_GROUPS, MAX_NEXT_HOPS,
    MAX_ROUTES_V4, MAX_ROUTES_V6, NextHop, NextHopGroup, NextHopSlotRef, Route,
};

/// BPF_F_NO_PREALLOC: allocate host-route entries on insert, not 2M of them up front.
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
#[btf_map(name = "egress_ifs")]
static EGRESS_IFS: DevMapHash<{ MAX_EGRESS_IFS as usize }> = DevMapHash::new();
#[btf_map(name = "counters")]
static COUNTERS: PerCpuArray<Counters, 1> = PerCpuArray::new();
#[btf_map(name = "config")]
static CONFIG: Array<Config, 1> = Array::new();

#[xdp]
pub fn xdp_fwd(_ctx: XdpContext) -> u32 {
    if let Some(c) = COUNTERS.get_ptr_mut(0) {
        // SAFETY: per-CPU value, only this CPU writes it while the program runs.
        unsafe { (*c).rx += 1 };
    }
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
