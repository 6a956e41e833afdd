//! The load: N /32 routes from one scripted peer into our agent's XDP maps, and into
//! BIRD 2's kernel FIB; shared set-up of the namespaces and peers.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use ipnet::{IpNet, Ipv4Net};
use lab::{
    Netns,
    agent::Agent,
    bird::Bird,
    peer::rss_bytes,
    scripted_peer::{self, ScriptedPeer, SessionSpec},
};

use crate::maps::PinnedMaps;

/// Our AS on the node (agent or BIRD).
pub const NODE_AS: u32 = 65_000;
/// The scripted peers' ASes: feeder `i` has `FEEDER_AS + i`.
pub const FEEDER_AS: u32 = 4_200_000_100;

/// The node's and feeder `i`'s addresses on link `i` (10.255.i.0/24).
pub fn addrs(i: u8) -> (Ipv4Addr, Ipv4Addr) {
    (Ipv4Addr::new(10, 255, i, 2), Ipv4Addr::new(10, 255, i, 1))
}

/// A feeder namespace linked to the node by `n<i>` <-> `f0`.
pub fn feeder_ns(node: &Netns, i: u8) -> Result<Netns> {
    let ns = Netns::new()?;
    let (node_addr, feeder) = addrs(i);
    let dev = format!("n{i}");
    lab::veth(node, &dev, &ns, "f0")?;
    node.ip(&["addr", "add", &format!("{node_addr}/24"), "dev", &dev])?;
    ns.ip(&["addr", "add", &format!("{feeder}/24"), "dev", "f0"])?;
    Ok(ns)
}

/// Connects feeder `i` from its namespace to the node.
pub fn connect(ns: &Netns, i: u8) -> Result<ScriptedPeer> {
    let (node, feeder) = addrs(i);
    ScriptedPeer::connect(
        ns,
        SocketAddr::new(IpAddr::V4(node), 179),
        &SessionSpec {
            asn: FEEDER_AS + u32::from(i),
            router_id: feeder,
            peer_asn: NODE_AS,
            hold_time: 90,
            capabilities: Vec::new(),
        },
        Duration::from_secs(30),
    )
}

/// `count` consecutive /32s from `first`.
pub fn prefixes(first: Ipv4Addr, count: u32) -> Vec<IpNet> {
    (0..count)
        .map(|i| IpNet::V4(Ipv4Net::from(Ipv4Addr::from(u32::from(first) + i))))
        .collect()
}

/// UPDATEs from feeder `i` announcing `prefixes` with a one-AS path (its own).
pub fn encode_from(i: u8, prefixes: &[IpNet]) -> Result<Vec<u8>> {
    let (_, feeder) = addrs(i);
    scripted_peer::encode_announce(
        &scripted_peer::attributes(FEEDER_AS + u32::from(i), &[]),
        IpAddr::V4(feeder),
        prefixes,
    )
}

/// Our agent on `node` with feeders `0..feeders` as passive peers (ECMP across them).
pub fn agent(node: &Netns, feeders: u8) -> Result<Agent> {
    let (router_id, _) = addrs(0);
    let uplinks: Vec<String> = (0..feeders).map(|i| format!("\"n{i}\"")).collect();
    let mut config = format!(
        r#"
router-id = "{router_id}"
asn = {NODE_AS}
[dataplane]
uplinks = [{}]
mode = "skb"
pin-dir = "@PINS@"
[api]
socket = "@SOCKET@"
[http]
listen = "127.0.0.1:0"
[multipath]
relax-as-path = true
"#,
        uplinks.join(", ")
    );
    for i in 0..feeders {
        let (_, feeder) = addrs(i);
        config.push_str(&format!(
            r#"
[[peer]]
name = "feeder{i}"
address = "{feeder}"
remote-asn = {}
passive = true
import = "accept-all"
export = "reject-all"
"#,
            FEEDER_AS + u32::from(i)
        ));
    }
    Agent::start(node, &config)
}

/// What a load measured.
pub struct Load {
    /// Routes in the FIB at the end.
    pub routes: usize,
    /// Established -> all routes in the FIB.
    pub seconds: f64,
    /// VmRSS 1 s after, MB.
    pub rss_mb: u64,
    /// VmHWM then, MB.
    pub peak_rss_mb: u64,
}

fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} for pid {pid}"))
}

fn memory(pid: u32) -> Result<(u64, u64)> {
    std::thread::sleep(Duration::from_secs(1));
    let rss = rss_bytes(pid)? / 1_000_000;
    let peak = status_kb(pid, "VmHWM:")? * 1024 / 1_000_000;
    Ok((rss, peak))
}

/// Sends `feed` on `peer` from a thread while `done` is polled; returns the time from
/// Established until `done` said yes. The pause between polls is `every`, or three times
/// what the last poll took if more, so that polling never takes more than a quarter of
/// a CPU from what it measures.
fn feed_and_wait(
    peer: &ScriptedPeer,
    feed: &[u8],
    every: Duration,
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<Duration> {
    std::thread::scope(|s| {
        let sender = s.spawn(|| peer.send(feed));
        let established = peer.established_at();
        let start = Instant::now();
        let (mut polls, mut polling) = (0u32, Duration::ZERO);
        let took = loop {
            let t = Instant::now();
            let finished = done()?;
            let cost = t.elapsed();
            polls += 1;
            polling += cost;
            if finished {
                break established.elapsed();
            }
            if start.elapsed() > timeout {
                bail!("not loaded after {timeout:?}");
            }
            peer.check()?;
            std::thread::sleep(every.max(cost * 3));
        };
        println!(
            "  ({polls} polls, {:.0} ms spent polling, {:.1} ms per poll on average)",
            polling.as_secs_f64() * 1e3,
            polling.as_secs_f64() * 1e3 / f64::from(polls.max(1))
        );
        sender
            .join()
            .map_err(|_| anyhow::anyhow!("sender thread panicked"))??;
        Ok(took)
    })
}

/// Our agent: the feed from Established until the last route is in the host table.
pub fn ours(routes: u32) -> Result<Load> {
    let node = Netns::new()?;
    let feeder = feeder_ns(&node, 0)?;
    let agent = agent(&node, 1)?;
    let maps = PinnedMaps::open(agent.pins.path())?;
    let list = prefixes(Ipv4Addr::new(100, 64, 0, 0), routes);
    let feed = encode_from(0, &list)?;
    let last = match list.last() {
        Some(IpNet::V4(n)) => n.addr(),
        _ => bail!("no routes"),
    };
    let pid = agent.pid().context("agent pid")?;
    println!("ours: idle RSS {} MB", rss_bytes(pid)? / 1_000_000);
    let peer = connect(&feeder, 0)?;
    let took = feed_and_wait(
        &peer,
        &feed,
        Duration::from_millis(10),
        Duration::from_secs(600),
        || Ok(maps.host(last)?.is_some()),
    )
    .with_context(|| format!("ours: {}", agent.log()))?;
    let (rss_mb, peak_rss_mb) = memory(pid)?;
    let count = maps.host_count()?;
    if count != routes as usize {
        bail!("the host table holds {count} routes, {routes} were sent");
    }
    println!(
        "ours: {routes} routes in the XDP maps {:.2} s after Established; RSS {rss_mb} MB",
        took.as_secs_f64()
    );
    peer.close()?;
    Ok(Load {
        routes: count,
        seconds: took.as_secs_f64(),
        rss_mb,
        peak_rss_mb,
    })
}

/// Prefixes in the main table of the calling thread's namespace.
fn kernel_prefixes() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/net/fib_triestat")?;
    let main = text
        .split("Main:")
        .nth(1)
        .context("no Main table in fib_triestat")?;
    main.lines()
        .find_map(|l| l.trim().strip_prefix("Prefixes:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no Prefixes count in fib_triestat")
}

/// BIRD 2: the feed from Established until the kernel's main table holds it.
pub fn bird(routes: u32) -> Result<Load> {
    let node = Netns::new()?;
    let feeder = feeder_ns(&node, 0)?;
    let (node_addr, feeder_addr) = addrs(0);
    let bird = Bird::start(
        &node,
        &format!(
            r#"
router id {node_addr};
protocol device {{}}
protocol kernel k4 {{ ipv4 {{ import none; export all; }}; }}
protocol bgp feeder {{
  local {node_addr} as {NODE_AS};
  neighbor {feeder_addr} as {FEEDER_AS};
  passive on;
  ipv4 {{ import all; export none; }};
}}
"#
        ),
    )?;
    let base = node.enter(kernel_prefixes)??;
    let list = prefixes(Ipv4Addr::new(100, 64, 0, 0), routes);
    let feed = encode_from(0, &list)?;
    let peer = connect(&feeder, 0)?;
    let want = base + u64::from(routes);
    let mut seen = base;
    let took = feed_and_wait(
        &peer,
        &feed,
        Duration::from_millis(100),
        Duration::from_secs(600),
        || {
            seen = node.enter(kernel_prefixes)??;
            Ok(seen >= want)
        },
    )
    .with_context(|| format!("BIRD: {seen} of {want} prefixes in the kernel"))?;
    let pid = bird.pid().context("BIRD pid")?;
    let (rss_mb, peak_rss_mb) = memory(pid)?;
    println!(
        "BIRD 2: {routes} routes in the kernel FIB {:.2} s after Established; RSS {rss_mb} MB",
        took.as_secs_f64()
    );
    peer.close()?;
    Ok(Load {
        routes: (seen - base) as usize,
        seconds: took.as_secs_f64(),
        rss_mb,
        peak_rss_mb,
    })
}
