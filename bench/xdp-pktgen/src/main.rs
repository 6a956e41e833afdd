//! The benchmark's packet generator and sink, as XDP programs.
//!
//! `pktgen` is run by `BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES` (the
//! technique of xdp-trafficgen, which does not load on this kernel): every run turns the
//! kernel's frame into the next one of the configured flow mix and redirects it into a
//! veth. `sink` counts and drops whatever arrives.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action::{XDP_ABORTED, XDP_DROP},
    btf_maps::{Array, PerCpuArray},
    helpers::bpf_redirect,
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use xdp_fwd_common::checksum::replace16;
use xdp_pktgen_common::{FRAME_LEN, GenConfig, HEADERS_LEN, offset};

/// The template lives in a map, not in a constant: the compiler would fold a constant
/// template into the code, and userspace sets it per run.
#[btf_map(name = "pktgen_config")]
static CONFIG: Array<GenConfig, 1> = Array::new();
#[btf_map(name = "pktgen_seq")]
static SEQ: PerCpuArray<u64, 1> = PerCpuArray::new();
#[btf_map(name = "sink_count")]
static SINK_COUNT: PerCpuArray<u64, 1> = PerCpuArray::new();

#[xdp]
pub fn pktgen(ctx: XdpContext) -> u32 {
    let (Some(cfg), Some(seq)) = (CONFIG.get(0), SEQ.get_ptr_mut(0)) else {
        return XDP_ABORTED;
    };
    let data = ctx.data();
    if data + FRAME_LEN > ctx.data_end() {
        return XDP_ABORTED;
    }
    // SAFETY: per-CPU value; only this CPU touches it while the program runs.
    let n = unsafe {
        let n = *seq;
        *seq = n + 1;
        n
    };
    let frame = data as *mut [u8; FRAME_LEN];
    // SAFETY: the frame is FRAME_LEN bytes long (checked above).
    let frame = unsafe { &mut *frame };
    // The recycled page carries what the receiver left in it: restore the headers.
    frame[..HEADERS_LEN].copy_from_slice(&cfg.template[..HEADERS_LEN]);

    let flows = if cfg.flows == 0 { 1 } else { cfg.flows };
    let sport = (cfg.sport_base + (n % flows as u64) as u32) as u16;
    frame[offset::UDP_SPORT..offset::UDP_SPORT + 2].copy_from_slice(&sport.to_be_bytes());

    if cfg.dst_count > 1 {
        let i = (n.wrapping_mul(cfg.dst_stride as u64) % cfg.dst_count as u64) as u32;
        let old = cfg.dst_base;
        let new = old.wrapping_add(i);
        let mut check = u16::from_be_bytes([frame[offset::IP_CHECK], frame[offset::IP_CHECK + 1]]);
        check = replace16(check, (old >> 16) as u16, (new >> 16) as u16);
        check = replace16(check, old as u16, new as u16);
        frame[offset::IP_CHECK..offset::IP_CHECK + 2].copy_from_slice(&check.to_be_bytes());
        frame[offset::IP_DST..offset::IP_DST + 4].copy_from_slice(&new.to_be_bytes());
    }
    // SAFETY: a helper call with plain integer arguments.
    unsafe { bpf_redirect(cfg.ifindex, 0) as u32 }
}

#[xdp]
pub fn sink(_ctx: XdpContext) -> u32 {
    if let Some(c) = SINK_COUNT.get_ptr_mut(0) {
        // SAFETY: per-CPU value; only this CPU touches it while the program runs.
        unsafe { *c += 1 };
    }
    XDP_DROP
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
