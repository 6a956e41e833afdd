//! End to end on the dev fabric (`lab::fabric`): a spine, two FRR leaves, three nodes
//! running our daemon (dual-homed, eBGP, ECMP, XDP on uplinks and pod veths), pods.
//!
//! - pods on different nodes talk (ping, TCP and UDP with iperf3) through one leaf and,
//!   with each node cut off from one leaf, through the spine; the nodes' kernels hold
//!   no route to remote pods and forward none of it, the XDP counters show it all;
//! - a new pod is reachable from the other nodes, a deleted one withdrawn everywhere;
//! - `kill -9` of a node's daemon and its restart lose no packet of the flows through
//!   that node, and the leaves withdraw none of its routes (graceful restart);
//! - a leaf black-holed: BFD takes its sessions down and traffic recovers.
//!
//! The tests take turns (one fabric at a time on this small machine, and the timings
//! they print mean something). Figures are printed, not asserted: `cargo xtask bench
//! fabric` reports them.

use std::{
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use lab::{
    fabric::{self, Fabric, FabricOptions, Pod},
    flow::Flows,
    peer::Family,
    wait_until,
};

/// One fabric at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const POLL: Duration = Duration::from_millis(20);
/// Functional timeouts (a route that never comes), not performance bars.
const TIMEOUT: Duration = Duration::from_secs(30);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn options() -> Result<FabricOptions> {
    Ok(FabricOptions::new(lab::agent::bgp_ctl_bin()?))
}

fn start(o: FabricOptions) -> Result<Fabric> {
    let t = Instant::now();
    let f = Fabric::start(o)?;
    println!(
        "fabric of {} nodes up in {:.1} s",
        f.nodes.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(f)
}

/// The first pod of node `n` (index).
fn pod(f: &Fabric, n: usize) -> Result<&Pod> {
    f.nodes[n]
        .pods
        .first()
        .with_context(|| format!("node{} has no pod", n + 1))
}

/// Fails if a node's kernel holds a route into the pod space other than its own pods'.
fn check_kernel_fibs(f: &Fabric) -> Result<()> {
    for n in &f.nodes {
        let (own4, own6) = fabric::pod_cidrs(n.number);
        let own4: ipnet::IpNet = own4.parse()?;
        let own6: ipnet::IpNet = own6.parse()?;
        let pods4: ipnet::IpNet = "10.244.0.0/16".parse()?;
        let pods6: ipnet::IpNet = "fd00:10:244::/48".parse()?;
        let routes = n.kernel_routes()?;
        for line in &routes {
            let mut words = line.split_whitespace();
            let mut dst = words.next().unwrap_or_default();
            if matches!(
                dst,
                "local" | "broadcast" | "multicast" | "anycast" | "unreachable" | "blackhole"
            ) {
                dst = words.next().unwrap_or_default();
            }
            let net: Option<ipnet::IpNet> = dst
                .parse()
                .ok()
                .or_else(|| dst.parse::<IpAddr>().ok().map(ipnet::IpNet::from));
            let Some(net) = net else { continue };
            let remote_pods = (pods4.contains(&net) && !own4.contains(&net))
                || (pods6.contains(&net) && !own6.contains(&net));
            ensure!(
                !remote_pods,
                "{}'s kernel has a route to remote pods: {line}\n{}",
                n.name,
                routes.join("\n")
            );
        }
        ensure!(
            routes.iter().any(|l| l.starts_with("default")),
            "{}: no default route? {routes:?}",
            n.name
        );
    }
    Ok(())
}

/// What the XDP programs and the kernels of two nodes did while `traffic` ran between
/// pods `a` (on node `na`) and `b` (on node `nb`): fails unless XDP forwarded what the
/// pods sent and received, and the kernels nearly nothing. Returns `traffic`'s result.
fn through_xdp<T>(
    f: &Fabric,
    a: &Pod,
    b: &Pod,
    what: &str,
    traffic: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let (na, nb) = (a.node, b.node);
    let fwd = |n: usize| f.xdp_counter(n, "forwarded");
    let before = (
        fwd(na)?,
        fwd(nb)?,
        fabric::link_packets(&a.ns, "eth0")?,
        fabric::link_packets(&b.ns, "eth0")?,
        fabric::kernel_forwarded(&f.nodes[na].ns)?,
        fabric::kernel_forwarded(&f.nodes[nb].ns)?,
    );
    let out = traffic()?;
    let after = (
        fwd(na)?,
        fwd(nb)?,
        fabric::link_packets(&a.ns, "eth0")?,
        fabric::link_packets(&b.ns, "eth0")?,
        fabric::kernel_forwarded(&f.nodes[na].ns)?,
        fabric::kernel_forwarded(&f.nodes[nb].ns)?,
    );
    let pod_a = (after.2.0 - before.2.0) + (after.2.1 - before.2.1);
    let pod_b = (after.3.0 - before.3.0) + (after.3.1 - before.3.1);
    let xdp_a = after.0 - before.0;
    let xdp_b = after.1 - before.1;
    let kernel_a = after.4 - before.4;
    let kernel_b = after.5 - before.5;
    println!(
        "{what}: {} sent+received {pod_a} packets, {}'s XDP forwarded {xdp_a} (kernel {kernel_a}); \
         {} {pod_b}, {}'s XDP {xdp_b} (kernel {kernel_b})",
        a.name, f.nodes[na].name, b.name, f.nodes[nb].name
    );
    // Slack: ARP and neighbor discovery with the host veth are not forwarded.
    const SLACK: u64 = 20;
    ensure!(pod_a > SLACK, "{what}: no traffic at {}", a.name);
    ensure!(
        xdp_a + SLACK >= pod_a && xdp_b + SLACK >= pod_b,
        "{what}: XDP forwarded {xdp_a}/{xdp_b} of {pod_a}/{pod_b} packets"
    );
    ensure!(
        kernel_a <= SLACK && kernel_b <= SLACK,
        "{what}: the kernels forwarded {kernel_a}/{kernel_b} packets"
    );
    Ok(out)
}

/// Ping (both families), TCP and UDP (iperf3) from `a` to `b`, through XDP.
fn talk(f: &Fabric, a: &Pod, b: &Pod, label: &str) -> Result<()> {
    through_xdp(f, a, b, &format!("{label}: ping"), || {
        a.ping(IpAddr::V4(b.ipv4), 5)?;
        b.ping(IpAddr::V4(a.ipv4), 5)?;
        if let (Some(a6), Some(b6)) = (a.ipv6, b.ipv6) {
            a.ping(IpAddr::V6(b6), 5)?;
            b.ping(IpAddr::V6(a6), 5)?;
        }
        Ok(())
    })?;
    let tcp = through_xdp(f, a, b, &format!("{label}: TCP"), || {
        fabric::iperf3(a, b, None, 2)
    })?;
    let bps = tcp["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 TCP: no sum_received")?;
    let bytes = tcp["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    println!("{label}: TCP {:.0} Mbit/s, {bytes} bytes", bps / 1e6);
    ensure!(bytes > 0, "{label}: TCP carried nothing: {tcp}");
    let udp = through_xdp(f, a, b, &format!("{label}: UDP"), || {
        fabric::iperf3(a, b, Some("20M"), 2)
    })?;
    let sum = &udp["end"]["sum"];
    let (packets, lost) = (
        sum["packets"].as_u64().context("iperf3 UDP: no packets")?,
        sum["lost_packets"].as_u64().unwrap_or(0),
    );
    println!("{label}: UDP 20 Mbit/s: {packets} packets, {lost} lost");
    ensure!(packets > 0, "{label}: UDP carried nothing: {udp}");
    ensure!(
        lost * 100 <= packets,
        "{label}: UDP lost {lost} of {packets}"
    );
    Ok(())
}

/// Whether `router`'s selected route to `prefix` has exactly `next_hops`.
fn routed_via(f: &Fabric, leaf: u8, prefix: &str, next_hops: &[IpAddr]) -> Result<bool> {
    let routes = f.leaf(leaf).frr.routes(Family::Ipv4)?;
    Ok(routes
        .get(prefix)
        .is_some_and(|nh| nh.len() == next_hops.len() && next_hops.iter().all(|h| nh.contains(h))))
}

#[test]
fn pods_on_different_nodes_talk_through_xdp_via_a_leaf_and_via_the_spine() -> Result<()> {
    let _turn = serial();
    let f = start(options()?)?;
    check_kernel_fibs(&f)?;
    let (a, b) = (pod(&f, 0)?, pod(&f, 1)?);

    // Both leaves reach both nodes: each flow crosses one leaf, the one ECMP picks.
    talk(&f, a, b, "node1 -> node2 via a leaf")?;
    // Pods of one node talk through XDP too (pod veth to pod veth).
    let a2 = f.nodes[0].pods.get(1).context("node1 has a second pod")?;
    a.ping(IpAddr::V4(a2.ipv4), 3)?;

    // Cut node1 off leaf2 and node2 off leaf1: their pods are on different leaves now,
    // and traffic between them goes leaf -> spine -> leaf.
    f.nodes[0].ns.ip(&["link", "set", "up2", "down"])?;
    f.leaf(2).ns.ip(&["link", "set", "node1", "down"])?;
    f.nodes[1].ns.ip(&["link", "set", "up1", "down"])?;
    f.leaf(1).ns.ip(&["link", "set", "node2", "down"])?;
    let spine_from = |l: u8| IpAddr::V4(fabric::spine_link_v4(l).0);
    let took = wait_until(TIMEOUT, POLL, || {
        Ok(
            routed_via(&f, 1, &format!("{}/32", b.ipv4), &[spine_from(1)])?
                && routed_via(&f, 2, &format!("{}/32", a.ipv4), &[spine_from(2)])?,
        )
    })
    .with_context(|| {
        format!(
            "leaves never routed via the spine: leaf1 {:?}",
            f.leaf(1).frr.routes(Family::Ipv4)
        )
    })?;
    println!(
        "leaves route via the spine {:.2} s after the links went down",
        took.as_secs_f64()
    );
    // Until BFD ends their sessions over the dead links, the nodes' programs pass what
    // hashes to a dead uplink to the kernel, which routes it via the live one; then
    // those next hops leave the ECMP groups and XDP carries it all. (Without BFD the
    // hold timer would end them, but graceful restart would keep the routes through the
    // dead leaf, stale, for the restart time: BFD Down keeps none.)
    let t = Instant::now();
    wait_until(TIMEOUT, POLL, || {
        Ok(f.nodes[0].agent.neighbor_state("leaf2")? != "Established"
            && f.nodes[1].agent.neighbor_state("leaf1")? != "Established")
    })
    .context("the sessions over the dead links stayed up")?;
    println!(
        "the nodes' sessions over the dead links ended {:.1} s later",
        t.elapsed().as_secs_f64()
    );
    talk(&f, a, b, "node1 -> node2 via the spine")?;
    check_kernel_fibs(&f)?;
    Ok(())
}

#[test]
fn a_new_pod_is_reachable_and_a_deleted_one_withdrawn_everywhere() -> Result<()> {
    let _turn = serial();
    let mut o = options()?;
    o.bfd = false;
    o.pods_per_node = 1;
    let mut f = start(o)?;
    let watcher = pod(&f, 1)?.ns.name().to_owned();
    let watcher_node = 1;

    // CNI ADD on node1, then a pod on node2 pings it until it answers.
    let t0 = Instant::now();
    let new = f.add_pod(0)?;
    let (v4, v6, name) = (new.ipv4, new.ipv6, new.name.clone());
    let created = t0.elapsed();
    let w = f.nodes[watcher_node].pods.first().context("watcher pod")?;
    assert_eq!(w.ns.name(), watcher);
    wait_until(TIMEOUT, Duration::ZERO, || {
        w.reaches(IpAddr::V4(v4), Duration::from_millis(50))
    })
    .context("the new pod never answered")?;
    let reachable = t0.elapsed();
    let prefix4 = format!("{v4}/32");
    let prefix6 = v6.map(|a| format!("{a}/128"));
    wait_until(TIMEOUT, POLL, || {
        present_everywhere(&f, &prefix4, &prefix6, true)
    })
    .context("the new pod's routes never reached every table")?;
    let everywhere = t0.elapsed();
    println!(
        "pod {name} ({v4}) created in {:.0} ms; reachable from node2 {:.0} ms after the start of its creation; in every RIB after {:.0} ms",
        created.as_secs_f64() * 1e3,
        reachable.as_secs_f64() * 1e3,
        everywhere.as_secs_f64() * 1e3
    );
    if let Some(a6) = v6 {
        w.ping(IpAddr::V6(a6), 2)?;
    }

    // CNI DEL: the host veth goes; the routes go everywhere.
    let t0 = Instant::now();
    f.remove_pod(v4)?;
    wait_until(TIMEOUT, POLL, || {
        present_everywhere(&f, &prefix4, &prefix6, false)
    })
    .context("the deleted pod's routes stayed")?;
    let gone = t0.elapsed();
    println!(
        "pod {name} deleted: withdrawn from both leaves, the spine and every node after {:.0} ms",
        gone.as_secs_f64() * 1e3
    );
    let w = f.nodes[watcher_node].pods.first().context("watcher pod")?;
    ensure!(
        !w.reaches(IpAddr::V4(v4), Duration::from_millis(200))?,
        "the deleted pod still answers"
    );
    Ok(())
}

/// Whether the prefixes are (`want` true) in, or (false) absent from, every router's
/// table and every node's RIB.
fn present_everywhere(f: &Fabric, p4: &str, p6: &Option<String>, want: bool) -> Result<bool> {
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

/// Polls the leaves' tables on a thread and counts the times a node's pod prefix was
/// missing (a withdrawal the restart should not cause).
struct WithdrawalWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<(u64, u64)>>>,
}

impl WithdrawalWatch {
    fn start(f: &Fabric, prefixes: Vec<String>) -> Result<Self> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let dirs: Vec<std::path::PathBuf> = f
            .leaves
            .iter()
            .map(|l| l.frr.run_dir().to_path_buf())
            .collect();
        let s = stop.clone();
        let handle = std::thread::spawn(move || -> Result<(u64, u64)> {
            let (mut polls, mut missing) = (0u64, 0u64);
            while !s.load(Ordering::Relaxed) {
                for dir in &dirs {
                    let out = lab::run(
                        "vtysh",
                        &[
                            "--vty_socket",
                            &dir.to_string_lossy(),
                            "-d",
                            "bgpd",
                            "-c",
                            "show bgp ipv4 unicast json",
                        ],
                    )?;
                    let json: serde_json::Value = serde_json::from_str(&out)?;
                    for p in &prefixes {
                        if json["routes"][p].as_array().is_none_or(|a| a.is_empty()) {
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

    /// (polls, prefixes found missing).
    fn stop(mut self) -> Result<(u64, u64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| anyhow::anyhow!("watch panicked"))?,
            None => bail!("stopped twice"),
        }
    }
}

impl Drop for WithdrawalWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn kill_9_and_restart_of_a_node_daemon_loses_no_packet_and_withdraws_nothing() -> Result<()> {
    let _turn = serial();
    let mut f = start(options()?)?;
    let (a, b) = (pod(&f, 0)?, pod(&f, 1)?);
    let node1_pods: Vec<String> = f.nodes[0]
        .pods
        .iter()
        .map(|p| format!("{}/32", p.ipv4))
        .collect();
    let interval = Duration::from_millis(2);
    // Through node1 both ways: from its pod (pod veth XDP) and to it (uplink XDP).
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
    let watch = WithdrawalWatch::start(&f, node1_pods)?;
    let leaf_addr = fabric::leaf_link_v4(1, 1).1.to_string();
    let drops_before = frr_drops(&f, &leaf_addr)?;
    std::thread::sleep(Duration::from_millis(500));

    let node = &mut f.nodes[0];
    node.agent.kill()?;
    let killed = Instant::now();
    // Long enough for the leaves to see the sessions drop and keep the routes stale.
    wait_until(TIMEOUT, POLL, || {
        Ok(frr_drops(&f, &leaf_addr)? > drops_before)
    })
    .context("leaf1 never saw node1's session drop")?;
    std::thread::sleep(Duration::from_millis(500));
    let node = &mut f.nodes[0];
    node.agent.restart()?;
    let peers = f.node_peer_names();
    for p in &peers {
        f.nodes[0].agent.wait_established(p, TIMEOUT)?;
    }
    let reestablished = killed.elapsed();
    f.wait_converged(TIMEOUT)?;
    let converged = killed.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let (polls, missing) = watch.stop()?;
    let (r_out, r_back) = (out.stop()?, back.stop()?);
    let log = f.nodes[0].agent.log();
    let adopted = log
        .lines()
        .filter_map(|l| l.find("adopted ").map(|i| &l[i..]))
        .find(|l| !l.starts_with("adopted 0 routes"))
        .unwrap_or("(no adoption logged)")
        .to_owned();
    println!(
        "node1's daemon killed with SIGKILL and restarted: sessions back after {:.2} s, converged after {:.2} s",
        reestablished.as_secs_f64(),
        converged.as_secs_f64()
    );
    println!("  {adopted}");
    println!(
        "  flows node1 -> node2: {} sent, {} lost, longest gap {:.1} ms; node2 -> node1: {} sent, {} lost, longest gap {:.1} ms",
        r_out.sent(),
        r_out.lost(),
        r_out.max_gap().as_secs_f64() * 1e3,
        r_back.sent(),
        r_back.lost(),
        r_back.max_gap().as_secs_f64() * 1e3,
    );
    println!("  leaves polled {polls} times: node1's pod routes missing {missing} times");
    // The restarted daemon said so in its OPEN (RFC 4724 Restart State bit).
    let gr = f
        .leaf(1)
        .frr
        .vtysh_json(&format!("show bgp neighbors {leaf_addr} json"))?;
    let gr = &gr[leaf_addr.as_str()]["gracefulRestartInfo"];
    println!("  leaf1's view of node1's graceful restart: {gr}");
    ensure!(gr["rBit"] == true, "leaf1 saw no Restart State bit: {gr}");
    ensure!(
        r_out.lost() == 0 && r_back.lost() == 0,
        "packets lost across the restart: {r_out:?} {r_back:?}"
    );
    ensure!(
        missing == 0,
        "the leaves withdrew node1's pod routes {missing} times"
    );
    ensure!(polls > 10, "the leaves were hardly watched ({polls} polls)");
    ensure!(
        !adopted.starts_with('('),
        "the restarted daemon adopted no routes:\n{log}"
    );
    Ok(())
}

/// How often leaf1 has dropped its session with `node_addr`.
fn frr_drops(f: &Fabric, node_addr: &str) -> Result<u64> {
    let json = f
        .leaf(1)
        .frr
        .vtysh_json(&format!("show bgp neighbors {node_addr} json"))?;
    json[node_addr]["connectionsDropped"]
        .as_u64()
        .with_context(|| format!("no connectionsDropped: {json}"))
}

#[test]
fn a_leaf_failure_is_detected_by_bfd_and_traffic_recovers() -> Result<()> {
    let _turn = serial();
    let mut o = options()?;
    o.ipv6 = false;
    o.bfd = true;
    let f = start(o)?;
    let (a, b) = (pod(&f, 0)?, pod(&f, 1)?);
    // Eight flows: ECMP spreads them over both leaves.
    let flows = Flows::start(
        &a.ns,
        IpAddr::V4(a.ipv4),
        &b.ns,
        IpAddr::V4(b.ipv4),
        7003,
        8,
        Duration::from_millis(1),
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let (rx_before, _) = fabric::link_packets(&f.leaf(1).ns, "node1")?;
    std::thread::sleep(Duration::from_millis(200));
    let (rx_after, _) = fabric::link_packets(&f.leaf(1).ns, "node1")?;
    ensure!(
        rx_after > rx_before + 50,
        "no flow crosses leaf1 ({rx_before} -> {rx_after}): nothing to fail over"
    );
    // leaf1 dies silently: every packet in, out and through it is dropped (no link
    // goes down, no TCP reset: only BFD can tell).
    f.leaf(1).ns.exec(
        "nft",
        &["add table inet dead; \
             add chain inet dead in { type filter hook prerouting priority -300; policy drop; }; \
             add chain inet dead out { type filter hook output priority -300; policy drop; }"],
    )?;
    let failed = Instant::now();
    let down = wait_until(TIMEOUT, POLL, || {
        Ok(f.nodes[0].agent.neighbor_state("leaf1")? != "Established")
    })
    .context("node1's session with leaf1 stayed up")?;
    std::thread::sleep(Duration::from_secs(2));
    let r = flows.stop()?;
    let gap = r.max_gap();
    println!(
        "leaf1 black-holed: node1's session down after {:.0} ms (BFD), longest gap of 8 flows {:.0} ms, {} of {} packets lost",
        down.as_secs_f64() * 1e3,
        gap.as_secs_f64() * 1e3,
        r.lost(),
        r.sent()
    );
    let detail = f.nodes[0].agent.request(&["show", "neighbor", "leaf1"])?;
    let detail = detail.first().context("show neighbor leaf1")?;
    let why = detail["summary"]["last_error"].to_string();
    println!(
        "node1's neighbor leaf1: BFD {}, last error {why}",
        detail["bfd"]
    );
    ensure!(
        why.contains("BFD") && detail["bfd"] == "Down",
        "the session did not end by BFD: {detail}"
    );
    let recovered_by = failed + down + Duration::from_secs(1);
    ensure!(
        r.flows
            .iter()
            .all(|fl| fl.last_arrival.is_some_and(|t| t > recovered_by)),
        "a flow never recovered: {r:?}"
    );
    Ok(())
}
