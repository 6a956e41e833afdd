//! The packet generator's frames, one at a time through `BPF_PROG_TEST_RUN`: each flow
//! and destination in turn, headers restored, IPv4 checksum valid; and the sink counts
//! and drops.

use std::net::Ipv4Addr;

use bench::pktgen::Pktgen;
use lab::frames::{V4, checksum};
use xdp_pktgen_common::{FRAME_LEN, GenConfig, name};

const XDP_DROP: u32 = 1;
const XDP_REDIRECT: u32 = 4;

fn config(flows: u32, dst_count: u32, stride: u32) -> GenConfig {
    let base = Ipv4Addr::new(100, 64, 0, 0);
    let frame = V4::udp(Ipv4Addr::new(10, 244, 8, 1), base, 1024, 9).build();
    let mut template = [0u8; FRAME_LEN];
    template.copy_from_slice(&frame);
    GenConfig {
        // Any existing interface: a test run only queues the redirect.
        ifindex: 1,
        flows,
        sport_base: 1024,
        dst_count,
        dst_stride: stride,
        dst_base: u32::from(base),
        template,
    }
}

#[test]
fn frames_walk_the_flows_and_destinations_with_valid_checksums() -> anyhow::Result<()> {
    lab::require_root()?;
    let mut gen_ = Pktgen::load()?;
    let cfg = config(3, 1000, 7919);
    gen_.configure(&cfg)?;
    for n in 0..10u32 {
        let (action, frame) = gen_.run_once(name::PKTGEN)?;
        assert_eq!(action, XDP_REDIRECT, "frame {n}");
        assert_eq!(frame.len(), FRAME_LEN);
        let dst = Ipv4Addr::from(cfg.dst_base + (n * 7919) % 1000);
        let sport = 1024 + (n % 3) as u16;
        assert_eq!(checksum(&frame[14..34]), 0, "frame {n} IPv4 checksum");
        // The template with this frame's destination, source port and checksum.
        let mut expected = cfg.template.to_vec();
        expected[30..34].copy_from_slice(&dst.octets());
        expected[34..36].copy_from_slice(&sport.to_be_bytes());
        expected[24..26].copy_from_slice(&frame[24..26]);
        assert_eq!(frame, expected, "frame {n}");
    }
    Ok(())
}

#[test]
fn one_destination_keeps_the_template_address() -> anyhow::Result<()> {
    lab::require_root()?;
    let mut gen_ = Pktgen::load()?;
    let cfg = config(1, 1, 1);
    gen_.configure(&cfg)?;
    for _ in 0..3 {
        let (action, frame) = gen_.run_once(name::PKTGEN)?;
        assert_eq!(action, XDP_REDIRECT);
        assert_eq!(frame[..], cfg.template[..]);
    }
    Ok(())
}

#[test]
fn the_sink_counts_and_drops() -> anyhow::Result<()> {
    lab::require_root()?;
    let mut gen_ = Pktgen::load()?;
    gen_.configure(&config(1, 1, 1))?;
    let before = gen_.sink_count()?;
    for _ in 0..5 {
        assert_eq!(gen_.run_once(name::SINK)?.0, XDP_DROP);
    }
    assert_eq!(gen_.sink_count()? - before, 5);
    Ok(())
}
