//! The node agent end to end, in namespaces: pod-route origination reaching a real FRR
//! peer, the FIB programmer keeping the XDP maps equal to the Loc-RIB through churn,
//! a peer going down without per-route map writes, and the control socket refusing
//! users other than root.
//!
//! node (bgp-ctl) --n0-- leaf1 (FRR, or a scripted peer A)
//!                --n1-- leaf2 (a scripted peer B)

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::unix::fs::PermissionsExt,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use lab::{
    Netns,
    agent::Agent,
    configs::{self, LEAF1_AS, LEAF1_PEER, LEAF2_AS, NODE_AS},
    frr::{Frr, FrrOptions},
    peer::Family,
    scripted_peer::{self, ScriptedPeer, SessionSpec},
    wait_until,
};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

fn prerequisites() -> Result<()> {
    lab::require_root()?;
    lab::require_bpffs()?;
    lab::sweep_stale();
    Ok(())
}

/// The node and one leaf: node n0 192.0.2.11/fd00::11, leaf l0 192.0.2.1/fd00::1.
fn node_and_leaf() -> Result<(Netns, Netns)> {
    lab::node_and_leaf()
}

/// FRR as leaf1 (AS 65001, 192.0.2.1, without zebra) peering with the node at
/// 192.0.2.11; `rest` goes on inside `router bgp` (more neighbors, address families)
/// and may define route maps after it.
fn leaf1_frr(leaf: &Netns, rest: &str) -> Result<Frr> {
    Frr::start_with(
        leaf,
        &configs::frr_leaf("leaf", LEAF1_AS, "192.0.2.11", NODE_AS, rest),
        FrrOptions {
            zebra: false,
            ..FrrOptions::default()
        },
    )
}

/// The node's config (uplink n0): `sections` go after the common part.
fn node_config(sections: &str) -> String {
    configs::node_config(NODE_AS, &["n0"], sections)
}

// ---- origination ----

/// Polls FRR's table of `family` until `prefix` is in it (`present`) or not; returns
/// how long that took after `since`.
fn frr_sees(
    frr: &Frr,
    family: Family,
    prefix: &str,
    present: bool,
    since: Instant,
) -> Result<Duration> {
    wait_until(Duration::from_secs(20), Duration::from_millis(10), || {
        Ok(frr.routes(family)?.contains_key(prefix) == present)
    })
    .with_context(|| {
        format!(
            "{prefix} {} FRR's {family:?} table: {:?}",
            if present {
                "never reached"
            } else {
                "stayed in"
            },
            frr.routes(family)
        )
    })?;
    Ok(since.elapsed())
}

#[test]
fn pod_routes_are_originated_and_withdrawn_at_frr() -> Result<()> {
    let (node, leaf) = node_and_leaf()?;
    // The pod's veth, both ends in the node (the pod side stands in for a container).
    node.ip(&[
        "link", "add", "pod5", "type", "veth", "peer", "name", "pod5c",
    ])?;
    node.ip(&["link", "set", "pod5", "up"])?;
    node.ip(&["link", "set", "pod5c", "up"])?;
    let frr = leaf1_frr(
        &leaf,
        &format!(
            "neighbor fd00::11 remote-as {NODE_AS}\n neighbor fd00::11 timers connect 1\n\
             address-family ipv4 unicast\n  no neighbor fd00::11 activate\n exit-address-family\n\
             address-family ipv6 unicast\n  neighbor fd00::11 activate\n exit-address-family\n"
        ),
    )?;
    let agent = Agent::start(
        &node,
        &node_config(&format!(
            r#"
[origination]
pod-cidrs = ["10.244.1.0/24", "fd00:10:244:1::/64"]
{LEAF1_PEER}[[peer]]
name = "leaf1-v6"
address = "fd00::1"
remote-asn = 65001
import = "accept-all"
export = "accept-all"
families = ["ipv6-unicast"]
"#
        )),
    )?;
    agent.wait_established("leaf1", TIMEOUT)?;
    agent.wait_established("leaf1-v6", TIMEOUT)?;
    frr.wait_established("192.0.2.11", TIMEOUT)?;
    frr.wait_established("fd00::11", TIMEOUT)?;

    for (family, prefix, ip) in [
        (Family::Ipv4, "10.244.1.5/32", "-4"),
        (Family::Ipv6, "fd00:10:244:1::5/128", "-6"),
    ] {
        let add = Instant::now();
        node.ip(&[ip, "route", "add", prefix, "dev", "pod5", "scope", "link"])?;
        let appeared = frr_sees(&frr, family, prefix, true, add)?;
        // Pod traffic from the uplinks goes straight to the pod's veth.
        let fib = agent.request(&["show", "fib", prefix])?;
        let member = &fib
            .first()
            .with_context(|| format!("{prefix} is not in the FIB"))?["members"][0];
        ensure!(
            member["interface"] == "pod5",
            "{prefix} forwards to {member}, not the pod's veth"
        );
        let del = Instant::now();
        node.ip(&[ip, "route", "del", prefix, "dev", "pod5"])?;
        let gone = frr_sees(&frr, family, prefix, false, del)?;
        ensure!(
            agent.request(&["show", "fib", prefix])?.is_empty(),
            "{prefix} stayed in the FIB after its pod route went"
        );
        let q = Instant::now();
        frr.routes(family)?;
        println!(
            "{prefix}: at FRR {:.1} ms after `ip route add`, gone {:.1} ms after `ip route del` \
             (FRR polled every 10 ms; one query takes {:.1} ms)",
            appeared.as_secs_f64() * 1e3,
            gone.as_secs_f64() * 1e3,
            q.elapsed().as_secs_f64() * 1e3
        );
    }
    // Routes outside the pod CIDRs are not pods.
    node.ip(&[
        "route",
        "add",
        "10.99.0.5/32",
        "dev",
        "pod5",
        "scope",
        "link",
    ])?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        !frr.routes(Family::Ipv4)?.contains_key("10.99.0.5/32"),
        "a route outside the pod CIDRs was originated"
    );
    Ok(())
}

// ---- two scripted peers ----

/// Peer A behind n0 (192.0.2.1, fd00:a::1, AS 65001), peer B behind n1 (198.51.100.1,
/// fd00:b::1, AS 65002); the node at .11 / ::11 on each link.
struct TwoPeers {
    node: Netns,
    a_ns: Netns,
    b_ns: Netns,
}

const A_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const A_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xa, 0, 0, 0, 0, 0, 1);
const B_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 0, 0, 0, 0, 0, 1);

impl TwoPeers {
    fn new() -> Result<Self> {
        prerequisites()?;
        let (node, a_ns, b_ns) = (Netns::new()?, Netns::new()?, Netns::new()?);
        lab::veth(&node, "n0", &a_ns, "a0")?;
        lab::veth(&node, "n1", &b_ns, "b0")?;
        for (ns, dev, v4, v6) in [
            (&node, "n0", "192.0.2.11/24", "fd00:a::11/64"),
            (&node, "n1", "198.51.100.11/24", "fd00:b::11/64"),
            (&a_ns, "a0", "192.0.2.1/24", "fd00:a::1/64"),
            (&b_ns, "b0", "198.51.100.1/24", "fd00:b::1/64"),
        ] {
            ns.ip(&["addr", "add", v4, "dev", dev])?;
            ns.ip(&["-6", "addr", "add", v6, "dev", dev, "nodad"])?;
        }
        Ok(TwoPeers { node, a_ns, b_ns })
    }

    /// The agent with both peers (passive: the scripted peers connect), ECMP across
    /// them for equal AS-path lengths.
    fn agent(&self) -> Result<Agent> {
        let config = format!(
            r#"
router-id = "192.0.2.11"
asn = {NODE_AS}
[dataplane]
uplinks = ["n0", "n1"]
mode = "skb"
pin-dir = "@PINS@"
[api]
socket = "@SOCKET@"
[http]
listen = "127.0.0.1:0"
[multipath]
relax-as-path = true
[[peer]]
name = "a"
address = "192.0.2.1"
remote-asn = {LEAF1_AS}
passive = true
import = "accept-all"
export = "reject-all"
[[peer]]
name = "b"
address = "198.51.100.1"
remote-asn = {LEAF2_AS}
passive = true
import = "accept-all"
export = "reject-all"
"#
        );
        Agent::start(&self.node, &config)
    }

    fn connect(&self, which: Peer) -> Result<ScriptedPeer> {
        let (ns, asn, id, node) = match which {
            Peer::A => (&self.a_ns, LEAF1_AS, A_V4, "192.0.2.11"),
            Peer::B => (&self.b_ns, LEAF2_AS, B_V4, "198.51.100.11"),
        };
        let spec = SessionSpec {
            asn,
            router_id: id,
            peer_asn: NODE_AS,
            hold_time: 90,
            capabilities: Vec::new(),
        };
        ScriptedPeer::connect(
            ns,
            SocketAddr::new(node.parse()?, 179),
            &spec,
            Duration::from_secs(30),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    A,
    B,
}

impl Peer {
    fn asn(self) -> u32 {
        match self {
            Peer::A => LEAF1_AS,
            Peer::B => LEAF2_AS,
        }
    }

    fn next_hop(self, prefix: &IpNet) -> IpAddr {
        match (self, prefix) {
            (Peer::A, IpNet::V4(_)) => A_V4.into(),
            (Peer::B, IpNet::V4(_)) => B_V4.into(),
            (Peer::A, IpNet::V6(_)) => A_V6.into(),
            (Peer::B, IpNet::V6(_)) => B_V6.into(),
        }
    }
}

/// A small xorshift generator: the churn is random but repeatable from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Prefix -> the set of next hops traffic should use, from `show routes` (the best
/// path and its multipath siblings).
fn loc_rib(agent: &Agent) -> Result<BTreeMap<IpNet, BTreeSet<IpAddr>>> {
    let mut out = BTreeMap::new();
    for r in agent.request(&["show", "routes"])? {
        let prefix: IpNet = r["prefix"].as_str().context("prefix")?.parse()?;
        let hops: BTreeSet<IpAddr> = r["paths"]
            .as_array()
            .context("paths")?
            .iter()
            .filter(|p| p["best"] == true || p["multipath"] == true)
            .filter_map(|p| p["next_hop"].as_str()?.parse().ok())
            .collect();
        out.insert(prefix, hops);
    }
    Ok(out)
}

/// Prefix -> the next hops of its group, from `show fib`: the routes, not the node's
/// own addresses (which are no Loc-RIB routes).
fn fib(agent: &Agent) -> Result<BTreeMap<IpNet, BTreeSet<IpAddr>>> {
    let mut out = BTreeMap::new();
    for f in agent.request(&["show", "fib"])? {
        if f["local_address"] == true {
            continue;
        }
        let prefix: IpNet = f["prefix"].as_str().context("prefix")?.parse()?;
        let hops: BTreeSet<IpAddr> = f["members"]
            .as_array()
            .context("members")?
            .iter()
            .filter_map(|m| m["address"].as_str()?.parse().ok())
            .collect();
        out.insert(prefix, hops);
    }
    Ok(out)
}

/// The first differences between two tables, for failure messages.
fn diff(
    a: &BTreeMap<IpNet, BTreeSet<IpAddr>>,
    b: &BTreeMap<IpNet, BTreeSet<IpAddr>>,
) -> Vec<String> {
    let keys: BTreeSet<&IpNet> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(k) != b.get(k))
        .take(10)
        .map(|k| format!("{k}: {:?} vs {:?}", a.get(k), b.get(k)))
        .collect()
}

fn stats(agent: &Agent) -> Result<Value> {
    agent
        .request(&["show", "stats"])?
        .into_iter()
        .next()
        .context("no stats reply")
}

#[test]
fn fib_equals_loc_rib_after_churn_from_two_peers() -> Result<()> {
    let lab = TwoPeers::new()?;
    let agent = lab.agent()?;
    let peers = [lab.connect(Peer::A)?, lab.connect(Peer::B)?];
    agent.wait_established("a", TIMEOUT)?;
    agent.wait_established("b", TIMEOUT)?;

    // 600 IPv4 /32s, 200 IPv4 /24s, 200 IPv6 /128s.
    let mut pool: Vec<IpNet> = Vec::new();
    pool.extend((0..600u32).map(|i| IpNet::V4(Ipv4Net::from(Ipv4Addr::from(0x0a64_0000 + i)))));
    pool.extend((0..200u32).map(|i| {
        IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0xac10_0000 + (i << 8)), 24).expect("valid"))
    }));
    pool.extend((0..200u128).map(|i| {
        IpNet::V6(Ipv6Net::from(Ipv6Addr::from(
            0xfd00_0010_0244_0000_0000_0000_0000_0000u128 + i,
        )))
    }));
    // The model: what each peer announces, and with how long an AS path.
    let mut announced: BTreeMap<(Peer, IpNet), usize> = BTreeMap::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    const OPS: usize = 10_000;
    for op in 0..OPS {
        let peer = if rng.below(2) == 0 { Peer::A } else { Peer::B };
        let prefix = pool[rng.below(pool.len())];
        let bytes = if rng.below(10) < 6 {
            // Paths of one or two ASes: equal lengths make ECMP, unequal a single best.
            let len = 1 + rng.below(2);
            announced.insert((peer, prefix), len);
            let path: Vec<u32> = (1..len as u32).map(|i| 64_900 + i).collect();
            scripted_peer::encode_announce(
                &scripted_peer::attributes(peer.asn(), &path),
                peer.next_hop(&prefix),
                &[prefix],
            )?
        } else {
            announced.remove(&(peer, prefix));
            scripted_peer::encode_withdraw(&[prefix])?
        };
        let i = peer as usize;
        pending[i].extend_from_slice(&bytes);
        // Each operation is its own UPDATE; they go out in bursts of ~50.
        if pending[i].len() > 2000 || op + 1 == OPS {
            for (j, p) in peers.iter().enumerate() {
                if !pending[j].is_empty() {
                    p.send(&std::mem::take(&mut pending[j]))?;
                }
            }
        }
    }
    // Expected: for each prefix, the next hops of the peers with the shortest path.
    let mut expected: BTreeMap<IpNet, BTreeSet<IpAddr>> = BTreeMap::new();
    let mut best_len: BTreeMap<IpNet, usize> = BTreeMap::new();
    for (&(_, prefix), &len) in &announced {
        let b = best_len.entry(prefix).or_insert(len);
        *b = (*b).min(len);
    }
    for (&(peer, prefix), &len) in &announced {
        if best_len[&prefix] == len {
            expected
                .entry(prefix)
                .or_default()
                .insert(peer.next_hop(&prefix));
        }
    }
    let ecmp = expected.values().filter(|h| h.len() > 1).count();
    println!(
        "{OPS} random operations over {} prefixes: {} remain, {ecmp} of them ECMP over both peers",
        pool.len(),
        expected.len()
    );

    let start = Instant::now();
    let mut last = (BTreeMap::new(), BTreeMap::new());
    let converged = wait_until(TIMEOUT, Duration::from_millis(250), || {
        for p in &peers {
            p.check()?;
        }
        last = (loc_rib(&agent)?, fib(&agent)?);
        Ok(last.0 == expected && last.1 == last.0)
    });
    if converged.is_err() {
        bail!(
            "not converged after {:?}:\nLoc-RIB vs expected: {:#?}\nFIB vs Loc-RIB: {:#?}\ndaemon log tail:\n{}",
            start.elapsed(),
            diff(&last.0, &expected),
            diff(&last.1, &last.0),
            tail(&agent.log(), 30)
        );
    }
    println!(
        "show fib equals show routes, entry by entry ({} prefixes), {:.2} s after the last UPDATE was sent",
        last.0.len(),
        start.elapsed().as_secs_f64()
    );
    let s = stats(&agent)?;
    ensure!(
        s["tables"]["routes"].as_u64() == Some(expected.len() as u64),
        "the dataplane holds {} routes, the Loc-RIB {}",
        s["tables"]["routes"],
        expected.len()
    );
    // The bulk writers give way to the sessions and the RIB.
    let pid = agent.pid().context("the agent is not running")?;
    for (thread, want) in [("fib-programmer", 10), ("tokio-rt-worker", 0)] {
        let nice = thread_nice(pid, thread)?;
        ensure!(
            nice == want,
            "thread {thread} runs at nice {nice}, want {want}"
        );
    }
    Ok(())
}

/// The niceness of the first thread of `pid` named `name` (`/proc/PID/task/*/stat`).
fn thread_nice(pid: u32, name: &str) -> Result<i64> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("stat"))?;
        let (comm, rest) = stat
            .split_once(" (")
            .and_then(|(_, r)| r.rsplit_once(") "))
            .with_context(|| format!("unreadable stat {stat:?}"))?;
        if comm == name {
            // Fields after the name start at the 3rd (state); nice is the 19th.
            let nice = rest
                .split_whitespace()
                .nth(16)
                .with_context(|| format!("short stat {stat:?}"))?;
            return Ok(nice.parse()?);
        }
    }
    bail!("no thread {name} in process {pid}")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn a_peer_down_behind_100k_ecmp_routes_writes_no_route() -> Result<()> {
    const N: u32 = 100_000;
    let lab = TwoPeers::new()?;
    let agent = lab.agent()?;
    let a = lab.connect(Peer::A)?;
    let b = lab.connect(Peer::B)?;
    agent.wait_established("a", TIMEOUT)?;
    agent.wait_established("b", TIMEOUT)?;
    let prefixes: Vec<IpNet> = (0..N)
        .map(|i| IpNet::V4(Ipv4Net::from(Ipv4Addr::from(0x6440_0000 + i))))
        .collect();
    // Equal AS-path lengths from both: every route is ECMP over A and B.
    a.announce(
        &scripted_peer::attributes(LEAF1_AS, &[]),
        A_V4.into(),
        &prefixes,
    )?;
    b.announce(
        &scripted_peer::attributes(LEAF2_AS, &[]),
        B_V4.into(),
        &prefixes,
    )?;
    let sample = prefixes[N as usize / 2].to_string();
    let members = |agent: &Agent| -> Result<BTreeSet<String>> {
        Ok(agent
            .request(&["show", "fib", &sample])?
            .iter()
            .flat_map(|f| f["members"].as_array().cloned().unwrap_or_default())
            .filter_map(|m| m["address"].as_str().map(str::to_owned))
            .collect())
    };
    let both: BTreeSet<String> = [A_V4.to_string(), B_V4.to_string()].into();
    let loaded = wait_until(Duration::from_secs(180), Duration::from_millis(500), || {
        a.check()?;
        b.check()?;
        let s = stats(&agent)?;
        Ok(s["tables"]["routes"].as_u64() == Some(u64::from(N)) && members(&agent)? == both)
    });
    if loaded.is_err() {
        bail!(
            "the 100,000 ECMP routes did not all reach the dataplane: {}\n{}",
            stats(&agent)?,
            tail(&agent.log(), 30)
        );
    }
    let before = stats(&agent)?;
    println!(
        "loaded: {} (tables {}, map operations {})",
        sample, before["tables"], before["map_ops"]
    );

    let closed = a.close()?;
    wait_until(TIMEOUT, Duration::from_millis(20), || {
        Ok(members(&agent)? == BTreeSet::from([B_V4.to_string()]))
    })
    .context("the sample route kept peer A in its group")?;
    let shrunk = closed.elapsed();
    // A marker after the peer down: once it is in the FIB, everything queued before it
    // (the RIB's changes for the 100,000 routes) has been applied too.
    let marker: IpNet = "10.99.0.1/32".parse()?;
    b.announce(
        &scripted_peer::attributes(LEAF2_AS, &[]),
        B_V4.into(),
        &[marker],
    )?;
    wait_until(TIMEOUT, POLL, || {
        Ok(!agent.request(&["show", "fib", "10.99.0.1/32"])?.is_empty())
    })
    .context("the marker route never reached the FIB")?;
    let after = stats(&agent)?;
    let ops = |v: &Value, k: &str| v["map_ops"][k].as_u64().unwrap_or(u64::MAX);
    let route_writes = ops(&after, "route_writes") - ops(&before, "route_writes");
    let group_writes = ops(&after, "group_writes") - ops(&before, "group_writes");
    println!(
        "peer A down: sample group without A after {:.1} ms (CLI polled every 20 ms); map operations \
         since: {route_writes} route writes (the marker's 2), {group_writes} group writes, \
         {} next-hop writes, {} barriers",
        shrunk.as_secs_f64() * 1e3,
        ops(&after, "next_hop_writes") - ops(&before, "next_hop_writes"),
        ops(&after, "barriers") - ops(&before, "barriers"),
    );
    // The marker is one /32: its LPM-trie entry and its host-table entry.
    ensure!(
        route_writes == 2,
        "{route_writes} route writes across the peer down and the marker (expected only the marker's 2)"
    );
    // One group (A+B) shrunk in place, plus at most a group for the marker.
    ensure!(
        group_writes <= 8,
        "{group_writes} group writes for one shared group"
    );
    ensure!(
        after["tables"]["routes"].as_u64() == Some(u64::from(N) + 1),
        "routes in the dataplane: {}",
        after["tables"]["routes"]
    );
    Ok(())
}

// ---- the control socket ----

/// Runs `bgp-ctl show neighbors` as user nobody.
fn as_nobody(agent: &Agent) -> Result<std::process::Output> {
    Ok(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(agent.bin())
        .args(["show", "neighbors", "--socket"])
        .arg(agent.socket())
        .output()?)
}

#[test]
fn the_control_socket_refuses_users_other_than_root() -> Result<()> {
    let (node, _leaf) = node_and_leaf()?;
    let agent = Agent::start(&node, &node_config(""))?;
    let socket = agent.socket().to_path_buf();
    let mode = std::fs::metadata(&socket)?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "the socket has mode {mode:o}");
    // Let nobody reach the socket file: only the socket's own mode stops it.
    let dir = socket.parent().context("socket dir")?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;

    let out = as_nobody(&agent)?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "nobody was answered: {out:?}");
    ensure!(
        err.contains("Permission denied"),
        "unexpected error for nobody: {err}"
    );

    // A socket made world-writable (by mistake, or a copy) still refuses by credentials.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))?;
    let out = as_nobody(&agent)?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "nobody was answered: {out:?}");
    ensure!(
        err.contains("for root only"),
        "the daemon did not refuse nobody by credentials: {err}"
    );
    ensure!(
        agent
            .log()
            .contains("refused a connection from a non-root user"),
        "the refusal is not logged"
    );
    // Root still is answered.
    agent.request(&["show", "neighbors"])?;
    Ok(())
}

// ---- reload ----

/// Neighbor `name`'s details as JSON.
fn detail(agent: &Agent, name: &str) -> Result<Value> {
    agent
        .request(&["show", "neighbor", name])?
        .into_iter()
        .next()
        .with_context(|| format!("no details for {name}"))
}

fn flaps(agent: &Agent, name: &str) -> Result<u64> {
    detail(agent, name)?["flaps"]
        .as_u64()
        .context("flaps is not a number")
}

fn has_best(agent: &Agent, prefix: &str, from: &str) -> Result<bool> {
    Ok(agent.routes()?.iter().any(|r| {
        r["prefix"] == prefix
            && r["paths"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["from"] == from && p["best"] == true))
    }))
}

const LEAF1_PEERS: &str = r#"
[[peer]]
name = "leaf1"
address = "192.0.2.1"
remote-asn = 65001
import = "@IMPORT@"
export = "accept-all"
families = ["ipv4-unicast"]
[[peer]]
name = "leaf1-v6"
address = "fd00::1"
remote-asn = 65001
import = "accept-all"
export = "accept-all"
families = ["ipv6-unicast"]
@V6TIMERS@
"#;

const LEAF2_PEER: &str = r#"
[[peer]]
name = "leaf2"
address = "198.51.100.1"
remote-asn = 65002
import = "accept-all"
export = "accept-all"
families = ["ipv4-unicast"]
"#;

const ONLY_FIRST: &str = r#"
[prefix-lists]
only-first = ["permit 100.64.1.0/24"]
[policies.leaf1-in]
default = "reject"
  [[policies.leaf1-in.terms]]
  match = { prefix-list = "only-first" }
  then = "accept"
"#;

#[test]
fn reload_applies_the_difference_without_resetting_unchanged_sessions() -> Result<()> {
    let (node, leaf1) = node_and_leaf()?;
    let leaf2 = Netns::new()?;
    lab::veth(&node, "n1", &leaf2, "m0")?;
    node.ip(&["addr", "add", "198.51.100.11/24", "dev", "n1"])?;
    leaf2.ip(&["addr", "add", "198.51.100.1/24", "dev", "m0"])?;
    let frr = leaf1_frr(
        &leaf1,
        &format!(
            "neighbor fd00::11 remote-as {NODE_AS}\n neighbor fd00::11 timers connect 1\n\
             address-family ipv4 unicast\n  network 100.64.1.0/24\n  network 100.64.2.0/24\n  \
             no neighbor fd00::11 activate\n exit-address-family\n\
             address-family ipv6 unicast\n  neighbor fd00::11 activate\n  network 2001:db8:f1::/48\n \
             exit-address-family\n"
        ),
    )?;
    let _bird = lab::bird::Bird::start(
        &leaf2,
        &format!(
            r#"
router id 198.51.100.1;
protocol device {{}}
protocol static s4 {{ ipv4; route 100.64.7.0/24 blackhole; }}
protocol bgp node {{
  local 198.51.100.1 as {LEAF2_AS};
  neighbor 198.51.100.11 as {NODE_AS};
  connect delay time 1; connect retry time 2; error wait time 1, 5;
  ipv4 {{ import all; export all; }};
}}
"#
        ),
    )?;
    let config = |import: &str, v6_timers: &str, extra: &str| {
        configs::node_config(
            NODE_AS,
            &["n0", "n1"],
            &(LEAF1_PEERS
                .replace("@IMPORT@", import)
                .replace("@V6TIMERS@", v6_timers)
                + extra),
        )
    };
    let agent = Agent::start(&node, &config("accept-all", "", ""))?;
    agent.wait_established("leaf1", TIMEOUT)?;
    agent.wait_established("leaf1-v6", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        Ok(has_best(&agent, "100.64.1.0/24", "leaf1")?
            && has_best(&agent, "100.64.2.0/24", "leaf1")?
            && has_best(&agent, "2001:db8:f1::/48", "leaf1-v6")?)
    })
    .with_context(|| format!("routes from FRR: {:#?}", agent.routes()))?;
    // Sessions up for a while, so that an uptime that continues can be told from one
    // that restarted.
    wait_until(TIMEOUT, POLL, || {
        Ok(agent.neighbor("leaf1-v6")?["since_secs"].as_u64() >= Some(3))
    })?;
    let (flaps1, flaps6) = (flaps(&agent, "leaf1")?, flaps(&agent, "leaf1-v6")?);
    let up_before = agent.neighbor("leaf1-v6")?["since_secs"]
        .as_u64()
        .context("since")?;
    let asked = Instant::now();

    // 1. `bgp-ctl reload`: leaf1's import policy changes, leaf2 and a static route are
    //    added, leaf1-v6 is unchanged.
    agent.write_config(&config(
        "leaf1-in",
        "",
        &format!("{ONLY_FIRST}{LEAF2_PEER}\n[origination]\nstatic-routes = [\"10.244.9.0/24\"]\n"),
    ))?;
    let report = agent.request(&["reload"])?;
    let report = report.first().context("no reload report")?;
    println!("reload 1: {report}");
    ensure!(report["type"] == "reload", "{report}");
    let changes: Vec<&str> = report["changes"]
        .as_array()
        .context("changes")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        "peer leaf2: added",
        "static route 10.244.9.0/24: added",
        "policy leaf1-in: added",
        "prefix-list only-first: added",
    ] {
        ensure!(changes.contains(&want), "no {want:?} in {changes:?}");
    }
    ensure!(
        changes
            .iter()
            .any(|c| c.starts_with("peer leaf1: import policy applied again")),
        "{changes:?}"
    );
    ensure!(
        !changes.iter().any(|c| c.contains("leaf1-v6")),
        "the unchanged peer is reported: {changes:?}"
    );
    ensure!(
        report["sessions_reset"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "sessions were reset: {report}"
    );
    // The new import policy took effect on the running session.
    wait_until(TIMEOUT, POLL, || {
        Ok(!has_best(&agent, "100.64.2.0/24", "leaf1")?)
    })
    .context("100.64.2.0/24 stayed after the import policy rejected it")?;
    ensure!(
        has_best(&agent, "100.64.1.0/24", "leaf1")?,
        "100.64.1.0/24 went too"
    );
    // The added peer and static route came up.
    agent.wait_established("leaf2", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || has_best(&agent, "100.64.7.0/24", "leaf2"))
        .context("no route from the added peer")?;
    wait_until(TIMEOUT, POLL, || {
        Ok(frr.routes(Family::Ipv4)?.contains_key("10.244.9.0/24"))
    })
    .context("the added static route did not reach FRR")?;
    // Neither leaf1 session was reset: same flaps, and leaf1-v6's uptime went on.
    ensure!(agent.neighbor_state("leaf1")? == "Established");
    ensure!(flaps(&agent, "leaf1")? == flaps1, "leaf1 flapped");
    ensure!(flaps(&agent, "leaf1-v6")? == flaps6, "leaf1-v6 flapped");
    let up_after = agent.neighbor("leaf1-v6")?["since_secs"]
        .as_u64()
        .context("since")?;
    ensure!(
        up_after + 1 >= up_before + asked.elapsed().as_secs(),
        "leaf1-v6's uptime restarted: {up_before} s before, {up_after} s {:?} later",
        asked.elapsed()
    );

    // 2. SIGHUP: leaf1-v6's hold time changes, which needs a reset.
    agent.write_config(&config(
        "leaf1-in",
        "timers = { hold = 30 }",
        &format!("{ONLY_FIRST}{LEAF2_PEER}\n[origination]\nstatic-routes = [\"10.244.9.0/24\"]\n"),
    ))?;
    agent.sighup()?;
    wait_until(TIMEOUT, POLL, || Ok(flaps(&agent, "leaf1-v6")? > flaps6))
        .context("leaf1-v6 was not reset for its new hold time")?;
    agent.wait_established("leaf1-v6", TIMEOUT)?;
    let d = detail(&agent, "leaf1-v6")?;
    ensure!(d["configured_hold_time"] == 30, "{d}");
    let log = agent.log();
    ensure!(
        log.contains("reload: peer leaf1-v6: timers changed: session reset"),
        "the SIGHUP reload did not log its change:\n{}",
        tail(&log, 20)
    );
    ensure!(flaps(&agent, "leaf1")? == flaps1, "leaf1 flapped on SIGHUP");
    ensure!(flaps(&agent, "leaf2")? == 0, "leaf2 flapped on SIGHUP");

    // 3. A file with a mistake changes nothing and says where the mistake is.
    agent.write_config(&config("no-such-policy", "", LEAF2_PEER))?;
    let err = agent
        .request(&["reload"])
        .err()
        .context("a broken config was accepted")?
        .to_string();
    println!("reload 3: {err:?}");
    // The line and field of leaf1's `import = "no-such-policy"`.
    ensure!(
        err.contains("line 21:10: peer[0].import")
            && err.contains("no-such-policy")
            && err.contains("nothing changed"),
        "{err}"
    );
    ensure!(
        has_best(&agent, "100.64.7.0/24", "leaf2")?,
        "leaf2's route went"
    );
    ensure!(agent.neighbor_state("leaf2")? == "Established");
    Ok(())
}

// ---- aggregates ----

#[test]
fn summary_only_aggregate_hides_pods_and_blackholes_the_rest() -> Result<()> {
    let (node, leaf) = node_and_leaf()?;
    node.ip(&[
        "link", "add", "pod5", "type", "veth", "peer", "name", "pod5c",
    ])?;
    node.ip(&["link", "set", "pod5", "up"])?;
    node.ip(&["link", "set", "pod5c", "up"])?;
    let frr = leaf1_frr(&leaf, "")?;
    let config = |summary_only: bool| {
        node_config(&format!(
            r#"
[origination]
pod-cidrs = ["10.244.1.0/24"]
[[aggregate]]
prefix = "10.244.1.0/24"
summary-only = {summary_only}
suppress-to = ["leaf1"]
{LEAF1_PEER}"#
        ))
    };
    let agent = Agent::start(&node, &config(true))?;
    agent.wait_established("leaf1", TIMEOUT)?;
    node.ip(&[
        "route",
        "add",
        "10.244.1.5/32",
        "dev",
        "pod5",
        "scope",
        "link",
    ])?;
    wait_until(TIMEOUT, POLL, || {
        Ok(frr.routes(Family::Ipv4)?.contains_key("10.244.1.0/24"))
    })
    .context("the aggregate did not reach FRR")?;
    // The pod is in our Loc-RIB and FIB, but not advertised.
    wait_until(TIMEOUT, POLL, || {
        Ok(!agent.request(&["show", "fib", "10.244.1.5/32"])?.is_empty())
    })?;
    std::thread::sleep(Duration::from_secs(1));
    ensure!(
        !frr.routes(Family::Ipv4)?.contains_key("10.244.1.5/32"),
        "the /32 inside a summary-only aggregate was advertised"
    );
    // The rest of the aggregate is a blackhole in the dataplane; the pod forwards.
    let kinds = |prefix: &str| -> Result<Vec<String>> {
        Ok(agent
            .request(&["show", "fib", prefix])?
            .iter()
            .flat_map(|f| f["members"].as_array().cloned().unwrap_or_default())
            .filter_map(|m| m["kind"].as_str().map(str::to_owned))
            .collect())
    };
    ensure!(
        kinds("10.244.1.77/32")? == ["blackhole"],
        "uncovered space: {:?}",
        kinds("10.244.1.77/32")
    );
    ensure!(
        !kinds("10.244.1.5/32")?.contains(&"blackhole".to_string()),
        "the pod is blackholed"
    );
    // Not summary-only any more: the more specific goes out too, without a reset.
    agent.write_config(&config(false))?;
    agent.request(&["reload"])?;
    wait_until(TIMEOUT, POLL, || {
        Ok(frr.routes(Family::Ipv4)?.contains_key("10.244.1.5/32"))
    })
    .context("the /32 was not advertised once summary-only was off")?;
    ensure!(flaps(&agent, "leaf1")? == 0, "the session was reset");
    Ok(())
}

// ---- reload: pod CIDRs and dynamic-neighbor ranges ----

/// The node's config with `pod-cidrs` and, when `range` is set, a dynamic-neighbor
/// range accepting AS 65001 from it.
fn pods_and_range(pod_cidrs: &str, range: Option<&str>) -> String {
    let mut s = format!("[origination]\npod-cidrs = [{pod_cidrs}]\n");
    if let Some(range) = range {
        s.push_str(&format!(
            "[[dynamic-neighbors]]\nname = \"leaves\"\nrange = \"{range}\"\n\
             remote-asn-range = \"65001\"\nimport = \"accept-all\"\nexport = \"accept-all\"\n\
             families = [\"ipv4-unicast\"]\n"
        ));
    }
    node_config(&s)
}

/// The `changes` of a `bgp-ctl reload` answer.
fn reload(agent: &Agent) -> Result<Vec<String>> {
    let report = agent.request(&["reload"])?;
    let report = report.first().context("no reload report")?;
    println!("reload: {report}");
    Ok(report["changes"]
        .as_array()
        .context("changes")?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect())
}

#[test]
fn reload_moves_pod_cidrs_and_adds_and_removes_dynamic_ranges() -> Result<()> {
    let (node, leaf) = node_and_leaf()?;
    // Two pods, one in each CIDR the config will name.
    for (dev, prefix) in [("pod5", "10.244.1.5/32"), ("pod6", "10.245.1.6/32")] {
        let peer = format!("{dev}c");
        node.ip(&["link", "add", dev, "type", "veth", "peer", "name", &peer])?;
        node.ip(&["link", "set", dev, "up"])?;
        node.ip(&["link", "set", &peer, "up"])?;
        node.ip(&["route", "add", prefix, "dev", dev, "scope", "link"])?;
    }
    // FRR connects to the node; the node only listens, from its dynamic range.
    let frr = leaf1_frr(&leaf, "")?;
    let agent = Agent::start(
        &node,
        &pods_and_range("\"10.244.0.0/16\"", Some("192.0.2.0/24")),
    )?;
    frr.wait_established("192.0.2.11", TIMEOUT)
        .with_context(|| format!("daemon log:\n{}", agent.log()))?;
    let since = Instant::now();
    frr_sees(&frr, Family::Ipv4, "10.244.1.5/32", true, since)?;
    ensure!(
        !frr.routes(Family::Ipv4)?.contains_key("10.245.1.6/32"),
        "a route outside the pod CIDRs was originated"
    );
    let dynamic = agent
        .request(&["show", "neighbors"])?
        .into_iter()
        .find(|n| n["dynamic"] == true)
        .context("no dynamic neighbor")?;
    let name = dynamic["name"].as_str().context("name")?.to_string();
    ensure!(dynamic["address"] == "192.0.2.1", "{dynamic}");

    // 1. The pod CIDR moves: the pod in the new one is originated, the other withdrawn,
    //    and the session stays up.
    agent.write_config(&pods_and_range("\"10.245.0.0/16\"", Some("192.0.2.0/24")))?;
    let changes = reload(&agent)?;
    ensure!(
        changes
            .iter()
            .any(|c| c.starts_with("origination pod-cidrs:")),
        "{changes:?}"
    );
    let since = Instant::now();
    frr_sees(&frr, Family::Ipv4, "10.245.1.6/32", true, since)?;
    frr_sees(&frr, Family::Ipv4, "10.244.1.5/32", false, since)?;
    ensure!(
        agent.neighbor_state(&name)? == "Established",
        "the dynamic session went down on a pod CIDR change"
    );

    // 2. The range goes: its session is shut down and the neighbor forgotten.
    agent.write_config(&pods_and_range("\"10.245.0.0/16\"", None))?;
    let changes = reload(&agent)?;
    ensure!(
        changes
            .iter()
            .any(|c| c == "dynamic-neighbors leaves: removed"),
        "{changes:?}"
    );
    wait_until(TIMEOUT, POLL, || {
        Ok(frr.neighbor_state("192.0.2.11")? != "Established")
    })
    .context("FRR's session stayed up after its range was removed")?;
    ensure!(
        agent.neighbor(&name).is_err(),
        "the dynamic neighbor is still listed"
    );
    // FRR keeps trying and is refused while no range covers it.
    std::thread::sleep(Duration::from_secs(3));
    ensure!(
        frr.neighbor_state("192.0.2.11")? != "Established",
        "a session came up with no range covering FRR"
    );

    // 3. The range comes back: FRR's next attempt is accepted.
    agent.write_config(&pods_and_range("\"10.245.0.0/16\"", Some("192.0.2.0/24")))?;
    let changes = reload(&agent)?;
    ensure!(
        changes
            .iter()
            .any(|c| c == "dynamic-neighbors leaves: added"),
        "{changes:?}"
    );
    frr.wait_established("192.0.2.11", TIMEOUT)
        .with_context(|| format!("daemon log:\n{}", agent.log()))?;
    frr_sees(&frr, Family::Ipv4, "10.245.1.6/32", true, Instant::now())?;
    Ok(())
}

// ---- neighbor entries ----

/// The kind of the first member of `prefix`'s route in the FIB (`forward`, `unresolved`).
fn fib_member_kind(agent: &Agent, prefix: &str) -> Result<String> {
    let fib = agent.request(&["show", "fib", prefix])?;
    let route = fib
        .first()
        .with_context(|| format!("{prefix} not in the FIB"))?;
    Ok(route["members"][0]["kind"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[test]
fn a_neighbor_entry_deleted_by_hand_is_resolved_again() -> Result<()> {
    let (node, leaf) = node_and_leaf()?;
    // The route's next hop is a second address of the leaf that nothing but forwarded
    // traffic goes to: the kernel has no reason of its own to resolve it.
    leaf.ip(&["addr", "add", "192.0.2.2/24", "dev", "l0"])?;
    let frr = leaf1_frr(
        &leaf,
        "address-family ipv4 unicast\n  network 100.64.1.0/24\n  \
         neighbor 192.0.2.11 route-map NH out\n exit-address-family\n\
         route-map NH permit 10\n set ip next-hop 192.0.2.2\n",
    )?;
    let agent = Agent::start(&node, &node_config(LEAF1_PEER))?;
    agent.wait_established("leaf1", TIMEOUT)?;
    frr.wait_established("192.0.2.11", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        Ok(fib_member_kind(&agent, "100.64.1.0/24").unwrap_or_default() == "forward")
    })
    .with_context(|| format!("never forwarding: {:?}", agent.request(&["show", "fib"])))?;

    // Gone from the kernel's table: the daemon asks for it again, and the next hop
    // forwards again (instead of staying unresolved, every packet to the kernel).
    node.ip(&["neigh", "del", "192.0.2.2", "dev", "n0"])?;
    wait_until(TIMEOUT, POLL, || {
        let shown = node.ip(&["neigh", "show", "192.0.2.2", "dev", "n0"])?;
        Ok(shown.contains("lladdr")
            && fib_member_kind(&agent, "100.64.1.0/24").unwrap_or_default() == "forward")
    })
    .with_context(|| {
        format!(
            "the entry was not resolved again: {:?}; fib {:?}",
            node.ip(&["neigh", "show", "dev", "n0"]),
            agent.request(&["show", "fib", "100.64.1.0/24"])
        )
    })?;
    Ok(())
}
