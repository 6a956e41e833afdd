//! The FIB programmer after a restart: next hops adopted from the pinned maps are
//! brought up to date once the kernel's links and neighbors are reported, whatever
//! order the watchers' first dumps come in (a next hop left unresolved would hand every
//! packet through it to the kernel for good).

use std::net::IpAddr;

use bgp_ctl::{
    fib::{Dataplane, Fib, NextHopKey},
    programmer::{FibProgrammer, LinkInfo},
};
use lab::PinDir;
use xdp_fwd_common::{NH_FORWARD, NH_UNRESOLVED, NextHop};

/// `lo`: any existing interface serves as egress for the maps.
const IFINDEX: u32 = 1;
const OLD_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
const NEW_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x02];
const OUR_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x01];

fn link() -> LinkInfo {
    LinkInfo {
        mac: OUR_MAC,
        mtu: 1500,
        usable: true,
    }
}

/// Pins with one forwarding next hop to `addr`, as a previous process left them; the
/// maps re-opened, as the restarted process sees them.
fn adopted(pins: &PinDir, addr: IpAddr) -> anyhow::Result<(Dataplane, FibProgrammer)> {
    let dp = Dataplane::open(pins.path())?;
    {
        let mut fib = Fib::open(pins.path())?;
        fib.set_next_hop(
            NextHopKey::Neighbor {
                ifindex: IFINDEX,
                addr,
            },
            NextHop {
                kind: NH_FORWARD,
                ifindex: IFINDEX,
                mtu: 1500,
                src_mac: OUR_MAC,
                dst_mac: OLD_MAC,
            },
        )?;
    }
    Ok((dp, FibProgrammer::new(Fib::open(pins.path())?)))
}

fn value(p: &FibProgrammer, addr: IpAddr) -> NextHop {
    p.fib()
        .next_hop(&NextHopKey::Neighbor {
            ifindex: IFINDEX,
            addr,
        })
        .expect("the adopted next hop is still defined")
}

#[test]
fn adopted_next_hops_are_rewritten_when_the_neighbor_comes_before_the_link() -> anyhow::Result<()> {
    lab::require_root()?;
    let pins = PinDir::new()?;
    let addr: IpAddr = "192.0.2.1".parse()?;
    let (_dp, mut p) = adopted(&pins, addr)?;
    // The neighbor dump first: the link is unknown, the entry is left alone...
    p.neighbor_changed(IFINDEX, addr, Some(NEW_MAC))?;
    assert_eq!(value(&p, addr).kind, NH_FORWARD);
    assert_eq!(value(&p, addr).dst_mac, OLD_MAC);
    // ...and the link's report rewrites it with what is known now.
    p.link_changed(IFINDEX, Some(link()))?;
    let v = value(&p, addr);
    assert_eq!(
        (v.kind, v.dst_mac, v.src_mac),
        (NH_FORWARD, NEW_MAC, OUR_MAC)
    );
    Ok(())
}

#[test]
fn adopted_next_hops_are_rewritten_when_the_link_comes_before_the_neighbor() -> anyhow::Result<()> {
    lab::require_root()?;
    let pins = PinDir::new()?;
    let addr: IpAddr = "192.0.2.2".parse()?;
    let (_dp, mut p) = adopted(&pins, addr)?;
    // The link first: the neighbor is not known yet, so the kernel resolves meanwhile.
    p.link_changed(IFINDEX, Some(link()))?;
    assert_eq!(value(&p, addr).kind, NH_UNRESOLVED);
    p.neighbor_changed(IFINDEX, addr, Some(NEW_MAC))?;
    let v = value(&p, addr);
    assert_eq!((v.kind, v.dst_mac), (NH_FORWARD, NEW_MAC));
    // A link going down sends its next hops to the kernel.
    p.link_changed(
        IFINDEX,
        Some(LinkInfo {
            usable: false,
            ..link()
        }),
    )?;
    assert_eq!(value(&p, addr).kind, NH_UNRESOLVED);
    Ok(())
}
