//! The router topology shared by the forwarding and restart tests.
// Each test crate includes this module and uses part of it.
#![allow(dead_code)]

use bgp_ctl::fib::{AttachMode, Dataplane, Fib, NextHopKey};
use lab::{Netns, PinDir};
use xdp_fwd_common::{NH_FORWARD, NextHop};

/// source (pod 10.244.8.1) --g0/r0-- router --r1/s0-- sink (pod 10.244.9.1)
pub struct Topology {
    pub source: Netns,
    pub router: Netns,
    pub sink: Netns,
    pub pins: PinDir,
}

pub fn topology(mode: AttachMode) -> anyhow::Result<Topology> {
    lab::require_root()?;
    lab::sweep_stale();
    let (source, router, sink) = (Netns::new()?, Netns::new()?, Netns::new()?);
    lab::veth(&source, "g0", &router, "r0")?;
    lab::veth(&router, "r1", &sink, "s0")?;
    source.ip(&["addr", "add", "192.0.2.1/24", "dev", "g0"])?;
    router.ip(&["addr", "add", "192.0.2.254/24", "dev", "r0"])?;
    router.ip(&["addr", "add", "198.51.100.254/24", "dev", "r1"])?;
    sink.ip(&["addr", "add", "198.51.100.1/24", "dev", "s0"])?;
    source.ip(&["addr", "add", "10.244.8.1/32", "dev", "lo"])?;
    sink.ip(&["addr", "add", "10.244.9.1/32", "dev", "lo"])?;
    source.ip(&[
        "route",
        "add",
        "10.244.9.0/24",
        "via",
        "192.0.2.254",
        "src",
        "10.244.8.1",
    ])?;
    sink.ip(&[
        "route",
        "add",
        "10.244.8.0/24",
        "via",
        "198.51.100.254",
        "src",
        "10.244.9.1",
    ])?;
    router.exec("sysctl", &["-qw", "net.ipv4.ip_forward=0"])?;
    for (ns, dev) in [(&source, "g0"), (&sink, "s0")] {
        // Frames redirected into a veth in native mode are only taken by a peer with NAPI.
        ns.exec("ethtool", &["-K", dev, "gro", "on"])?;
        // An uplink receives frames from the wire, with complete checksums; a veth
        // sender would leave them partial (offloaded), which only the sending kernel's
        // skb remembers and no XDP program can see. Make the hosts send wire frames.
        ns.exec("ethtool", &["-K", dev, "tx", "off"])?;
    }
    let pins = PinDir::new()?;
    let (g0, s0) = (source.link("g0")?, sink.link("s0")?);
    let (r0, r1) = (router.link("r0")?, router.link("r1")?);
    router.enter(|| -> anyhow::Result<()> {
        let mut dp = Dataplane::open(pins.path())?;
        dp.attach("r0", mode)?;
        dp.attach("r1", mode)?;
        // The FIB's egress devices are looked up in the writer's namespace.
        let mut fib = Fib::open(pins.path())?;
        let via = |ifindex, addr: &str, dst_mac, src_mac| {
            (
                NextHopKey::Neighbor {
                    ifindex,
                    addr: addr.parse().unwrap(),
                },
                NextHop {
                    kind: NH_FORWARD,
                    ifindex,
                    mtu: 1500,
                    src_mac,
                    dst_mac,
                },
            )
        };
        let to_sink = via(r1.ifindex, "198.51.100.1", s0.mac, r1.mac);
        let to_gen = via(r0.ifindex, "192.0.2.1", g0.mac, r0.mac);
        fib.set_next_hop(to_sink.0, to_sink.1)?;
        fib.set_next_hop(to_gen.0, to_gen.1)?;
        fib.add_route("10.244.9.0/24".parse()?, &[to_sink.0])?;
        fib.add_route("10.244.8.0/24".parse()?, &[to_gen.0])?;
        Ok(())
    })??;
    Ok(Topology {
        source,
        router,
        sink,
        pins,
    })
}

/// The `bgp-ctl` binary next to the test (one definition, in the lab library).
#[allow(unused_imports)]
pub use lab::agent::bgp_ctl_bin;

/// The id of the XDP program attached to `dev`, if any.
pub fn xdp_prog_id(ns: &Netns, dev: &str) -> anyhow::Result<Option<u64>> {
    let json = ns.ip(&["-j", "-d", "link", "show", "dev", dev])?;
    Ok(json
        .split("\"xdp\":")
        .nth(1)
        .and_then(|x| x.split("\"id\":").nth(1))
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok()))
}
