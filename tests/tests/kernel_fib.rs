//! `[dataplane] kernel-fib`: the node daemon also writes the routes it learned from BGP
//! into its namespace's kernel FIB (main table, `proto 200`), ECMP as multipath routes,
//! for the node's own traffic. Checked with `ip -j route show proto 200` in the node:
//! two peers' routes as one multipath route, withdrawals, pods and static routes kept
//! out, a `kill -9` restart that adopts the routes (the ones still learned are never
//! deleted, the one withdrawn meanwhile goes after the resync period), and with the
//! option off nothing written, only a leftover of an earlier run removed after the resync
//! period.
//!
//! node (bgp-ctl) --n0-- leaf1 (FRR, AS 65001, 192.0.2.1)
//!                --n1-- leaf2 (a scripted peer, AS 65002, 198.51.100.1)

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use ipnet::IpNet;
use lab::{
    Netns,
    agent::Agent,
    configs::{self, LEAF1_AS, LEAF2_AS, NODE_AS},
    frr::{Frr, FrrOptions},
    scripted_peer::{self, ScriptedPeer, SessionSpec},
    wait_until,
};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// Learned from both leaves throughout, across the restart too.
const KEPT: &str = "100.64.1.0/24";
/// Withdrawn by both leaves while the daemon is down.
const GONE: &str = "100.64.2.0/24";
/// Withdrawn by one leaf, then the other.
const SHRUNK: &str = "100.64.3.0/24";
/// The pod on the node, and a static route it originates.
const POD: &str = "10.244.1.5/32";
const STATIC: &str = "10.244.9.0/24";

const LEAF1: (&str, &str) = ("192.0.2.1", "n0");
const LEAF2: (&str, &str) = ("198.51.100.1", "n1");

/// Prefix -> its next hops `(gateway, dev)`.
type KernelRoutes = BTreeMap<String, BTreeSet<(String, String)>>;

struct Lab {
    node: Netns,
    leaf1: Netns,
    leaf2: Netns,
}

impl Lab {
    fn new() -> Result<Self> {
        lab::require_root()?;
        lab::require_bpffs()?;
        lab::sweep_stale();
        let (node, leaf1, leaf2) = (Netns::new()?, Netns::new()?, Netns::new()?);
        lab::veth(&node, "n0", &leaf1, "l0")?;
        lab::veth(&node, "n1", &leaf2, "m0")?;
        for (ns, dev, addr) in [
            (&node, "n0", "192.0.2.11/24"),
            (&node, "n1", "198.51.100.11/24"),
            (&leaf1, "l0", "192.0.2.1/24"),
            (&leaf2, "m0", "198.51.100.1/24"),
        ] {
            ns.ip(&["addr", "add", addr, "dev", dev])?;
        }
        // The pod's veth, both ends in the node (the pod side stands in for a container).
        node.ip(&[
            "link", "add", "pod5", "type", "veth", "peer", "name", "pod5c",
        ])?;
        node.ip(&["link", "set", "pod5", "up"])?;
        node.ip(&["link", "set", "pod5c", "up"])?;
        Ok(Lab { node, leaf1, leaf2 })
    }

    fn frr(&self, networks: &[&str]) -> Result<Frr> {
        let networks: String = networks
            .iter()
            .map(|n| format!("  network {n}\n"))
            .collect();
        Frr::start_with(
            &self.leaf1,
            &configs::frr_leaf(
                "leaf1",
                LEAF1_AS,
                "192.0.2.11",
                NODE_AS,
                &format!("address-family ipv4 unicast\n{networks} exit-address-family\n"),
            ),
            FrrOptions {
                zebra: false,
                bfdd: false,
            },
        )
    }

    /// The scripted leaf2, connected to the node's passive peer `leaf2`.
    fn leaf2(&self) -> Result<ScriptedPeer> {
        let spec = SessionSpec {
            asn: LEAF2_AS,
            router_id: "198.51.100.1".parse()?,
            peer_asn: NODE_AS,
            hold_time: 90,
            capabilities: Vec::new(),
        };
        ScriptedPeer::connect(
            &self.leaf2,
            SocketAddr::new("198.51.100.11".parse()?, 179),
            &spec,
            Duration::from_secs(30),
        )
    }
}

fn config(kernel_fib: bool) -> String {
    format!(
        r#"
router-id = "192.0.2.11"
asn = {NODE_AS}
[dataplane]
uplinks = ["n0", "n1"]
mode = "skb"
pin-dir = "@PINS@"
kernel-fib = {kernel_fib}
[api]
socket = "@SOCKET@"
[http]
listen = "127.0.0.1:0"
[timers]
hold = 9
keepalive = 3
connect-retry = 1
[graceful-restart]
restart-time = 5
[multipath]
relax-as-path = true
[origination]
pod-cidrs = ["10.244.1.0/24"]
static-routes = ["{STATIC}"]
[[peer]]
name = "leaf1"
address = "192.0.2.1"
remote-asn = {LEAF1_AS}
import = "accept-all"
export = "reject-all"
families = ["ipv4-unicast"]
[[peer]]
name = "leaf2"
address = "198.51.100.1"
remote-asn = {LEAF2_AS}
passive = true
import = "accept-all"
export = "reject-all"
families = ["ipv4-unicast"]
"#
    )
}

/// `ip -j route show proto 200` in `ns`, for `family` (`-4` or `-6`).
fn kernel_routes(ns: &Netns, family: &str) -> Result<KernelRoutes> {
    let text = ns.ip(&["-j", family, "route", "show", "proto", "200"])?;
    let json: Value = serde_json::from_str(text.trim())
        .with_context(|| format!("`ip -j route` did not answer JSON: {text}"))?;
    let mut out = KernelRoutes::new();
    for r in json.as_array().context("not a list")? {
        let dst = r["dst"].as_str().context("dst")?.to_owned();
        let hop = |h: &Value| -> (String, String) {
            (
                h["gateway"].as_str().unwrap_or("-").to_owned(),
                h["dev"].as_str().unwrap_or("-").to_owned(),
            )
        };
        let hops = match r["nexthops"].as_array() {
            Some(list) => list.iter().map(hop).collect(),
            None => BTreeSet::from([hop(r)]),
        };
        out.insert(dst, hops);
    }
    Ok(out)
}

fn v4(ns: &Netns) -> Result<KernelRoutes> {
    kernel_routes(ns, "-4")
}

fn hops(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(g, d)| ((*g).to_owned(), (*d).to_owned()))
        .collect()
}

/// Waits until the node's kernel routes of ours are `want` exactly.
fn wait_kernel(agent: &Agent, ns: &Netns, want: &KernelRoutes, what: &str) -> Result<()> {
    let mut last = KernelRoutes::new();
    wait_until(TIMEOUT, POLL, || {
        last = v4(ns)?;
        Ok(last == *want)
    })
    .with_context(|| {
        format!(
            "{what}: the kernel has {last:#?}, not {want:#?}\nLoc-RIB: {:#?}\ndaemon log tail:\n{}",
            agent.routes(),
            tail(&agent.log(), 30)
        )
    })
    .map(drop)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn in_loc_rib(agent: &Agent, prefix: &str) -> Result<bool> {
    Ok(agent.routes()?.iter().any(|r| r["prefix"] == prefix))
}

fn kernel_stats(agent: &Agent) -> Result<Value> {
    let stats = agent
        .request(&["show", "stats"])?
        .into_iter()
        .next()
        .context("no stats reply")?;
    Ok(stats["kernel_fib"].clone())
}

fn net(p: &str) -> Result<IpNet> {
    Ok(p.parse()?)
}

/// `ip -o monitor route` in a namespace, its lines collected in a file; killed on drop.
struct Monitor {
    child: Child,
    file: tempfile::NamedTempFile,
}

impl Monitor {
    fn start(ns: &Netns) -> Result<Self> {
        let file = tempfile::NamedTempFile::new()?;
        let child = Command::new("ip")
            .args(["-n", ns.name(), "-o", "monitor", "route"])
            .stdout(Stdio::from(file.reopen()?))
            .stderr(Stdio::null())
            .spawn()
            .context("ip monitor route")?;
        Ok(Monitor { child, file })
    }

    fn lines(&self) -> Result<Vec<String>> {
        Ok(std::fs::read_to_string(self.file.path())?
            .lines()
            .map(str::to_owned)
            .collect())
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bgp_routes_go_into_the_kernel_fib_as_multipath_and_survive_a_restart() -> Result<()> {
    let lab = Lab::new()?;
    let frr = lab.frr(&[KEPT, GONE, SHRUNK])?;
    let mut agent = Agent::start(&lab.node, &config(true))?;
    let leaf2 = lab.leaf2()?;
    agent.wait_established("leaf1", TIMEOUT)?;
    agent.wait_established("leaf2", TIMEOUT)?;
    let attrs = scripted_peer::attributes(LEAF2_AS, &[]);
    let ours = [net(KEPT)?, net(GONE)?, net(SHRUNK)?];
    leaf2.announce(&attrs, "198.51.100.1".parse()?, &ours)?;
    lab.node
        .ip(&["route", "add", POD, "dev", "pod5", "scope", "link"])?;

    // 1. Each prefix both leaves advertise: one multipath route via both.
    let both = hops(&[LEAF1, LEAF2]);
    let mut want: KernelRoutes = [KEPT, GONE, SHRUNK]
        .iter()
        .map(|p| ((*p).to_owned(), both.clone()))
        .collect();
    wait_kernel(&agent, &lab.node, &want, "ECMP from both leaves")?;
    println!("{}", lab.node.ip(&["route", "show", "proto", "200"])?);
    // The node's own originations are in the Loc-RIB, but not written into the kernel:
    // the pod route is the CNI's (proto boot), the static route has none at all.
    wait_until(TIMEOUT, POLL, || {
        Ok(in_loc_rib(&agent, POD)? && in_loc_rib(&agent, STATIC)?)
    })
    .context("the pod and static routes never reached the Loc-RIB")?;
    std::thread::sleep(Duration::from_millis(500));
    let now = v4(&lab.node)?;
    ensure!(now == want, "with the pod and static routes: {now:#?}");
    let kernel = lab.node.ip(&["route", "show", POD])?;
    ensure!(
        kernel.contains("dev pod5") && !kernel.contains("proto 200"),
        "the pod's kernel route: {kernel}"
    );
    let stats = kernel_stats(&agent)?;
    ensure!(stats["routes"] == 3, "show stats: {stats}");
    let table = agent.table(&["show", "stats"])?;
    ensure!(
        table
            .lines()
            .any(|l| l.starts_with("kernel routes (proto 200)") && l.ends_with(" 3")),
        "show stats:\n{table}"
    );

    // 2. Withdrawn by one leaf: one next hop left; by both: gone.
    leaf2.withdraw(&[net(SHRUNK)?])?;
    want.insert(SHRUNK.to_owned(), hops(&[LEAF1]));
    wait_kernel(&agent, &lab.node, &want, "SHRUNK withdrawn by leaf2")?;
    frr.configure(&[
        &format!("router bgp {LEAF1_AS}"),
        "address-family ipv4 unicast",
        &format!("no network {SHRUNK}"),
    ])?;
    want.remove(SHRUNK);
    wait_kernel(&agent, &lab.node, &want, "SHRUNK withdrawn by both")?;

    // 3. kill -9; meanwhile both leaves withdraw GONE; then the daemon starts again.
    let monitor = Monitor::start(&lab.node)?;
    agent.kill()?;
    let killed = Instant::now();
    drop(leaf2);
    frr.configure(&[
        &format!("router bgp {LEAF1_AS}"),
        "address-family ipv4 unicast",
        &format!("no network {GONE}"),
    ])?;
    let down = v4(&lab.node)?;
    ensure!(
        down == want,
        "our routes changed while the daemon was down: {down:#?}"
    );
    agent.restart()?;
    let restarted = Instant::now();
    let leaf2 = lab.leaf2()?;
    leaf2.announce(&attrs, "198.51.100.1".parse()?, &[net(KEPT)?])?;
    agent.wait_established("leaf1", TIMEOUT)?;
    agent.wait_established("leaf2", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        let paths: usize = agent
            .request(&["show", "routes", KEPT])?
            .iter()
            .filter(|r| r["prefix"] == KEPT)
            .map(|r| r["paths"].as_array().map_or(0, Vec::len))
            .sum();
        Ok(paths == 2)
    })
    .context("KEPT was not learned again from both leaves")?;
    // Adopted, not flushed: GONE is still there, stale, until the resync period ends
    // (30 s after the start); KEPT is there throughout.
    let log = agent.log();
    ensure!(
        log.contains("adopted 2 routes of a previous run"),
        "the restarted daemon did not adopt our kernel routes:\n{}",
        tail(&log, 30)
    );
    wait_until(Duration::from_secs(10), POLL, || {
        Ok(kernel_stats(&agent)?["stale"] == 1)
    })
    .with_context(|| format!("KEPT was not confirmed: {:?}", kernel_stats(&agent)))?;
    let mut now = KernelRoutes::new();
    wait_until(Duration::from_secs(10), POLL, || {
        now = v4(&lab.node)?;
        Ok(now.get(KEPT) == Some(&both))
    })
    .with_context(|| format!("KEPT is not via both leaves again: {now:#?}"))?;
    ensure!(
        now.contains_key(GONE),
        "GONE was removed at once: {now:#?} {:.1} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    let mut last = KernelRoutes::new();
    wait_until(Duration::from_secs(60), POLL, || {
        last = v4(&lab.node)?;
        ensure!(
            last.get(KEPT) == Some(&both),
            "KEPT changed to {:?} after it was learned again",
            last.get(KEPT)
        );
        ensure!(
            last.contains_key(GONE) || restarted.elapsed() >= Duration::from_secs(25),
            "GONE was removed {:.1} s after the restart, before the resync period ended",
            restarted.elapsed().as_secs_f64()
        );
        Ok(!last.contains_key(GONE))
    })
    .with_context(|| {
        format!(
            "GONE stayed in the kernel: {last:#?}\ndaemon log tail:\n{}",
            tail(&agent.log(), 30)
        )
    })?;
    println!(
        "restart: GONE removed {:.1} s after the daemon started again ({:.1} s after the kill)",
        restarted.elapsed().as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
    want.remove(GONE);
    wait_kernel(&agent, &lab.node, &want, "after the resync")?;
    // Never deleted: the kernel announced no removal of KEPT from the kill on (a route
    // replaced in place is no removal).
    let events = monitor.lines()?;
    let deleted: Vec<&String> = events
        .iter()
        .filter(|l| l.starts_with("Deleted") && l.contains(KEPT))
        .collect();
    ensure!(
        deleted.is_empty(),
        "KEPT was deleted across the restart: {deleted:#?}"
    );
    ensure!(
        events
            .iter()
            .any(|l| l.starts_with("Deleted") && l.contains(GONE)),
        "the monitor saw no removal of GONE: {events:#?}"
    );
    println!(
        "route events in the node from the kill on:\n{}",
        events.join("\n")
    );
    let stats = kernel_stats(&agent)?;
    ensure!(
        stats["routes"] == 1 && stats["stale"] == 0,
        "show stats: {stats}"
    );
    Ok(())
}

#[test]
fn with_kernel_fib_off_nothing_goes_into_the_kernel_and_leftovers_go() -> Result<()> {
    let lab = Lab::new()?;
    // A route of ours left by an earlier run with kernel-fib on.
    const LEFTOVER: &str = "100.64.9.0/24";
    lab.node.ip(&[
        "route",
        "add",
        LEFTOVER,
        "via",
        "192.0.2.1",
        "dev",
        "n0",
        "proto",
        "200",
        "metric",
        "20",
    ])?;
    let _frr = lab.frr(&[KEPT])?;
    let agent = Agent::start(&lab.node, &config(false))?;
    let started = Instant::now();
    agent.wait_established("leaf1", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || in_loc_rib(&agent, KEPT))
        .context("KEPT never reached the Loc-RIB")?;
    // The maps have it; the kernel writer, were it on, would take milliseconds.
    wait_until(TIMEOUT, POLL, || {
        Ok(!agent.request(&["show", "fib", KEPT])?.is_empty())
    })?;
    std::thread::sleep(Duration::from_secs(1));
    let leftover: KernelRoutes = [(LEFTOVER.to_owned(), hops(&[LEAF1]))].into();
    ensure!(
        v4(&lab.node)? == leftover && kernel_routes(&lab.node, "-6")?.is_empty(),
        "kernel-fib is off, yet: {:#?}",
        v4(&lab.node)
    );
    ensure!(
        kernel_stats(&agent)?.is_null(),
        "show stats reports a kernel FIB"
    );
    // The leftover goes when the resync period (30 s) ends, not before.
    let mut last = KernelRoutes::new();
    wait_until(Duration::from_secs(60), POLL, || {
        last = v4(&lab.node)?;
        ensure!(
            last.is_empty() || last == leftover,
            "our routes in the kernel: {last:#?}"
        );
        ensure!(
            !last.is_empty() || started.elapsed() >= Duration::from_secs(25),
            "the leftover was removed {:.1} s after the start",
            started.elapsed().as_secs_f64()
        );
        Ok(last.is_empty())
    })
    .with_context(|| format!("the leftover stayed: {last:#?}\n{}", tail(&agent.log(), 20)))?;
    println!(
        "leftover removed {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
