//! `cargo xtask run`: until the dev fabric exists, a one-node demo of the dataplane:
//! a node namespace with an uplink veth to a peer namespace, the XDP program attached to
//! the uplink through pinned maps and link, traffic, and its counters.

use std::path::PathBuf;

use anyhow::{Context, Result};
use lab::{Netns, PinDir};

fn bgp_ctl() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("debug/bgp-ctl")
}

pub fn run(wait: bool) -> Result<()> {
    lab::sweep_stale();
    let node = Netns::new()?;
    let peer = Netns::new()?;
    lab::veth(&node, "up0", &peer, "up1")?;
    node.ip(&["addr", "add", "192.0.2.1/24", "dev", "up0"])?;
    peer.ip(&["addr", "add", "192.0.2.2/24", "dev", "up1"])?;
    let pins = PinDir::new()?;
    let pin_dir = pins.path().to_str().context("pin path")?.to_owned();
    let bin = bgp_ctl();
    let bin = bin.to_str().context("binary path")?;
    let netns = format!("--net=/run/netns/{}", node.name());

    let attached = lab::run(
        "nsenter",
        &[
            &netns,
            bin,
            "dataplane",
            "attach",
            "--iface",
            "up0",
            "--mode",
            "driver",
            "--pin-dir",
            &pin_dir,
        ],
    )?;
    print!("{attached}");
    println!("\n$ ip netns exec {} ping -c 5 192.0.2.1", peer.name());
    print!(
        "{}",
        peer.exec("ping", &["-c", "5", "-i", "0.2", "192.0.2.1"])?
    );
    println!("\n$ bgp-ctl dataplane stats --pin-dir {pin_dir}");
    print!(
        "{}",
        lab::run(bin, &["dataplane", "stats", "--pin-dir", &pin_dir])?
    );

    println!(
        "\nDemo: namespace {node} holds uplink up0 (192.0.2.1) with xdp-fwd attached in driver \
         mode; namespace {peer} is its peer (192.0.2.2). Look at it with:\n  \
         ip -n {node} -d link show up0\n  \
         {bin} dataplane stats --pin-dir {pin_dir}\n  \
         bpftool map dump pinned {pin_dir}/counters\n  \
         ip netns exec {peer} ping 192.0.2.1\n\
         The BGP speaker and the dev fabric come with the next issues.",
        node = node.name(),
        peer = peer.name(),
    );
    if wait {
        println!("Press Ctrl-C to tear it down.");
        wait_for_interrupt();
    }
    println!(
        "Tearing down {} and {}, and {pin_dir}.",
        node.name(),
        peer.name()
    );
    Ok(())
}

/// Blocks until SIGINT or SIGTERM, so that the namespaces and pins are removed on the way
/// out instead of being left behind by a killed process.
fn wait_for_interrupt() {
    // SAFETY: plain signal-mask calls on a zeroed sigset; no handler runs.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}
