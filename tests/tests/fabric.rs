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

use anyhow::{Context, Result, ensure};
use lab::{
    fabric::{self, Fabric, FabricOptions, Pod},
    peer::Family,
    scenarios, wait_until,
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
    let mut dsts = vec![IpAddr::V4(b.ipv4)];
    dsts.extend(b.ipv6.map(IpAddr::V6));
    for dst in dsts {
        let what = format!("{label}: TCP to {dst}");
        let tcp = through_xdp(f, a, b, &what, || fabric::iperf3(a, b, dst, None, 2))?;
        let bps = tcp["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .context("iperf3 TCP: no sum_received")?;
        let bytes = tcp["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
        println!("{what}: {:.0} Mbit/s, {bytes} bytes", bps / 1e6);
        ensure!(bytes > 0, "{what}: TCP carried nothing: {tcp}");
    }
    let udp = through_xdp(f, a, b, &format!("{label}: UDP"), || {
        fabric::iperf3(a, b, IpAddr::V4(b.ipv4), Some("20M"), 2)
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
fn pods_on_different_nodes_talk_through_native_xdp() -> Result<()> {
    let _turn = serial();
    let mut o = options()?;
    o.xdp_mode = fabric::XdpMode::Driver;
    o.bfd = false;
    let f = start(o)?;
    check_kernel_fibs(&f)?;
    let (a, b) = (pod(&f, 0)?, pod(&f, 2)?);
    talk(&f, a, b, "driver mode: node1 -> node3")
}

#[test]
fn a_new_pod_is_reachable_and_a_deleted_one_withdrawn_everywhere() -> Result<()> {
    let _turn = serial();
    let mut o = options()?;
    o.bfd = false;
    o.pods_per_node = 1;
    let mut f = start(o)?;
    // CNI ADD on node1, watched from node2's pod; then CNI DEL.
    let c = scenarios::pod_churn(&mut f, 0, 1)?;
    println!(
        "pod {} ({}) created in {:.0} ms; answered node2's ping {:.0} ms after its creation began; \
         in every table after {:.0} ms; deleted: gone from every table after {:.0} ms",
        c.name,
        c.ipv4,
        ms(c.created),
        ms(c.reachable),
        ms(c.everywhere),
        ms(c.withdrawn)
    );
    ensure!(c.unreachable_after, "the deleted pod still answers");
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[test]
fn kill_9_and_restart_of_a_node_daemon_loses_no_packet_and_withdraws_nothing() -> Result<()> {
    let _turn = serial();
    let mut f = start(options()?)?;
    let r = scenarios::restart(&mut f, 0, 1)?;
    println!(
        "node1's daemon killed with SIGKILL and restarted: sessions back after {:.2} s, converged after {:.2} s; {}",
        r.sessions_back.as_secs_f64(),
        r.converged.as_secs_f64(),
        r.adopted
    );
    println!(
        "  flows node1 -> node2: {} sent, {} lost, longest gap {:.1} ms; node2 -> node1: {} sent, {} lost, longest gap {:.1} ms",
        r.outbound.sent(),
        r.outbound.lost(),
        ms(r.outbound.max_gap()),
        r.inbound.sent(),
        r.inbound.lost(),
        ms(r.inbound.max_gap()),
    );
    println!(
        "  leaves read {} times: node1's pod routes missing {} times; leaf1 saw the Restart State bit: {}",
        r.polls, r.withdrawals, r.restart_bit
    );
    ensure!(
        r.lost() == 0,
        "packets lost across the restart: {:?} {:?}",
        r.outbound,
        r.inbound
    );
    ensure!(r.withdrawals == 0, "the leaves withdrew node1's pod routes");
    ensure!(
        r.polls > 10,
        "the leaves were hardly watched ({} reads)",
        r.polls
    );
    ensure!(r.restart_bit, "leaf1 saw no Restart State bit");
    ensure!(
        r.unresolved_after == 0,
        "{} next hops of the restarted node still hand packets to the kernel",
        r.unresolved_after
    );
    ensure!(
        r.adopted.starts_with("adopted ") && !r.adopted.starts_with("adopted 0 "),
        "the restarted daemon adopted no routes: {}",
        r.adopted
    );
    Ok(())
}

#[test]
fn a_leaf_failure_is_detected_by_bfd_and_traffic_recovers() -> Result<()> {
    let _turn = serial();
    let mut o = options()?;
    o.ipv6 = false;
    let f = start(o)?;
    let r = scenarios::leaf_failure(&f, 1, 0, 1)?;
    println!(
        "leaf1 black-holed: node1 saw BFD down after {:.0} ms, its session down after {:.0} ms (last error {}); \
         longest gap of 8 flows {:.0} ms, {} of {} packets lost",
        ms(r.bfd_detect),
        ms(r.session_down),
        r.last_error,
        ms(r.flows.max_gap()),
        r.flows.lost(),
        r.flows.sent()
    );
    ensure!(
        r.last_error.contains("BFD Down"),
        "the session did not end by BFD: {}",
        r.last_error
    );
    ensure!(r.recovered, "a flow never recovered: {:?}", r.flows);
    let took = scenarios::leaf_repair(&f, 1)?;
    println!(
        "leaf1 repaired: converged again, BFD up, after {:.1} s",
        took.as_secs_f64()
    );
    Ok(())
}

/// What of ours is left: namespaces, pin directories, run directories, processes whose
/// command line names one of them.
fn leftovers() -> Result<Vec<String>> {
    let ours = format!("{}{}x", lab::PREFIX, std::process::id());
    let mut left: Vec<String> = lab::run("ip", &["netns", "list"])?
        .lines()
        .filter(|l| l.starts_with(&ours))
        .map(|l| format!("namespace {l}"))
        .collect();
    for dir in [lab::BPFFS, "/tmp"] {
        for e in std::fs::read_dir(dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&ours) {
                left.push(format!("{dir}/{name}"));
            }
        }
    }
    for e in std::fs::read_dir("/proc")?.flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&format!("/tmp/{ours}")) {
                left.push(format!(
                    "process {}: {cmd}",
                    e.file_name().to_string_lossy()
                ));
            }
        }
    }
    Ok(left)
}

#[test]
fn the_fabric_leaves_nothing_behind_also_when_it_fails_to_start() -> Result<()> {
    let _turn = serial();
    let mut o = options()?;
    (o.nodes, o.pods_per_node, o.ipv6) = (1, 1, false);
    let f = start(o.clone())?;
    ensure!(!leftovers()?.is_empty(), "a running fabric should be seen");
    drop(f);
    let left = leftovers()?;
    ensure!(left.is_empty(), "left behind after a drop: {left:#?}");
    // A daemon that cannot start: namespaces, links and FRR are up by then.
    o.bgp_ctl = "/bin/false".into();
    let err = match Fabric::start(o) {
        Ok(_) => anyhow::bail!("a fabric of /bin/false daemons started"),
        Err(e) => e,
    };
    println!("failed as expected: {err:#}");
    let left = leftovers()?;
    ensure!(
        left.is_empty(),
        "left behind after a failed start: {left:#?}"
    );
    Ok(())
}
