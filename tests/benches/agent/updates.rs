//! Bars 1 and 2: one UPDATE's way into the XDP map with a table installed, and the
//! time for a peer going down to leave the dataplane.

use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use lab::Netns;

use crate::{
    load::{addrs, agent, connect, encode_from, feeder_ns, prefixes},
    maps::PinnedMaps,
};

/// Peer-down measurements (each with the table loaded again from the peer first).
const PEER_DOWN_RUNS: usize = 5;

/// What the latency runs measured.
pub struct Latency {
    /// Median UPDATE -> map, ms.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest sample.
    pub max_ms: f64,
    /// TCP close of one of two ECMP peers -> its next hop out of the routes' group, ms
    /// (median of the runs).
    pub peer_down_ms: f64,
}

/// Polls `done` with a short pause (~20 us) until it holds; returns when it did.
fn spin_until(timeout: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<Instant> {
    let start = Instant::now();
    loop {
        if done()? {
            return Ok(Instant::now());
        }
        if start.elapsed() > timeout {
            bail!("not done after {timeout:?}");
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn v4(p: &IpNet) -> Result<Ipv4Addr> {
    match p {
        IpNet::V4(n) => Ok(n.addr()),
        IpNet::V6(_) => bail!("not IPv4: {p}"),
    }
}

/// `base` routes from two feeders (ECMP), `samples` timed UPDATEs, then one feeder down.
pub fn run(base: u32, samples: usize) -> Result<Latency> {
    let node = Netns::new()?;
    let (ns_a, ns_b) = (feeder_ns(&node, 0)?, feeder_ns(&node, 1)?);
    let agent = agent(&node, 2)?;
    let maps = PinnedMaps::open(agent.pins.path())?;
    let table = prefixes(Ipv4Addr::new(100, 64, 0, 0), base);
    let last = v4(table.last().context("no routes")?)?;
    let a = connect(&ns_a, 0)?;
    let b = connect(&ns_b, 1)?;
    let (a_addr, b_addr) = (addrs(0).1, addrs(1).1);

    // The table, from both: every route ECMP over A and B.
    let started = Instant::now();
    a.send(&encode_from(0, &table)?)?;
    b.send(&encode_from(1, &table)?)?;
    let both: BTreeSet<Ipv4Addr> = [a_addr, b_addr].into();
    let loaded = |m: &PinnedMaps| -> Result<bool> {
        Ok(m.neighbors(last)?
            .is_some_and(|n| n.into_iter().collect::<BTreeSet<_>>() == both))
    };
    spin_until(Duration::from_secs(300), || {
        a.check()?;
        b.check()?;
        loaded(&maps)
    })
    .with_context(|| format!("the table never reached the maps:\n{}", agent.log()))?;
    let n = maps.host_count()?;
    if n != base as usize {
        bail!("{n} routes in the host table, {base} sent");
    }
    println!(
        "latency set-up: {base} routes ECMP over two peers in the maps after {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // Bar 1: one new route at a time from A.
    let mut ms = Vec::with_capacity(samples);
    for i in 0..samples {
        let p = IpNet::V4(ipnet::Ipv4Net::from(Ipv4Addr::from(
            u32::from(Ipv4Addr::new(10, 200, 0, 0)) + i as u32,
        )));
        let addr = v4(&p)?;
        let bytes = encode_from(0, &[p])?;
        let t0 = Instant::now();
        a.send(&bytes)?;
        let t1 = spin_until(Duration::from_secs(10), || Ok(maps.host(addr)?.is_some()))
            .with_context(|| format!("{p} never reached the map"))?;
        ms.push((t1 - t0).as_secs_f64() * 1e3);
        // Independent samples: let the daemon go idle between them.
        std::thread::sleep(Duration::from_millis(5));
    }
    ms.sort_by(f64::total_cmp);
    let (p50, p99, max) = (
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or_default(),
    );
    println!("UPDATE -> map: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");

    // Bar 2: A's session goes down; its next hop must leave the shared group. Repeated,
    // with A back and the table ECMP again before each run; the median is reported.
    let mut a = Some(a);
    let mut downs = Vec::with_capacity(PEER_DOWN_RUNS);
    for run in 0..PEER_DOWN_RUNS {
        let peer = match a.take() {
            Some(p) => p,
            None => {
                let p = connect(&ns_a, 0)?;
                p.send(&encode_from(0, &table)?)?;
                p
            }
        };
        spin_until(Duration::from_secs(300), || {
            peer.check()?;
            loaded(&maps)
        })
        .with_context(|| format!("run {run}: the table is not ECMP over both peers"))?;
        let closed = peer.close()?;
        let out = spin_until(Duration::from_secs(30), || {
            Ok(maps
                .neighbors(last)?
                .is_some_and(|n| !n.contains(&a_addr) && n.contains(&b_addr)))
        })
        .context("A's next hop stayed in the group")?;
        downs.push((out - closed).as_secs_f64() * 1e3);
    }
    let each: Vec<String> = downs.iter().map(|d| format!("{d:.2}")).collect();
    downs.sort_by(f64::total_cmp);
    let peer_down = percentile(&downs, 0.5);
    println!(
        "peer down -> out of the group: median {peer_down:.2} ms (runs: {} ms)",
        each.join(", ")
    );
    b.check()?;
    Ok(Latency {
        p50_ms: p50,
        p99_ms: p99,
        max_ms: max,
        peer_down_ms: peer_down,
    })
}
