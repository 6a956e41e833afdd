//! Churn and failure scenarios on the dev fabric, measured: a pod created and deleted,
//! a node's daemon killed and restarted, a leaf black-holed. The end-to-end tests check
//! their outcomes; `cargo xtask bench fabric` reports their figures.

use std::{
    net::IpAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::Value;

use crate::{
    fabric::{self, Fabric},
    flow::{Flows, Report},
    peer::Family,
    wait_until,
};

/// Poll interval of the scenarios' waits.
const POLL: Duration = Duration::from_millis(10);
/// Functional timeouts (what never happens), not performance bars.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What a pod's creation and deletion took.
#[derive(Debug, Clone)]
pub struct PodChurn {
    /// The pod.
    pub name: String,
    /// Its IPv4 address.
    pub ipv4: std::net::Ipv4Addr,
    /// Creating it (namespace, veth, addresses, host route), as a CNI ADD.
    pub created: Duration,
    /// From the start of its creation until a pod on another node got a ping answer.
    pub reachable: Duration,
    /// From the start of its creation until its routes were in every router's table
    /// and every node's RIB.
    pub everywhere: Duration,
    /// From the start of its deletion until its routes had left every table and RIB.
    pub withdrawn: Duration,
    /// A ping to it went unanswered after the deletion.
    pub unreachable_after: bool,
}

/// Creates a pod on node `node` (index) as a CNI would, measures when a pod of node
/// `watcher` reaches it and when every table has it; then deletes it and measures the
/// withdrawal.
pub fn pod_churn(f: &mut Fabric, node: usize, watcher: usize) -> Result<PodChurn> {
    ensure!(
        f.nodes.get(watcher).is_some_and(|n| !n.pods.is_empty()),
        "node {watcher} has no pod to watch from"
    );
    let t0 = Instant::now();
    let new = f.add_pod(node)?;
    let (ipv4, ipv6, name) = (new.ipv4, new.ipv6, new.name.clone());
    let created = t0.elapsed();
    let w = &f.nodes[watcher].pods[0];
    wait_until(TIMEOUT, Duration::ZERO, || {
        w.reaches(IpAddr::V4(ipv4), Duration::from_millis(50))
    })
    .with_context(|| format!("{name} ({ipv4}) never answered {}", w.name))?;
    let reachable = t0.elapsed();
    let p4 = format!("{ipv4}/32");
    let p6 = ipv6.map(|a| format!("{a}/128"));
    wait_until(TIMEOUT, POLL, || present_everywhere(f, &p4, &p6, true))
        .with_context(|| format!("{name}'s routes never reached every table"))?;
    let everywhere = t0.elapsed();

    let t0 = Instant::now();
    f.remove_pod(ipv4)?;
    wait_until(TIMEOUT, POLL, || present_everywhere(f, &p4, &p6, false))
        .with_context(|| format!("{name}'s routes stayed after its deletion"))?;
    let withdrawn = t0.elapsed();
    let w = &f.nodes[watcher].pods[0];
    let unreachable_after = !w.reaches(IpAddr::V4(ipv4), Duration::from_millis(200))?;
    Ok(PodChurn {
        name,
        ipv4,
        created,
        reachable,
        everywhere,
        withdrawn,
        unreachable_after,
    })
}

/// Whether the prefixes are (`want` true) in, or (false) absent from, every router's
/// table and every node's RIB.
pub fn present_everywhere(f: &Fabric, p4: &str, p6: &Option<String>, want: bool) -> Result<bool> {
    for r in std::iter::once(&f.spine).chain(&f.leaves) {
        if r.frr.routes(Family::Ipv4)?.contains_key(p4) != want {
            return Ok(false);
        }
        if let Some(p6) = p6
            && r.frr.routes(Family::Ipv6)?.contains_key(p6) != want
        {
            return Ok(false);
        }
    }
    for n in &f.nodes {
        let routes = n.agent.routes()?;
        let has = |p: &str| {
            routes
                .iter()
                .any(|r| r["prefix"] == p && r["paths"].as_array().is_some_and(|a| !a.is_empty()))
        };
        if has(p4) != want || p6.as_deref().is_some_and(|p| has(p) != want) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What a `kill -9` and restart of a node's daemon did.
#[derive(Debug, Clone)]
pub struct Restart {
    /// From the kill until every session of the node was Established again.
    pub sessions_back: Duration,
    /// From the kill until the fabric had converged again.
    pub converged: Duration,
    /// Flows from a pod of the node to a pod of another node.
    pub outbound: Report,
    /// Flows back.
    pub inbound: Report,
    /// Times the leaves' tables were read during the restart.
    pub polls: u64,
    /// Times one of the node's pod routes was missing from a leaf's table then.
    pub withdrawals: u64,
    /// Leaf 1 saw the Restart State bit in the restarted daemon's OPEN.
    pub restart_bit: bool,
    /// What the restarted daemon logged about the dataplane it adopted.
    pub adopted: String,
    /// Next hops of the node's dataplane still not forwarding (handing packets to the
    /// kernel) a second after convergence.
    pub unresolved_after: usize,
}

impl Restart {
    /// Packets lost both ways.
    pub fn lost(&self) -> u64 {
        self.outbound.lost() + self.inbound.lost()
    }
}

/// Kills node `node`'s daemon with SIGKILL while numbered UDP flows run between its
/// first pod and node `peer`'s, both ways, waits until leaf 1 has noticed, starts the
/// daemon again and waits until the fabric has converged; meanwhile the leaves' tables
/// are read every 20 ms for the node's pod routes.
pub fn restart(f: &mut Fabric, node: usize, peer: usize) -> Result<Restart> {
    let (a, b) = (first_pod(f, node)?, first_pod(f, peer)?);
    let pods: Vec<String> = f.nodes[node]
        .pods
        .iter()
        .flat_map(|p| {
            std::iter::once(format!("{}/32", p.ipv4)).chain(p.ipv6.map(|a| format!("{a}/128")))
        })
        .collect();
    let interval = Duration::from_millis(2);
    let out = Flows::start(
        &a.ns,
        IpAddr::V4(a.ipv4),
        &b.ns,
        IpAddr::V4(b.ipv4),
        7001,
        4,
        interval,
    )?;
    let back = Flows::start(
        &b.ns,
        IpAddr::V4(b.ipv4),
        &a.ns,
        IpAddr::V4(a.ipv4),
        7002,
        4,
        interval,
    )?;
    let watch = WithdrawalWatch::start(f, pods)?;
    let number = f.nodes[node].number;
    let node_addr = fabric::leaf_link_v4(1, number).1.to_string();
    let drops_before = leaf1_drops(f, &node_addr)?;
    std::thread::sleep(Duration::from_millis(500));

    f.nodes[node].agent.kill()?;
    let killed = Instant::now();
    // The leaves see the sessions close (the kernel sends FIN) and keep the routes
    // stale; BFD, gone with the daemon, times out too: the leaves must not act on it.
    wait_until(TIMEOUT, POLL, || {
        Ok(leaf1_drops(f, &node_addr)? > drops_before)
    })
    .context("leaf1 never saw the node's session drop")?;
    std::thread::sleep(Duration::from_millis(500));
    f.nodes[node].agent.restart()?;
    for p in f.node_peer_names() {
        f.nodes[node].agent.wait_established(&p, TIMEOUT)?;
    }
    let sessions_back = killed.elapsed();
    f.wait_converged(TIMEOUT)?;
    let converged = killed.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let members: Vec<Value> = f.nodes[node]
        .agent
        .request(&["show", "fib"])?
        .iter()
        // The node's own addresses go to the kernel on purpose.
        .filter(|r| r["local_address"] != true)
        .flat_map(|r| r["members"].as_array().cloned().unwrap_or_default())
        .collect();
    ensure!(!members.is_empty(), "the restarted node's FIB is empty");
    let unresolved_after = members.iter().filter(|m| m["kind"] != "forward").count();
    let (polls, withdrawals) = watch.stop()?;
    let (outbound, inbound) = (out.stop()?, back.stop()?);
    let log = f.nodes[node].agent.log();
    let adopted = log
        .lines()
        .filter_map(|l| l.find("adopted ").map(|i| l[i..].to_owned()))
        .next_back()
        .unwrap_or_else(|| "(nothing adopted logged)".to_owned());
    let gr = f
        .leaf(1)
        .frr
        .vtysh_json(&format!("show bgp neighbors {node_addr} json"))?;
    let restart_bit = gr[node_addr.as_str()]["gracefulRestartInfo"]["rBit"] == true;
    Ok(Restart {
        sessions_back,
        converged,
        outbound,
        inbound,
        polls,
        withdrawals,
        restart_bit,
        adopted,
        unresolved_after,
    })
}

/// How often leaf 1 has dropped its session with `node_addr`.
fn leaf1_drops(f: &Fabric, node_addr: &str) -> Result<u64> {
    let json = f
        .leaf(1)
        .frr
        .vtysh_json(&format!("show bgp neighbors {node_addr} json"))?;
    json[node_addr]["connectionsDropped"]
        .as_u64()
        .with_context(|| format!("no connectionsDropped in {json}"))
}

fn first_pod(f: &Fabric, node: usize) -> Result<&fabric::Pod> {
    f.nodes
        .get(node)
        .and_then(|n| n.pods.first())
        .ok_or_else(|| anyhow!("node index {node} has no pod"))
}

/// Reads the leaves' tables on a thread and counts the times one of `prefixes` was
/// missing.
struct WithdrawalWatch {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<(u64, u64)>>>,
}

impl WithdrawalWatch {
    fn start(f: &Fabric, prefixes: Vec<String>) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let dirs: Vec<PathBuf> = f
            .leaves
            .iter()
            .map(|l| l.frr.run_dir().to_path_buf())
            .collect();
        let s = stop.clone();
        let handle = std::thread::spawn(move || -> Result<(u64, u64)> {
            let (mut polls, mut missing) = (0u64, 0u64);
            let v6 = prefixes.iter().any(|p| p.contains(':'));
            while !s.load(Ordering::Relaxed) {
                for dir in &dirs {
                    // One vtysh call for both families: the reads stay frequent.
                    let mut args = vec![
                        "--vty_socket".to_owned(),
                        dir.to_string_lossy().into_owned(),
                        "-d".to_owned(),
                        "bgpd".to_owned(),
                        "-c".to_owned(),
                        "show bgp ipv4 unicast json".to_owned(),
                    ];
                    if v6 {
                        args.extend(["-c".to_owned(), "show bgp ipv6 unicast json".to_owned()]);
                    }
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let out = crate::run("vtysh", &args)?;
                    let mut routes = serde_json::Map::new();
                    for table in serde_json::Deserializer::from_str(&out).into_iter::<Value>() {
                        if let Some(r) = table?.get("routes").and_then(Value::as_object) {
                            routes.extend(r.clone());
                        }
                    }
                    for p in &prefixes {
                        if routes
                            .get(p)
                            .and_then(Value::as_array)
                            .is_none_or(Vec::is_empty)
                        {
                            missing += 1;
                        }
                    }
                    polls += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok((polls, missing))
        });
        Ok(WithdrawalWatch {
            stop,
            handle: Some(handle),
        })
    }

    /// (reads, prefixes found missing).
    fn stop(mut self) -> Result<(u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| anyhow!("the watch panicked"))?,
            None => bail!("stopped twice"),
        }
    }
}

impl Drop for WithdrawalWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What a black-holed leaf did to traffic.
#[derive(Debug, Clone)]
pub struct LeafFailure {
    /// From the failure until the node reported BFD Down for that leaf.
    pub bfd_detect: Duration,
    /// From the failure until the node's session with the leaf was down.
    pub session_down: Duration,
    /// The flows (eight, over both leaves by ECMP).
    pub flows: Report,
    /// Every flow delivered packets again after the failure.
    pub recovered: bool,
    /// The node's last error for that session.
    pub last_error: String,
}

/// Name of the nftables table that black-holes a leaf.
const DEAD: &str = "dead";

/// Black-holes leaf `leaf` (every packet in, out and through it dropped: no link goes
/// down, no TCP reset, only BFD can tell) while eight numbered UDP flows run from node
/// `from`'s first pod to node `to`'s; measures detection and the longest gap.
pub fn leaf_failure(f: &Fabric, leaf: u8, from: usize, to: usize) -> Result<LeafFailure> {
    let (a, b) = (first_pod(f, from)?, first_pod(f, to)?);
    let from_number = f.nodes[from].number;
    let leaf_if = format!("node{from_number}");
    // What is measured is BFD taking a working session down: first it must be working
    // (on a loaded machine a session may still be coming back from a start-up flap).
    let name = format!("leaf{leaf}");
    let mut state = Value::Null;
    wait_until(TIMEOUT, POLL, || {
        state = f.nodes[from]
            .agent
            .request(&["show", "neighbor", &name])?
            .into_iter()
            .next()
            .unwrap_or(Value::Null);
        Ok(state["bfd"] == "Up" && state["summary"]["state"] == "Established")
    })
    .with_context(|| format!("{name} never Established with BFD Up: {state}"))?;
    let flows = Flows::start(
        &a.ns,
        IpAddr::V4(a.ipv4),
        &b.ns,
        IpAddr::V4(b.ipv4),
        7003,
        8,
        Duration::from_millis(1),
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let (rx0, _) = fabric::link_packets(&f.leaf(leaf).ns, &leaf_if)?;
    std::thread::sleep(Duration::from_millis(200));
    let (rx1, _) = fabric::link_packets(&f.leaf(leaf).ns, &leaf_if)?;
    ensure!(
        rx1 > rx0 + 50,
        "no flow crosses leaf{leaf} ({rx0} -> {rx1} packets): nothing would fail over"
    );
    f.leaf(leaf).ns.exec(
        "nft",
        &[&format!(
            "add table inet {DEAD}; \
             add chain inet {DEAD} in {{ type filter hook prerouting priority -300; policy drop; }}; \
             add chain inet {DEAD} out {{ type filter hook output priority -300; policy drop; }}"
        )],
    )?;
    let failed = Instant::now();
    let agent = &f.nodes[from].agent;
    let (mut bfd_detect, mut session_down) = (None, None);
    let mut last = Value::Null;
    wait_until(TIMEOUT, POLL, || {
        last = agent
            .request(&["show", "neighbor", &name])?
            .into_iter()
            .next()
            .unwrap_or(Value::Null);
        if bfd_detect.is_none() && last["bfd"] == "Down" {
            bfd_detect = Some(failed.elapsed());
        }
        if session_down.is_none() && last["summary"]["state"] != "Established" {
            session_down = Some(failed.elapsed());
        }
        Ok(bfd_detect.is_some() && session_down.is_some())
    })
    .with_context(|| format!("the node never saw {name} fail: {last}"))?;
    let (bfd_detect, session_down) = (
        bfd_detect.unwrap_or_default(),
        session_down.unwrap_or_default(),
    );
    let recovered_by = failed + session_down.max(bfd_detect) + Duration::from_millis(500);
    std::thread::sleep(Duration::from_secs(2));
    let flows = flows.stop()?;
    let recovered = flows
        .flows
        .iter()
        .all(|fl| fl.last_arrival.is_some_and(|t| t > recovered_by));
    Ok(LeafFailure {
        bfd_detect,
        session_down,
        flows,
        recovered,
        last_error: last["summary"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    })
}

/// Brings a black-holed leaf back and waits until the fabric has converged again, BFD
/// Up on every node's sessions with it.
pub fn leaf_repair(f: &Fabric, leaf: u8) -> Result<Duration> {
    let t = Instant::now();
    f.leaf(leaf)
        .ns
        .exec("nft", &["delete", "table", "inet", DEAD])?;
    f.wait_converged(Duration::from_secs(60))?;
    if f.options.bfd {
        let name = format!("leaf{leaf}");
        for n in &f.nodes {
            wait_until(TIMEOUT, POLL, || {
                let d = n.agent.request(&["show", "neighbor", &name])?;
                Ok(d.first().is_some_and(|d| d["bfd"] == "Up"))
            })
            .with_context(|| format!("{}: BFD with {name} stayed down", n.name))?;
        }
    }
    Ok(t.elapsed())
}
