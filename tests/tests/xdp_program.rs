//! The XDP program, frame by frame through `BPF_PROG_TEST_RUN` against real maps filled
//! by the userspace `Fib`: the action, the exact output bytes, and the counter that moved.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use bgp_ctl::fib::{Dataplane, Fib, NextHopKey};
use lab::{
    PinDir,
    frames::{self, ICMP, ICMPV6, TCP, V4, V6},
};
use xdp_fwd_common::{Counters, NH_FORWARD, NH_UNRESOLVED, NextHop};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

/// The neighbor's MAC that forwarded frames must carry, and the uplink's own.
const NH_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
const OUR_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x01];

struct Rig {
    dp: Dataplane,
    fib: Fib,
    _pins: PinDir,
}

fn v4(a: &str) -> Ipv4Addr {
    a.parse().unwrap()
}
fn v6(a: &str) -> Ipv6Addr {
    a.parse().unwrap()
}

/// A dataplane with one route of each kind. Egress is `lo` (ifindex 1): the program only
/// queues the redirect under test-run, so any existing interface serves.
fn rig() -> anyhow::Result<Rig> {
    lab::require_root()?;
    let pins = PinDir::new()?;
    let dp = Dataplane::open(pins.path())?;
    let mut fib = Fib::open(pins.path())?;
    let fwd = |mtu| NextHop {
        kind: NH_FORWARD,
        ifindex: 1,
        mtu,
        src_mac: OUR_MAC,
        dst_mac: NH_MAC,
    };
    let nh = |a: &str| NextHopKey::Neighbor {
        ifindex: 1,
        addr: a.parse().unwrap(),
    };
    fib.set_next_hop(nh("192.168.1.1"), fwd(1500))?;
    fib.set_next_hop(nh("192.168.1.2"), fwd(576))?;
    fib.set_next_hop(
        nh("192.168.1.9"),
        NextHop {
            kind: NH_UNRESOLVED,
            ..Default::default()
        },
    )?;
    fib.set_next_hop(nh("fe80::1"), fwd(1500))?;
    fib.set_next_hop(
        NextHopKey::Local,
        NextHop {
            kind: xdp_fwd_common::NH_LOCAL,
            ..Default::default()
        },
    )?;
    fib.set_next_hop(
        NextHopKey::Blackhole,
        NextHop {
            kind: xdp_fwd_common::NH_BLACKHOLE,
            ..Default::default()
        },
    )?;
    fib.add_route("10.244.2.0/24".parse()?, &[nh("192.168.1.1")])?;
    fib.add_route("10.244.3.5/32".parse()?, &[nh("192.168.1.1")])?;
    fib.add_route("10.244.7.0/24".parse()?, &[nh("192.168.1.2")])?;
    fib.add_route("10.244.9.0/24".parse()?, &[nh("192.168.1.9")])?;
    fib.add_route("10.244.1.1/32".parse()?, &[NextHopKey::Local])?;
    fib.add_route("10.244.66.0/24".parse()?, &[NextHopKey::Blackhole])?;
    fib.add_route("2001:db8:2::/64".parse()?, &[nh("fe80::1")])?;
    fib.add_route("2001:db8:1::1/128".parse()?, &[NextHopKey::Local])?;
    Ok(Rig {
        dp,
        fib,
        _pins: pins,
    })
}

/// What a forwarded frame must look like: new MACs, TTL/hop limit one lower, and (for
/// IPv4) a header checksum computed from scratch.
fn forwarded(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[..6].copy_from_slice(&NH_MAC);
    f[6..12].copy_from_slice(&OUR_MAC);
    if f[12..14] == [0x08, 0x00] {
        f[22] -= 1;
        f[24] = 0;
        f[25] = 0;
        let ihl = (f[14] & 0x0f) as usize * 4;
        let c = frames::checksum(&f[14..14 + ihl]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    } else {
        f[21] -= 1;
    }
    f
}

/// Which counter a case must move.
type Pick = fn(&Counters) -> u64;

struct Case {
    name: &'static str,
    frame: Vec<u8>,
    action: u32,
    counter: Pick,
}

fn case(name: &'static str, frame: Vec<u8>, action: u32, counter: Pick) -> Case {
    Case {
        name,
        frame,
        action,
        counter,
    }
}

fn cases() -> Vec<Case> {
    let src = v4("10.244.1.5");
    let udp = |dst: &str| V4::udp(src, v4(dst), 40000, 53);
    let with = |mut p: V4, f: &dyn Fn(&mut V4)| {
        f(&mut p);
        p.build()
    };
    let src6 = v6("2001:db8:1::5");
    let udp6 = |dst: &str| V6::udp(src6, v6(dst), 40000, 53);
    let with6 = |mut p: V6, f: &dyn Fn(&mut V6)| {
        f(&mut p);
        p.build()
    };
    let fwd: Pick = |c| c.forwarded;
    let mut truncated_tot_len = udp("10.244.2.9").build();
    truncated_tot_len[16..18].copy_from_slice(&200u16.to_be_bytes());
    let mut bad_version = udp("10.244.2.9").build();
    bad_version[14] = 0x65;
    vec![
        case("v4 udp", udp("10.244.2.9").build(), XDP_REDIRECT, fwd),
        case(
            "v4 tcp",
            with(udp("10.244.2.9"), &|p| p.proto = TCP),
            XDP_REDIRECT,
            fwd,
        ),
        case(
            "v4 icmp",
            with(udp("10.244.2.9"), &|p| p.proto = ICMP),
            XDP_REDIRECT,
            fwd,
        ),
        case(
            "v4 host route",
            udp("10.244.3.5").build(),
            XDP_REDIRECT,
            fwd,
        ),
        case(
            "v4 ttl 2",
            with(udp("10.244.2.9"), &|p| p.ttl = 2),
            XDP_REDIRECT,
            fwd,
        ),
        case(
            "v4 ttl 1",
            with(udp("10.244.2.9"), &|p| p.ttl = 1),
            XDP_PASS,
            |c| c.pass_ttl,
        ),
        case(
            "v4 ttl 0",
            with(udp("10.244.2.9"), &|p| p.ttl = 0),
            XDP_PASS,
            |c| c.pass_ttl,
        ),
        case(
            "v4 ttl 255 big",
            with(udp("10.244.2.9"), &|p| {
                p.ttl = 255;
                p.payload = 1400
            }),
            XDP_REDIRECT,
            fwd,
        ),
        case(
            "v4 options",
            with(udp("10.244.2.9"), &|p| p.options = 4),
            XDP_PASS,
            |c| c.pass_ip_options,
        ),
        case(
            "v4 first fragment",
            with(udp("10.244.2.9"), &|p| p.frag = 0x2000),
            XDP_PASS,
            |c| c.pass_fragment,
        ),
        case(
            "v4 later fragment",
            with(udp("10.244.2.9"), &|p| p.frag = 0x0010),
            XDP_PASS,
            |c| c.pass_fragment,
        ),
        case(
            "v4 DF is no fragment",
            with(udp("10.244.2.9"), &|p| p.frag = 0x4000),
            XDP_REDIRECT,
            fwd,
        ),
        case(
            "v4 too big for egress",
            with(udp("10.244.7.1"), &|p| p.payload = 1000),
            XDP_PASS,
            |c| c.pass_too_big,
        ),
        case(
            "v4 fits egress",
            with(udp("10.244.7.1"), &|p| p.payload = 500),
            XDP_REDIRECT,
            fwd,
        ),
        case("v4 no route", udp("10.99.0.1").build(), XDP_PASS, |c| {
            c.pass_no_route
        }),
        case(
            "v4 local, ttl 1 (eBGP)",
            with(udp("10.244.1.1"), &|p| {
                p.ttl = 1;
                p.proto = TCP;
                p.dport = 179
            }),
            XDP_PASS,
            |c| c.pass_local,
        ),
        case(
            "v4 local with options",
            with(udp("10.244.1.1"), &|p| p.options = 8),
            XDP_PASS,
            |c| c.pass_local,
        ),
        case(
            "v4 unresolved neighbor",
            udp("10.244.9.1").build(),
            XDP_PASS,
            |c| c.pass_neigh_unresolved,
        ),
        case("v4 blackhole", udp("10.244.66.1").build(), XDP_DROP, |c| {
            c.drop_blackhole
        }),
        case(
            "v4 tot_len past the frame",
            truncated_tot_len,
            XDP_PASS,
            |c| c.pass_malformed,
        ),
        case("v4 bad version", bad_version, XDP_PASS, |c| {
            c.pass_malformed
        }),
        case(
            "v4 truncated header",
            udp("10.244.2.9").build()[..30].to_vec(),
            XDP_PASS,
            |c| c.pass_malformed,
        ),
        case(
            "v4 truncated ports",
            with(udp("10.244.2.9"), &|p| {
                p.proto = TCP;
                p.payload = 0
            })[..36]
                .to_vec(),
            XDP_PASS,
            |c| c.pass_malformed,
        ),
        // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header, so the
        // shortest runt tested is a bare header announcing IPv4.
        case(
            "runt",
            udp("10.244.2.9").build()[..14].to_vec(),
            XDP_PASS,
            |c| c.pass_malformed,
        ),
        case(
            "vlan",
            frames::vlan_tagged(&udp("10.244.2.9").build(), 100),
            XDP_PASS,
            |c| c.pass_vlan,
        ),
        case("arp", frames::arp(), XDP_PASS, |c| c.pass_not_ip),
        case("v6 udp", udp6("2001:db8:2::9").build(), XDP_REDIRECT, fwd),
        case(
            "v6 tcp",
            with6(udp6("2001:db8:2::9"), &|p| p.next_header = TCP),
            XDP_REDIRECT,
            fwd,
        ),
        case(
            "v6 icmp",
            with6(udp6("2001:db8:2::9"), &|p| p.next_header = ICMPV6),
            XDP_REDIRECT,
            fwd,
        ),
        case(
            "v6 hop limit 2",
            with6(udp6("2001:db8:2::9"), &|p| p.hop_limit = 2),
            XDP_REDIRECT,
            fwd,
        ),
        case(
            "v6 hop limit 1",
            with6(udp6("2001:db8:2::9"), &|p| p.hop_limit = 1),
            XDP_PASS,
            |c| c.pass_ttl,
        ),
        case(
            "v6 hop limit 0",
            with6(udp6("2001:db8:2::9"), &|p| p.hop_limit = 0),
            XDP_PASS,
            |c| c.pass_ttl,
        ),
        case(
            "v6 hop-by-hop",
            with6(udp6("2001:db8:2::9"), &|p| p.next_header = 0),
            XDP_PASS,
            |c| c.pass_ip_options,
        ),
        case(
            "v6 routing header",
            with6(udp6("2001:db8:2::9"), &|p| p.next_header = 43),
            XDP_PASS,
            |c| c.pass_ip_options,
        ),
        case(
            "v6 fragment",
            with6(udp6("2001:db8:2::9"), &|p| p.next_header = 44),
            XDP_PASS,
            |c| c.pass_fragment,
        ),
        case("v6 local", udp6("2001:db8:1::1").build(), XDP_PASS, |c| {
            c.pass_local
        }),
        case(
            "v6 no route",
            udp6("2001:db8:99::1").build(),
            XDP_PASS,
            |c| c.pass_no_route,
        ),
        case(
            "v6 truncated",
            udp6("2001:db8:2::9").build()[..40].to_vec(),
            XDP_PASS,
            |c| c.pass_malformed,
        ),
    ]
}

#[test]
fn golden_frames() -> anyhow::Result<()> {
    let rig = rig()?;
    let mut failures = Vec::new();
    for c in cases() {
        let before = rig.fib.counters()?;
        let run = rig.dp.run_frame(&c.frame, 1)?;
        let after = rig.fib.counters()?;
        let expect = if c.action == XDP_REDIRECT {
            forwarded(&c.frame)
        } else {
            // Anything not forwarded reaches the kernel (or the drop) exactly as it came.
            c.frame.clone()
        };
        if run.action != c.action {
            failures.push(format!("{}: action {} != {}", c.name, run.action, c.action));
        } else if run.frame != expect {
            failures.push(format!(
                "{}: output\n  {:02x?}\n!= expected\n  {:02x?}",
                c.name, run.frame, expect
            ));
        }
        if (c.counter)(&after) != (c.counter)(&before) + 1 || after.rx != before.rx + 1 {
            failures.push(format!("{}: counters {before:?} -> {after:?}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

#[test]
fn fragments_are_forwarded_when_configured_and_stay_on_one_path() -> anyhow::Result<()> {
    let mut rig = rig()?;
    rig.fib.set_forward_fragments(true)?;
    let mut p = V4::udp(v4("10.244.1.5"), v4("10.244.2.9"), 1, 2);
    for frag in [0x2000u16, 0x2010, 0x0020] {
        p.frag = frag;
        let f = p.build();
        let run = rig.dp.run_frame(&f, 1)?;
        assert_eq!(run.action, XDP_REDIRECT, "fragment {frag:#x}");
        assert_eq!(run.frame, forwarded(&f), "fragment {frag:#x}");
    }
    Ok(())
}

#[test]
fn a_next_hop_rewrite_moves_every_route_through_it() -> anyhow::Result<()> {
    let mut rig = rig()?;
    let key = NextHopKey::Neighbor {
        ifindex: 1,
        addr: IpAddr::from([192, 168, 1, 9]),
    };
    let f = V4::udp(v4("10.244.1.5"), v4("10.244.9.1"), 1, 2).build();
    assert_eq!(rig.dp.run_frame(&f, 1)?.action, XDP_PASS);
    let routes_before = rig.fib.ops().route_writes;
    rig.fib.set_next_hop(
        key,
        NextHop {
            kind: NH_FORWARD,
            ifindex: 1,
            mtu: 1500,
            src_mac: OUR_MAC,
            dst_mac: NH_MAC,
        },
    )?;
    let run = rig.dp.run_frame(&f, 1)?;
    assert_eq!(run.action, XDP_REDIRECT);
    assert_eq!(run.frame, forwarded(&f));
    assert_eq!(
        rig.fib.ops().route_writes,
        routes_before,
        "no route was rewritten"
    );
    Ok(())
}

/// The node's own addresses go to the kernel ahead of any route: a covering default
/// route and a route for the address itself lose to its local entry; removing the entry
/// puts the route back; a re-opened `Fib` (a restarted daemon) adopts the entries as
/// local addresses, not as routes.
#[test]
fn local_addresses_win_over_covering_and_equal_routes() -> anyhow::Result<()> {
    let mut rig = rig()?;
    let nh = NextHopKey::Neighbor {
        ifindex: 1,
        addr: "192.168.1.1".parse()?,
    };
    let nh6 = NextHopKey::Neighbor {
        ifindex: 1,
        addr: "fe80::1".parse()?,
    };
    rig.fib.add_route("0.0.0.0/0".parse()?, &[nh])?;
    rig.fib.add_route("192.0.2.11/32".parse()?, &[nh])?;
    rig.fib.add_route("::/0".parse()?, &[nh6])?;
    let routes = rig.fib.route_count();
    let to = |dst: &str, ttl: u8| {
        let mut p = V4::udp(v4("192.0.2.1"), v4(dst), 179, 40000);
        p.proto = TCP;
        p.ttl = ttl;
        p.build()
    };
    let to6 = |dst: &str| V6::udp(v6("fe80::2"), v6(dst), 3784, 49152).build();
    let verdict = |rig: &Rig, frame: &[u8]| -> anyhow::Result<(u32, u64)> {
        let before = rig.fib.counters()?.pass_local;
        let run = rig.dp.run_frame(frame, 1)?;
        Ok((run.action, rig.fib.counters()?.pass_local - before))
    };
    // Without local entries the node's traffic (GTSM: TTL 255) is forwarded away.
    for f in [
        to("192.0.2.11", 255),
        to("192.0.2.12", 255),
        to("224.0.0.5", 255),
        to("255.255.255.255", 255),
        to6("ff02::1:ff00:11"),
        to6("fd00::11"),
    ] {
        assert_eq!(verdict(&rig, &f)?, (XDP_REDIRECT, 0));
    }
    for p in [
        "192.0.2.11/32",
        "192.0.2.12/32",
        "fd00::11/128",
        "224.0.0.0/4",
        "255.255.255.255/32",
        "fe80::/10",
        "ff00::/8",
    ] {
        assert!(rig.fib.add_local(p.parse()?)?, "{p}");
    }
    assert!(!rig.fib.add_local("192.0.2.12/32".parse()?)?, "added twice");
    for f in [
        to("192.0.2.11", 255),
        to("192.0.2.11", 1),
        to("192.0.2.12", 255),
        to("224.0.0.5", 255),
        to("255.255.255.255", 255),
        to6("ff02::1:ff00:11"),
        to6("fe80::1"),
        to6("fd00::11"),
    ] {
        assert_eq!(verdict(&rig, &f)?, (XDP_PASS, 1), "{f:02x?}");
    }
    // Others still take the default route.
    assert_eq!(verdict(&rig, &to("192.0.2.13", 64))?, (XDP_REDIRECT, 0));
    assert_eq!(
        rig.fib.route_count(),
        routes,
        "local entries counted as routes"
    );
    // The Loc-RIB's route for the same /32 comes and goes under the local entry.
    rig.fib.del_route(&"192.0.2.11/32".parse()?)?;
    assert_eq!(verdict(&rig, &to("192.0.2.11", 255))?, (XDP_PASS, 1));
    rig.fib.add_route("192.0.2.11/32".parse()?, &[nh])?;
    assert_eq!(verdict(&rig, &to("192.0.2.11", 255))?, (XDP_PASS, 1));
    // A restarted daemon adopts them as local addresses.
    let reopened = Fib::open(rig._pins.path())?;
    assert!(reopened.is_local(&"192.0.2.11/32".parse()?));
    assert!(reopened.is_local(&"ff00::/8".parse()?));
    assert_eq!(reopened.local_count(), 7);
    assert_eq!(
        reopened.route_count(),
        routes - 1,
        "the shadowed /32 is not in the maps"
    );
    drop(reopened);
    // Removed: the route under it takes its place, or the covering one.
    assert!(rig.fib.del_local(&"192.0.2.11/32".parse()?)?);
    assert!(rig.fib.del_local(&"192.0.2.12/32".parse()?)?);
    assert!(!rig.fib.del_local(&"192.0.2.12/32".parse()?)?);
    assert_eq!(verdict(&rig, &to("192.0.2.11", 255))?, (XDP_REDIRECT, 0));
    assert_eq!(verdict(&rig, &to("192.0.2.12", 255))?, (XDP_REDIRECT, 0));
    assert_eq!(rig.fib.local_count(), 5);
    Ok(())
}

/// The member a forwarded frame went to, from the destination MAC written into it.
fn member_of(frame: &[u8]) -> u8 {
    frame[5]
}

#[test]
fn ecmp_spreads_flows_evenly_and_removal_moves_only_that_members_flows() -> anyhow::Result<()> {
    let mut rig = rig()?;
    let members: Vec<NextHopKey> = (1..=8u8)
        .map(|i| NextHopKey::Neighbor {
            ifindex: 1,
            addr: IpAddr::from([192, 168, 2, i]),
        })
        .collect();
    for (i, &key) in members.iter().enumerate() {
        rig.fib.set_next_hop(
            key,
            NextHop {
                kind: NH_FORWARD,
                ifindex: 1,
                mtu: 0,
                src_mac: OUR_MAC,
                dst_mac: [0x02, 0xcc, 0, 0, 0, i as u8 + 1],
            },
        )?;
    }
    rig.fib.add_route("10.245.0.0/16".parse()?, &members)?;

    const FLOWS: u32 = 100_000;
    let flow = |i: u32| {
        V4::udp(
            Ipv4Addr::from(0x0af4_0000 + (i % 4096)),
            v4("10.245.7.7"),
            1024 + (i / 4096) as u16,
            80,
        )
        .build()
    };
    let place = |rig: &Rig| -> anyhow::Result<Vec<u8>> {
        (0..FLOWS)
            .map(|i| {
                let run = rig.dp.run_frame(&flow(i), 1)?;
                anyhow::ensure!(run.action == XDP_REDIRECT, "flow {i} not forwarded");
                Ok(member_of(&run.frame))
            })
            .collect()
    };
    let before = place(&rig)?;
    let even = FLOWS / 8;
    for m in 1..=8u8 {
        let n = before.iter().filter(|&&x| x == m).count() as u32;
        assert!(
            n.abs_diff(even) <= even / 20,
            "member {m}: {n} flows, an even share is {even} (±5%)"
        );
    }

    let groups_before = rig.fib.ops();
    assert_eq!(
        rig.fib.remove_next_hop(&members[3])?,
        1,
        "one group holds it"
    );
    let after = place(&rig)?;
    let ops = rig.fib.ops();
    assert_eq!(
        ops.route_writes, groups_before.route_writes,
        "no route rewritten"
    );
    for (i, (&b, &a)) in before.iter().zip(&after).enumerate() {
        if b == 4 {
            assert_ne!(a, 4, "flow {i} still on the removed member");
        } else {
            assert_eq!(a, b, "flow {i} moved from surviving member {b} to {a}");
        }
    }
    Ok(())
}

mod checksum_property {
    use proptest::prelude::*;

    use super::*;

    fn arb_v4() -> impl Strategy<Value = V4> {
        (
            any::<[u8; 2]>(),
            any::<u8>(),
            prop::sample::select(vec![TCP, lab::frames::UDP, ICMP, 47, 132]),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            0usize..1400,
            prop::sample::select(vec![0u16, 0x4000, 0x2000, 0x0005, 0x4000]),
            prop::sample::select(vec![0usize, 0, 0, 4, 40]),
            (any::<u16>(), any::<u8>()),
        )
            .prop_map(
                |(s, last, proto, ttl, sport, dport, payload, frag, options, (id, tos))| V4 {
                    src: Ipv4Addr::new(10, 244, s[0], s[1]),
                    dst: Ipv4Addr::new(10, 244, 2, last),
                    proto,
                    ttl,
                    sport,
                    dport,
                    payload,
                    frag,
                    options,
                    id,
                    tos,
                },
            )
    }

    #[test]
    fn every_forwarded_ipv4_frame_has_a_valid_checksum_and_ttl_one_lower() {
        let rig = rig().expect("rig");
        let forwarded = std::cell::Cell::new(0u32);
        proptest!(ProptestConfig::with_cases(2000), |(p in arb_v4())| {
            let f = p.build();
            let run = rig.dp.run_frame(&f, 1).expect("test run");
            if run.action == XDP_REDIRECT {
                forwarded.set(forwarded.get() + 1);
                let ihl = (run.frame[14] & 0x0f) as usize * 4;
                prop_assert_eq!(frames::checksum(&run.frame[14..14 + ihl]), 0, "checksum");
                prop_assert_eq!(run.frame[22], f[22] - 1, "ttl");
                prop_assert_eq!(&run.frame[34..], &f[34..], "payload untouched");
            } else {
                prop_assert_eq!(run.frame, f, "not forwarded, so unchanged");
            }
        });
        // The generator must actually exercise the forwarding path.
        let forwarded = forwarded.get();
        assert!(forwarded > 500, "only {forwarded} of 2000 frames forwarded");
    }
}

#[test]
fn grace_periods_started_in_the_background_take_the_wait_off_rewrites() -> anyhow::Result<()> {
    let mut rig = rig()?;
    let key = NextHopKey::Local;
    let set = |fib: &mut Fib, mtu| {
        fib.set_next_hop(
            key,
            NextHop {
                kind: xdp_fwd_common::NH_LOCAL,
                mtu,
                ..Default::default()
            },
        )
    };
    // Inline: the third write reuses the slot the second retired, and waits.
    set(&mut rig.fib, 1)?;
    set(&mut rig.fib, 2)?;
    assert!(rig.fib.grace_pending());
    let before = rig.fib.ops();
    set(&mut rig.fib, 3)?;
    assert_eq!(rig.fib.ops().barriers, before.barriers + 1);
    assert_eq!(rig.fib.ops().background_barriers, 0);
    // In the background: each retirement starts a grace period on the barrier thread;
    // once it is over, a rewrite finds its slot free and does not wait.
    rig.fib.background_barriers()?;
    for mtu in 4..10 {
        lab::wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
            Ok(!rig.fib.grace_pending())
        })?;
        let before = rig.fib.ops();
        set(&mut rig.fib, mtu)?;
        let after = rig.fib.ops();
        assert_eq!(after.barriers, before.barriers, "write {mtu} waited");
        assert_eq!(after.background_barriers, before.background_barriers + 1);
        assert_eq!(rig.fib.next_hop(&key).map(|n| n.mtu), Some(mtu));
    }
    // Idle with nothing retired since: no grace period to start.
    lab::wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
        Ok(!rig.fib.grace_pending())
    })?;
    assert!(!rig.fib.quiesce()?);
    Ok(())
}

#[test]
fn bpftool_shows_named_fields_for_every_map() -> anyhow::Result<()> {
    let mut rig = rig()?;
    // Rewrite one next hop three times: the third write reuses a retired slot, which
    // waits for an RCU grace period through `rcu_barrier` (so that map has an entry).
    let key = NextHopKey::Local;
    for mtu in [1, 2, 3] {
        rig.fib.set_next_hop(
            key,
            NextHop {
                kind: xdp_fwd_common::NH_LOCAL,
                mtu,
                ..Default::default()
            },
        )?;
    }
    assert!(rig.fib.ops().barriers >= 1, "a grace period was waited for");
    let expect: &[(&str, &[&str])] = &[
        ("routes_v4", &["\"prefix_len\"", "\"addr\"", "\"group\""]),
        ("routes_v6", &["\"prefix_len\"", "\"addr\"", "\"group\""]),
        ("hosts_v4", &["\"addr\"", "\"group\"", "\"flags\""]),
        ("hosts_v6", &["\"addr\"", "\"group\""]),
        ("group_refs", &["\"slot\""]),
        ("groups", &["\"n_members\"", "\"members\"", "\"buckets\""]),
        ("next_hop_refs", &["\"slot\""]),
        (
            "next_hops",
            &[
                "\"kind\"",
                "\"ifindex\"",
                "\"mtu\"",
                "\"src_mac\"",
                "\"dst_mac\"",
            ],
        ),
        ("next_hop_keys", &["\"kind\"", "\"ifindex\"", "\"addr\""]),
        (
            "counters",
            &[
                "\"rx\"",
                "\"forwarded\"",
                "\"pass_no_route\"",
                "\"drop_blackhole\"",
            ],
        ),
        ("config", &["\"layout_version\"", "\"hash_seed\""]),
    ];
    // Every map but the two whose values are kernel objects: the kernel refuses BTF on
    // device maps and maps of maps (their ops set `map_check_btf = map_check_no_btf`),
    // so they dump as hex whatever we declare. The egress ifindex also shows by name in
    // `next_hops`; `rcu_barrier` holds nothing but a placeholder.
    assert_eq!(
        expect.len() + 2,
        xdp_fwd_common::map_name::ALL.len(),
        "every map is checked"
    );
    for (map, kind) in [
        ("egress_ifs", "devmap_hash"),
        ("rcu_barrier", "array_of_maps"),
    ] {
        let pin = rig._pins.path().join(map);
        let show = lab::run("bpftool", &["map", "show", "pinned", pin.to_str().unwrap()])?;
        assert!(
            show.contains(kind) && !show.contains("btf_id"),
            "{map}: {show}"
        );
    }
    let egress = rig._pins.path().join("egress_ifs");
    let dump = lab::run(
        "bpftool",
        &["-j", "map", "dump", "pinned", egress.to_str().unwrap()],
    )?;
    assert!(
        dump.contains(r#""value":["0x01","0x00","0x00","0x00""#),
        "egress_ifs holds ifindex 1 (lo): {dump}"
    );
    for (map, fields) in expect {
        let pin = rig._pins.path().join(map);
        let dump = lab::run(
            "bpftool",
            &["-j", "map", "dump", "pinned", pin.to_str().unwrap()],
        )?;
        for f in *fields {
            assert!(
                dump.contains(f),
                "{map}: no {f} in {}",
                &dump[..dump.len().min(400)]
            );
        }
    }
    Ok(())
}

#[test]
fn maps_of_another_layout_version_are_refused() -> anyhow::Result<()> {
    use aya::maps::{Array, Map, MapData};
    let rig = rig()?;
    let pins = rig._pins.path().to_path_buf();
    let mut config: Array<MapData, xdp_fwd_common::Config> =
        Array::try_from(Map::Array(MapData::from_pin(pins.join("config"))?))?;
    let mut c = config.get(&0, 0)?;
    assert_eq!(c.layout_version, xdp_fwd_common::LAYOUT_VERSION);
    c.layout_version += 1;
    config.set(0, c, 0)?;
    let err = Dataplane::open(&pins)
        .err()
        .expect("a newer layout is refused");
    let msg = err.to_string();
    assert!(msg.contains("layout version"), "{msg}");
    Ok(())
}
