//! `cargo xtask run`: the dev fabric (`lab::fabric`): a spine, two leaves (FRR) and
//! nodes running the `bgp-ctl` daemon just built, each with pods, in network
//! namespaces. Prints what it built and how to look at it, shows a ping between pods on
//! different nodes, and keeps it up until Ctrl-C; then removes everything it created.

use std::{net::IpAddr, path::PathBuf, time::Instant};

use anyhow::{Result, bail};
use clap::Args;
use lab::fabric::{Fabric, FabricOptions, XdpMode};

/// Options of `cargo xtask run`.
#[derive(Args, Debug)]
pub struct RunOptions {
    /// Number of nodes (each dual-homed to both leaves).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=200))]
    pub nodes: u8,
    /// Pods per node.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=200))]
    pub pods: u8,
    /// IPv4 only (no IPv6 addresses, sessions or routes).
    #[arg(long)]
    pub no_ipv6: bool,
    /// No BFD on the node-leaf sessions.
    #[arg(long)]
    pub no_bfd: bool,
    /// XDP attach mode on the nodes: `skb` (generic) or `driver` (native veth XDP).
    #[arg(long, default_value = "skb", value_parser = ["skb", "driver"])]
    pub xdp_mode: String,
    /// Show the fabric and tear it down at once instead of waiting for Ctrl-C.
    #[arg(long)]
    pub no_wait: bool,
}

impl RunOptions {
    /// What `cargo xtask bench fabric` builds: the defaults of `cargo xtask run`.
    pub fn default_for_bench() -> Self {
        RunOptions {
            nodes: 3,
            pods: 2,
            no_ipv6: false,
            no_bfd: false,
            xdp_mode: "skb".into(),
            no_wait: true,
        }
    }
}

/// The `bgp-ctl` binary `cargo xtask build` made.
pub fn bgp_ctl() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("debug/bgp-ctl")
}

/// The fabric options `opts` ask for.
pub fn options(opts: &RunOptions) -> FabricOptions {
    let mut o = FabricOptions::new(bgp_ctl());
    o.nodes = opts.nodes;
    o.pods_per_node = opts.pods;
    o.ipv6 = !opts.no_ipv6;
    o.bfd = !opts.no_bfd;
    o.xdp_mode = if opts.xdp_mode == "driver" {
        XdpMode::Driver
    } else {
        XdpMode::Skb
    };
    o
}

pub fn run(opts: &RunOptions) -> Result<()> {
    // Blocked before any thread or daemon starts, so Ctrl-C only reaches sigwait below
    // (the daemons run in their own process groups) and the teardown always runs.
    let signals = block_interrupts();
    let started = Instant::now();
    println!("xtask run: building the fabric...");
    let fabric = Fabric::start(options(opts))?;
    println!(
        "xtask run: the fabric converged {:.1} s after the start\n",
        started.elapsed().as_secs_f64()
    );
    print!("{}", fabric.describe());
    let result = demonstrate(&fabric);
    match &result {
        Ok(()) if !opts.no_wait => {
            println!("\nThe fabric is up. Press Ctrl-C to tear it down.");
            wait_for(&signals);
        }
        Ok(()) => {}
        Err(e) => eprintln!("xtask run: {e:#}"),
    }
    println!("Tearing down: daemons, namespaces, pins and run directories.");
    drop(fabric);
    println!("Done: nothing left behind.");
    result
}

/// A ping between pods on different nodes, in each family, and the XDP counters that
/// show the dataplane carried it.
fn demonstrate(fabric: &Fabric) -> Result<()> {
    let Some(a) = fabric.pods().next() else {
        println!("\n(no pods: nothing to ping)");
        return Ok(());
    };
    let Some(b) = fabric.pods().find(|p| p.node != a.node) else {
        println!("\n(one node only: no ping across nodes)");
        return Ok(());
    };
    let before = fabric.xdp_counter(b.node, "forwarded")?;
    let mut targets = vec![IpAddr::V4(b.ipv4)];
    targets.extend(b.ipv6.map(IpAddr::V6));
    for dst in targets {
        println!(
            "\n$ ip netns exec {} ping -c 3 {dst}      # {} on {} -> {} on {}",
            a.ns.name(),
            a.name,
            fabric.nodes[a.node].name,
            b.name,
            fabric.nodes[b.node].name
        );
        print!("{}", a.ping(dst, 3)?);
    }
    let after = fabric.xdp_counter(b.node, "forwarded")?;
    println!(
        "\n{}'s XDP program forwarded {} packets meanwhile (show stats: forwarded {before} -> {after}).",
        fabric.nodes[b.node].name,
        after - before
    );
    if after <= before {
        bail!(
            "the pings were answered but {}'s XDP program forwarded none of them",
            fabric.nodes[b.node].name
        );
    }
    Ok(())
}

/// Blocks SIGINT and SIGTERM for this thread and the threads it starts.
fn block_interrupts() -> libc::sigset_t {
    // SAFETY: plain signal-mask calls on a zeroed sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for one of the blocked signals.
fn wait_for(set: &libc::sigset_t) {
    let mut sig = 0;
    // SAFETY: `set` is an initialised sigset; sigwait writes the signal number.
    unsafe { libc::sigwait(set, &mut sig) };
}
