//! Decoding and encoding speed on the paths a full table takes: UPDATEs full of /32s
//! (what a BGP speaker sends for host routes) in, and a million prefixes out.
//!
//! `cargo bench -p bgp-wire --bench decode`. Criterion prints the time per UPDATE; the
//! "per prefix" groups count one element per prefix, so their throughput line reads
//! prefixes per second (1e9 / that = ns per prefix).

use std::{hint::black_box, net::Ipv4Addr};

use bgp_wire::{
    AsPath, CodecContext, Community, Family, LargeCommunity, Message, MpNextHop, PathAttributes,
    encode_updates, frame_length,
};
use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

const PREFIXES: usize = 500;

fn attrs() -> PathAttributes {
    PathAttributes {
        as_path: AsPath::from_sequence([4200000001, 65010, 65020]),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        med: Some(10),
        communities: vec![Community::new(65000, 1), Community::new(65000, 2)],
        large_communities: vec![LargeCommunity {
            global: 4200000001,
            local1: 1,
            local2: 2,
        }],
        ..PathAttributes::default()
    }
}

fn v4(n: usize) -> Vec<IpNet> {
    (0..n as u32)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0A00_0000 + i), 32).expect("/32")))
        .collect()
}

/// One UPDATE with `PREFIXES` /32s (and one with IPv6 /128s in MP_REACH_NLRI).
fn frames(ctx: &CodecContext) -> (Vec<u8>, Vec<u8>) {
    let mut out = BytesMut::new();
    let n = encode_updates(
        &attrs(),
        Family::IPV4_UNICAST,
        None,
        &v4(PREFIXES),
        ctx,
        &mut out,
    )
    .expect("encodes");
    assert_eq!(n, 1);
    let v4 = out.to_vec();
    let nets: Vec<IpNet> = (0..200u128)
        .map(|i| IpNet::V6(Ipv6Net::new((0x2001_0db8_u128 << 96 | i).into(), 128).expect("/128")))
        .collect();
    let nh = MpNextHop::Ipv6 {
        global: "2001:db8::1".parse().expect("address"),
        link_local: Some("fe80::1".parse().expect("address")),
    };
    let mut out = BytesMut::new();
    encode_updates(
        &attrs(),
        Family::IPV6_UNICAST,
        Some(nh),
        &nets,
        ctx,
        &mut out,
    )
    .expect("encodes");
    (v4, out.to_vec())
}

fn decode(c: &mut Criterion) {
    for (name, ctx) in [
        ("4-octet AS", CodecContext::new(true, false, true)),
        (
            "2-octet AS (AS4_PATH)",
            CodecContext::new(false, false, true),
        ),
    ] {
        let (v4, v6) = frames(&ctx);
        let mut g = c.benchmark_group(format!("decode UPDATE, {PREFIXES} /32, {name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("per UPDATE", |b| {
            b.iter(|| Message::decode(black_box(&v4), &ctx).expect("decodes"))
        });
        g.throughput(Throughput::Elements(PREFIXES as u64));
        g.bench_function("per prefix", |b| {
            b.iter(|| Message::decode(black_box(&v4), &ctx).expect("decodes"))
        });
        g.finish();
        let mut g = c.benchmark_group(format!("decode UPDATE, 200 /128 in MP_REACH_NLRI, {name}"));
        g.throughput(Throughput::Elements(200));
        g.bench_function("per prefix", |b| {
            b.iter(|| Message::decode(black_box(&v6), &ctx).expect("decodes"))
        });
        g.finish();
    }
    let (v4, _) = frames(&CodecContext::default());
    c.bench_function("frame_length", |b| {
        b.iter(|| frame_length(black_box(&v4), &CodecContext::default()))
    });
}

fn encode(c: &mut Criterion) {
    let nets = v4(1_000_000);
    let ctx = CodecContext::new(true, false, true);
    let mut g = c.benchmark_group("encode_updates, 1M /32");
    g.sample_size(10);
    g.throughput(Throughput::Elements(nets.len() as u64));
    let mut out = BytesMut::with_capacity(8 << 20);
    g.bench_function("per prefix", |b| {
        b.iter(|| {
            out.clear();
            encode_updates(
                &attrs(),
                Family::IPV4_UNICAST,
                None,
                black_box(&nets),
                &ctx,
                &mut out,
            )
            .expect("encodes")
        })
    });
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
