//! The chain end to end: the XDP program embedded in bgp-ctl loads, attaches to a veth in
//! a namespace in skb and driver mode through a pinned link, sees traffic, one of its
//! maps is written from userspace and read back, and `bpftool` shows BTF field names.

use aya::maps::{Array, Map, MapData};
use bgp_ctl::fib::{AttachMode, Dataplane};
use lab::{Netns, PinDir};
use xdp_fwd_common::{NH_FORWARD, NextHop, map_name};

/// The `mode` field of `ip -j -d link show` for an XDP attachment (XDP_ATTACHED_*).
fn attached_mode(ns: &Netns, dev: &str) -> anyhow::Result<Option<u64>> {
    let json = ns.ip(&["-j", "-d", "link", "show", "dev", dev])?;
    let Some(at) = json.find("\"xdp\":") else {
        return Ok(None);
    };
    let rest = &json[at..];
    let mode = rest
        .split("\"mode\":")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok());
    Ok(mode)
}

fn attach_and_inspect(mode: AttachMode, expect_attached: u64) -> anyhow::Result<()> {
    lab::require_root()?;
    lab::sweep_stale();
    let ns = Netns::new()?;
    let peer = Netns::new()?;
    lab::veth(&ns, "up0", &peer, "up1")?;
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "up0"])?;
    peer.ip(&["addr", "add", "192.0.2.2/24", "dev", "up1"])?;
    let pins = PinDir::new()?;

    // Attach from inside the namespace, then let the process's handle go: the pinned
    // link must keep the program attached.
    ns.enter(|| -> anyhow::Result<()> {
        let mut dp = Dataplane::open(pins.path())?;
        dp.attach("up0", mode)?;
        Ok(())
    })??;
    assert_eq!(
        attached_mode(&ns, "up0")?,
        Some(expect_attached),
        "program attached in {mode} mode"
    );

    // Traffic into up0 runs the program.
    peer.exec("ping", &["-c", "3", "-i", "0.2", "-W", "2", "192.0.2.1"])?;
    let counters = bgp_ctl::fib::FibMaps::open(pins.path())?.counters()?;
    assert!(
        counters.rx >= 3,
        "program saw {} frames, expected >= 3",
        counters.rx
    );

    // Write a next hop through one handle of the pinned map, read it through another.
    let nh = NextHop {
        kind: NH_FORWARD,
        ifindex: 7,
        mtu: 1500,
        src_mac: [0x02, 0, 0, 0, 0, 1],
        dst_mac: [0x02, 0, 0, 0, 0, 2],
    };
    let pin = pins.path().join(map_name::NEXT_HOPS);
    let open = || -> anyhow::Result<Array<MapData, NextHop>> {
        Ok(Array::try_from(Map::Array(MapData::from_pin(&pin)?))?)
    };
    open()?.set(5, nh, 0)?;
    assert_eq!(open()?.get(&5, 0)?, nh);

    // BTF: bpftool names the value's fields.
    let dump = lab::run("bpftool", &["map", "dump", "pinned", pin.to_str().unwrap()])?;
    for field in [
        "\"kind\": 1",
        "\"ifindex\": 7",
        "\"mtu\": 1500",
        "\"src_mac\"",
        "\"dst_mac\"",
    ] {
        assert!(
            dump.contains(field),
            "bpftool dump lacks {field}:\n{}",
            &dump[..dump.len().min(600)]
        );
    }

    // Detaching removes the link pin and with it the attachment.
    assert!(Dataplane::detach(pins.path(), "up0")?);
    assert_eq!(attached_mode(&ns, "up0")?, None, "program detached");
    Ok(())
}

#[test]
fn attach_skb_mode() -> anyhow::Result<()> {
    attach_and_inspect(AttachMode::Skb, 2)
}

#[test]
fn attach_driver_mode() -> anyhow::Result<()> {
    attach_and_inspect(AttachMode::Driver, 1)
}

#[test]
fn the_embedded_object_carries_btf_for_the_shared_types() -> anyhow::Result<()> {
    let path = std::env::temp_dir().join(format!("{}.o", lab::unique_name()));
    std::fs::write(&path, bgp_ctl::fib::object())?;
    let dump = lab::run("bpftool", &["btf", "dump", "file", path.to_str().unwrap()]);
    std::fs::remove_file(&path)?;
    let dump = dump?;
    for ty in [
        "STRUCT 'Route'",
        "STRUCT 'NextHop'",
        "STRUCT 'NextHopGroup'",
        "STRUCT 'NextHopKeyEntry'",
        "STRUCT 'GroupSlotRef'",
        "STRUCT 'NextHopSlotRef'",
        "STRUCT 'Counters'",
        "STRUCT 'Config'",
        "STRUCT 'Ipv4Key'",
        "STRUCT 'Ipv6Key'",
    ] {
        assert!(dump.contains(ty), "BTF lacks {ty}");
    }
    Ok(())
}
