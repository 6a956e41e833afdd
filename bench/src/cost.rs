//! A program's cost per packet, from `BPF_PROG_TEST_RUN` with repeat: the kernel times
//! the runs itself, against the live maps (or the live FIB) with however many routes are
//! loaded.

use anyhow::{Result, bail};
use bgp_ctl::fib::FrameRun;
use lab::frames::V4;

use crate::{routes, stats::median, topology};

/// Runs per call. The kernel repeats the program on one buffer, so the TTL it decrements
/// goes down by one per run: starting at 255, all 250 runs take the full forwarding path
/// (and the frame that comes back proves it with TTL 5).
pub const REPEAT: u32 = 250;
const START_TTL: u8 = 255;
/// Calls per sample: 1,000,000 runs, each call to another loaded route.
pub const CALLS: u32 = 4000;
/// XDP_REDIRECT.
const XDP_REDIRECT: u32 = 4;
/// Visits the loaded routes in a scattered order (coprime with any count of the form
/// 10^k, so no two calls of a sample repeat a route until all were visited).
const STRIDE: u64 = 7919;

/// Nanoseconds per run over one sample of [`CALLS`] calls of [`REPEAT`] runs through
/// `run` (a frame and a repeat count in, the program's outcome out), each call to one of
/// the first `routes` host routes: the median of the calls' means, so that a call
/// preempted by another process on a shared machine does not count.
pub fn sample_ns(mut run: impl FnMut(&[u8], u32) -> Result<FrameRun>, routes: u32) -> Result<f64> {
    let mut per_call = Vec::with_capacity(CALLS as usize);
    for k in 0..CALLS {
        let i = ((u64::from(k) * STRIDE) % u64::from(routes.max(1))) as u32;
        let mut pkt = V4::udp(
            topology::SRC,
            routes::host(i),
            topology::SPORT_BASE,
            topology::DPORT,
        );
        pkt.ttl = START_TTL;
        let r = run(&pkt.build(), REPEAT)?;
        let ttl = r.frame.get(22).copied();
        if r.action != XDP_REDIRECT || ttl != Some(START_TTL - REPEAT as u8) {
            bail!(
                "cost run to {}: action {} TTL {ttl:?}, expected a redirect on every run \
                 (action {XDP_REDIRECT}, TTL {})",
                routes::host(i),
                r.action,
                START_TTL - REPEAT as u8
            );
        }
        per_call.push(r.per_run.as_nanos() as f64);
    }
    Ok(median(&per_call))
}
