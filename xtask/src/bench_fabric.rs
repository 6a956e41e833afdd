//! `cargo xtask bench fabric`: the end-to-end measurements on the dev fabric
//! (`lab::scenarios`), repeated, with medians. The last line is machine-readable:
//!
//! `RESULT fabric leaf_fail_gap_ms=<n> restart_lost_pkts=<n> restart_withdrawals=<n>
//! pod_add_visible_ms=<n> bfd_detect_ms=<n>`
//!
//! - `leaf_fail_gap_ms`: median over the leaf failures of the longest delivery gap of
//!   eight numbered UDP flows (1 packet/ms each) when a leaf is black-holed;
//! - `restart_lost_pkts`, `restart_withdrawals`: totals over the `kill -9` restarts of
//!   a node's daemon (packets lost by numbered flows through the node, both ways; times
//!   one of its pod routes was missing from a leaf's table, read every 20 ms);
//! - `pod_add_visible_ms`: median time from the start of a pod's creation (CNI ADD on
//!   one node) until a pod on another node gets an answer to a ping;
//! - `bfd_detect_ms`: median time from a leaf's failure until the node reports BFD Down.
//!
//! It runs the debug build `cargo xtask run` uses: the figures are protocol timers
//! and kernel paths, not CPU-bound work.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use lab::{fabric::Fabric, scenarios};

/// Repetitions of each scenario.
const POD_CHURNS: usize = 5;
const RESTARTS: usize = 2;
const LEAF_FAILURES: usize = 3;

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

pub fn run() -> Result<()> {
    let options = crate::fabric::options(&crate::fabric::RunOptions::default_for_bench());
    println!(
        "bench fabric: {} nodes, {} pods each, IPv6, BFD 100 ms x 3, XDP {}",
        options.nodes,
        options.pods_per_node,
        options.xdp_mode.as_str()
    );
    let t = Instant::now();
    let mut f = Fabric::start(options)?;
    println!(
        "fabric converged {:.1} s after the start",
        t.elapsed().as_secs_f64()
    );

    let mut visible = Vec::new();
    let nodes = f.nodes.len();
    for i in 0..POD_CHURNS {
        let c = scenarios::pod_churn(&mut f, i % nodes, (i + 1) % nodes)?;
        println!(
            "pod churn {}: {} reachable from another node after {} ms, in every table after {} ms, \
             withdrawn everywhere {} ms after its deletion",
            i + 1,
            c.name,
            ms(c.reachable),
            ms(c.everywhere),
            ms(c.withdrawn)
        );
        ensure!(
            c.unreachable_after,
            "{} still answers after its deletion",
            c.name
        );
        visible.push(ms(c.reachable));
    }

    let (mut lost, mut withdrawals) = (0, 0);
    for i in 0..RESTARTS {
        let r = scenarios::restart(&mut f, 0, 1)?;
        println!(
            "restart {}: sessions back after {} ms, converged after {} ms; {} of {} packets lost, \
             longest gap {} ms; pod routes missing at the leaves {} times in {} reads; R bit {}",
            i + 1,
            ms(r.sessions_back),
            ms(r.converged),
            r.lost(),
            r.outbound.sent() + r.inbound.sent(),
            ms(r.outbound.max_gap().max(r.inbound.max_gap())),
            r.withdrawals,
            r.polls,
            r.restart_bit
        );
        lost += r.lost();
        withdrawals += r.withdrawals;
    }

    let (mut gaps, mut detects) = (Vec::new(), Vec::new());
    for i in 0..LEAF_FAILURES {
        let r = scenarios::leaf_failure(&f, 1, 0, 1)?;
        println!(
            "leaf failure {}: BFD down after {} ms, session down after {} ms ({}); longest gap {} ms, \
             {} of {} packets lost; every flow recovered: {}",
            i + 1,
            ms(r.bfd_detect),
            ms(r.session_down),
            r.last_error,
            ms(r.flows.max_gap()),
            r.flows.lost(),
            r.flows.sent(),
            r.recovered
        );
        ensure!(r.recovered, "a flow never recovered from the leaf failure");
        gaps.push(ms(r.flows.max_gap()));
        detects.push(ms(r.bfd_detect));
        let took = scenarios::leaf_repair(&f, 1)?;
        println!(
            "  leaf1 back, fabric converged, BFD up after {} ms",
            ms(took)
        );
    }
    drop(f);
    println!(
        "RESULT fabric leaf_fail_gap_ms={} restart_lost_pkts={lost} restart_withdrawals={withdrawals} \
         pod_add_visible_ms={} bfd_detect_ms={}",
        median(gaps),
        median(visible),
        median(detects)
    );
    Ok(())
}
