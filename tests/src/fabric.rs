//! The dev fabric: a small spine/leaf network of the reference design in network
//! namespaces, shared by `cargo xtask run`, the end-to-end tests and `cargo xtask bench
//! fabric`.
//!
//! ```text
//!                      spine (FRR, AS 65000)
//!                     /                     \
//!        leaf1 (FRR, AS 65001)        leaf2 (FRR, AS 65002)
//!             |        \______    ______/        |
//!             |               \  /               |
//!        node1 (bgp-ctl, AS 4200000001)   ...   nodeN (AS 42000000NN)
//!          up1 -> leaf1, up2 -> leaf2; pods behind veths: 10.244.N.11/32, ...
//! ```
//!
//! Addressing (N: node number from 1, L: leaf 1 or 2, K: pod number from 1):
//! - leaf L - node N: `10.L.N.0/24` (leaf .1 on `nodeN`, node .2 on `upL`), `fd00:L:N::/64`;
//! - spine - leaf L: `10.0.L.0/24` (spine .1 on `leafL`, leaf .2 on `spine`), `fd00:0:L::/64`;
//! - pods of node N: `10.244.N.0/24` and `fd00:10:244:N::/64`; pod K is `10.244.N.(10+K)`
//!   and `fd00:10:244:N::(10+K)`.
//!
//! Each node runs `bgp-ctl daemon` with eBGP sessions to both leaves (one per family),
//! ECMP across them (`relax-as-path`: the leaves are different ASes), graceful restart,
//! and BFD when asked. Its XDP program sits on both uplinks and on the host side of
//! every pod veth ([`FabricOptions::xdp_mode`]): traffic arriving from the leaves for a
//! local pod, and traffic from a local pod to a remote one, is forwarded from the BPF
//! maps. The node's kernel holds no route to remote pods: its routes are the connected
//! uplink subnets, the pods' host routes, and the operator's static default route via
//! both leaves (for the node's own traffic, and whatever the program passes up).
//!
//! Pods are wired the way Calico's CNI plugin does it: a veth pair, the pod end `eth0`
//! with the pod's /32 (/128) address and a default route via `169.254.1.1` (IPv6: the
//! host end's link-local `fe80::1`), the host end `vethK` with proxy ARP and no address,
//! and on the node `ip route add 10.244.N.X/32 dev vethK scope link`, which the daemon's
//! pod-route watcher learns and advertises.
//!
//! Everything is removed when the [`Fabric`] is dropped (also on a failing test):
//! daemons first, then namespaces and pins.

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};

use crate::{
    Netns,
    agent::Agent,
    frr::{Frr, FrrOptions},
    peer::Family,
    unique_name, wait_until,
};

/// AS of the spine.
pub const SPINE_AS: u32 = 65000;
/// AS of leaf 1; leaf L is `65000 + L`.
pub const LEAF_AS_BASE: u32 = 65000;
/// AS of node 1 minus one; node N is `4200000000 + N` (private 4-octet ASNs).
pub const NODE_AS_BASE: u32 = 4_200_000_000;
/// The pods' default gateway (Calico's): answered by proxy ARP on the host veth.
pub const POD_GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The pods' IPv6 gateway: the host veth's link-local address.
pub const POD_GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// Number of leaves (the reference design dual-homes every node).
pub const LEAVES: u8 = 2;

/// How long the fabric may take to converge.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

/// XDP attach mode of the nodes' program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Generic XDP (after the skb is built): works everywhere.
    Skb,
    /// Native XDP in the veth driver; receiving veth ends get GRO (NAPI) for it.
    Driver,
}

impl XdpMode {
    /// The config file's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            XdpMode::Skb => "skb",
            XdpMode::Driver => "driver",
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct FabricOptions {
    /// Number of nodes (1 to 200).
    pub nodes: u8,
    /// Pods per node at start (0 to 200).
    pub pods_per_node: u8,
    /// IPv6 too: addresses, sessions and routes of both families.
    pub ipv6: bool,
    /// BFD on the node-leaf sessions (100 ms x 3).
    pub bfd: bool,
    /// How the nodes attach their XDP program.
    pub xdp_mode: XdpMode,
    /// The `bgp-ctl` binary the nodes run.
    pub bgp_ctl: PathBuf,
}

impl FabricOptions {
    /// Three nodes with two pods each, IPv4 and IPv6, BFD, skb mode, running `bgp_ctl`.
    pub fn new(bgp_ctl: impl Into<PathBuf>) -> Self {
        FabricOptions {
            nodes: 3,
            pods_per_node: 2,
            ipv6: true,
            bfd: true,
            xdp_mode: XdpMode::Skb,
            bgp_ctl: bgp_ctl.into(),
        }
    }
}

/// A router of the fabric (the spine or a leaf): FRR in a namespace.
pub struct Router {
    /// `spine`, `leaf1`, `leaf2`.
    pub name: String,
    /// Its AS.
    pub asn: u32,
    /// FRR (zebra, bgpd, and bfdd with BFD).
    pub frr: Frr,
    /// Its namespace (last: removed after FRR has stopped).
    pub ns: Netns,
}

/// A pod: a namespace behind a veth on its node.
pub struct Pod {
    /// `podN-K`.
    pub name: String,
    /// The node's index in [`Fabric::nodes`].
    pub node: usize,
    /// Host side of its veth, in the node's namespace (`vethK`).
    pub host_veth: String,
    /// Its IPv4 address (a /32 on `eth0`).
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address (a /128), with IPv6 on.
    pub ipv6: Option<Ipv6Addr>,
    /// Its namespace.
    pub ns: Netns,
}

/// A node: our daemon in a namespace, dual-homed, with its pods.
pub struct Node {
    /// `nodeN`.
    pub name: String,
    /// N (from 1).
    pub number: u8,
    /// Its AS.
    pub asn: u32,
    /// Its pods (dropped first).
    pub pods: Vec<Pod>,
    /// The daemon.
    pub agent: Agent,
    /// Its namespace (last).
    pub ns: Netns,
    /// Number of the next pod made on it.
    next_pod: u8,
}

/// The whole fabric; see the module documentation. Dropping it removes everything.
pub struct Fabric {
    /// The nodes (dropped first: pods, daemons, namespaces).
    pub nodes: Vec<Node>,
    /// leaf1 and leaf2.
    pub leaves: Vec<Router>,
    /// The spine.
    pub spine: Router,
    /// What it was built with.
    pub options: FabricOptions,
}

/// leaf L's address towards node N, and node N's towards it.
pub fn leaf_link_v4(leaf: u8, node: u8) -> (Ipv4Addr, Ipv4Addr) {
    (
        Ipv4Addr::new(10, leaf, node, 1),
        Ipv4Addr::new(10, leaf, node, 2),
    )
}

/// IPv6 twin of [`leaf_link_v4`].
pub fn leaf_link_v6(leaf: u8, node: u8) -> (Ipv6Addr, Ipv6Addr) {
    let (l, n) = (u16::from(leaf), u16::from(node));
    (
        Ipv6Addr::new(0xfd00, l, n, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0xfd00, l, n, 0, 0, 0, 0, 2),
    )
}

/// The spine's address towards leaf L, and leaf L's towards it.
pub fn spine_link_v4(leaf: u8) -> (Ipv4Addr, Ipv4Addr) {
    (Ipv4Addr::new(10, 0, leaf, 1), Ipv4Addr::new(10, 0, leaf, 2))
}

/// IPv6 twin of [`spine_link_v4`].
pub fn spine_link_v6(leaf: u8) -> (Ipv6Addr, Ipv6Addr) {
    let l = u16::from(leaf);
    (
        Ipv6Addr::new(0xfd00, 0, l, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0xfd00, 0, l, 0, 0, 0, 0, 2),
    )
}

/// Pod K of node N: `10.244.N.(10+K)`.
pub fn pod_v4(node: u8, pod: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, node, 10 + pod)
}

/// Pod K of node N: `fd00:10:244:N::(10+K)` (the digits read as in IPv4, in hex).
pub fn pod_v6(node: u8, pod: u8) -> Ipv6Addr {
    let k = 10 + u16::from(pod);
    // 10 + K printed in decimal digits, read as hex: pod 1 is ...::11.
    let digits = u16::from_str_radix(&k.to_string(), 16).unwrap_or(k);
    Ipv6Addr::new(0xfd00, 0x10, 0x244, u16::from(node), 0, 0, 0, digits)
}

/// The pod CIDRs of node N.
pub fn pod_cidrs(node: u8) -> (String, String) {
    (
        format!("10.244.{node}.0/24"),
        format!("fd00:10:244:{node:x}::/64"),
    )
}

/// Runs `commands` through one `ip -n <ns> -batch`: one process for many changes.
fn ip_batch(ns: &Netns, commands: &[String]) -> Result<()> {
    if commands.is_empty() {
        return Ok(());
    }
    let file = std::env::temp_dir().join(format!("{}.ip", unique_name()));
    std::fs::write(&file, commands.join("\n") + "\n")
        .with_context(|| format!("writing {}", file.display()))?;
    let path = file.to_string_lossy().into_owned();
    let r = crate::run("ip", &["-n", ns.name(), "-batch", &path]);
    let _ = std::fs::remove_file(&file);
    r.with_context(|| format!("in {}: {}", ns.name(), commands.join("; ")))
        .map(drop)
}

/// Writes sysctls (`net/ipv4/ip_forward` style keys) inside `ns`.
fn sysctls(ns: &Netns, settings: &[(String, &str)]) -> Result<()> {
    ns.enter(|| -> Result<()> {
        for (key, value) in settings {
            let path = format!("/proc/sys/{key}");
            std::fs::write(&path, value).with_context(|| format!("writing {value} to {path}"))?;
        }
        Ok(())
    })?
}

/// Forwarding on, no duplicate address detection (addresses usable at once), no
/// reverse-path filter (ECMP: replies may come back on the other uplink).
fn router_sysctls(ns: &Netns) -> Result<()> {
    let s: Vec<(String, &str)> = [
        ("net/ipv4/ip_forward", "1"),
        ("net/ipv6/conf/all/forwarding", "1"),
        ("net/ipv6/conf/default/accept_dad", "0"),
        ("net/ipv6/conf/all/accept_dad", "0"),
        ("net/ipv4/conf/all/rp_filter", "0"),
        ("net/ipv4/conf/default/rp_filter", "0"),
        // Multipath hashes on the 5-tuple, so flows spread over both leaves.
        ("net/ipv4/fib_multipath_hash_policy", "1"),
        ("net/ipv6/fib_multipath_hash_policy", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    sysctls(ns, &s)
}

/// `ethtool -K dev settings...` inside `ns`.
fn ethtool(ns: &Netns, dev: &str, settings: &[&str]) -> Result<()> {
    let mut args = vec!["-K", dev];
    args.extend_from_slice(settings);
    ns.exec("ethtool", &args).map(drop)
}

/// A namespace named `<unique name>-<role>`, so `ip netns list` says what it is.
fn role_ns(role: &str) -> Result<Netns> {
    Netns::named(&format!("{}-{role}", unique_name()))
}

impl Fabric {
    /// Builds the fabric and waits until it has converged: every session Established,
    /// every pod's routes at both leaves and at every other node. Everything built so
    /// far is removed if that fails.
    pub fn start(options: FabricOptions) -> Result<Fabric> {
        crate::require_root()?;
        crate::require_bpffs()?;
        ensure!(
            (1..=200).contains(&options.nodes),
            "the fabric has 1 to 200 nodes, not {}",
            options.nodes
        );
        ensure!(
            options.pods_per_node <= 200,
            "at most 200 pods per node, not {}",
            options.pods_per_node
        );
        ensure!(
            options.bgp_ctl.exists(),
            "{} is missing: build it first (`cargo xtask build`)",
            options.bgp_ctl.display()
        );
        crate::sweep_stale();

        // Namespaces and links first: daemons attach to interfaces that exist.
        let spine_ns = role_ns("spine")?;
        let leaf_ns: Vec<Netns> = (1..=LEAVES)
            .map(|l| role_ns(&format!("leaf{l}")))
            .collect::<Result<_>>()?;
        let node_ns: Vec<Netns> = (1..=options.nodes)
            .map(|n| role_ns(&format!("node{n}")))
            .collect::<Result<_>>()?;
        for ns in std::iter::once(&spine_ns).chain(&leaf_ns).chain(&node_ns) {
            router_sysctls(ns)?;
        }
        for (i, leaf) in leaf_ns.iter().enumerate() {
            let l = i as u8 + 1;
            wire_spine_leaf(&spine_ns, leaf, l, &options)?;
            for (j, node) in node_ns.iter().enumerate() {
                wire_leaf_node(leaf, node, l, j as u8 + 1, &options)?;
            }
        }
        for (j, node) in node_ns.iter().enumerate() {
            node_default_routes(node, j as u8 + 1, &options)?;
        }

        // FRR on the routers, started in parallel (each takes ~1 s).
        let spine_conf = spine_config(&options);
        let leaf_confs: Vec<String> = (1..=LEAVES).map(|l| leaf_config(l, &options)).collect();
        let bfd = options.bfd;
        let (spine_frr, leaf_frr) = std::thread::scope(|s| {
            let spine = s.spawn(|| start_frr(&spine_ns, &spine_conf, false));
            let leaves: Vec<_> = leaf_ns
                .iter()
                .zip(&leaf_confs)
                .map(|(ns, conf)| s.spawn(move || start_frr(ns, conf, bfd)))
                .collect();
            let spine = spine
                .join()
                .map_err(|_| anyhow!("starting the spine panicked"));
            let leaves: Vec<Result<Frr>> = leaves
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow!("starting a leaf panicked"))
                        .and_then(|r| r)
                })
                .collect();
            (spine.and_then(|r| r), leaves)
        });
        let spine = Router {
            name: "spine".into(),
            asn: SPINE_AS,
            frr: spine_frr.context("FRR on the spine")?,
            ns: spine_ns,
        };
        let mut leaves = Vec::new();
        for (i, (frr, ns)) in leaf_frr.into_iter().zip(leaf_ns).enumerate() {
            let l = i as u8 + 1;
            leaves.push(Router {
                name: format!("leaf{l}"),
                asn: LEAF_AS_BASE + u32::from(l),
                frr: frr.with_context(|| format!("FRR on leaf{l}"))?,
                ns,
            });
        }

        // The nodes' daemons, then their pods (added like a CNI would, while it runs).
        let mut nodes = Vec::new();
        for (j, ns) in node_ns.into_iter().enumerate() {
            let n = j as u8 + 1;
            let agent = Agent::start_bin(&options.bgp_ctl, &ns, &node_config(n, &options))
                .with_context(|| format!("bgp-ctl on node{n}"))?;
            nodes.push(Node {
                name: format!("node{n}"),
                number: n,
                asn: NODE_AS_BASE + u32::from(n),
                pods: Vec::new(),
                agent,
                ns,
                next_pod: 1,
            });
        }
        let mut fabric = Fabric {
            nodes,
            leaves,
            spine,
            options,
        };
        for i in 0..fabric.nodes.len() {
            for _ in 0..fabric.options.pods_per_node {
                fabric.add_pod(i)?;
            }
        }
        fabric.wait_converged(CONVERGE_TIMEOUT)?;
        Ok(fabric)
    }

    /// The families in use.
    pub fn families(&self) -> Vec<Family> {
        if self.options.ipv6 {
            vec![Family::Ipv4, Family::Ipv6]
        } else {
            vec![Family::Ipv4]
        }
    }

    /// Names of the node's BGP peers as its config calls them.
    pub fn node_peer_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for l in 1..=LEAVES {
            names.push(format!("leaf{l}"));
            if self.options.ipv6 {
                names.push(format!("leaf{l}-v6"));
            }
        }
        names
    }

    /// Creates a pod on node `node` (index), the way a CNI's ADD does, and returns it.
    /// Its route reaches the daemon through the kernel, as in a real cluster.
    pub fn add_pod(&mut self, node: usize) -> Result<&Pod> {
        let ipv6 = self.options.ipv6;
        let driver = self.options.xdp_mode == XdpMode::Driver;
        let n = self
            .nodes
            .get_mut(node)
            .ok_or_else(|| anyhow!("no node {node}"))?;
        let k = n.next_pod;
        ensure!(k <= 240, "{}: out of pod addresses", n.name);
        n.next_pod += 1;
        let pod = make_pod(n, node, k, ipv6, driver)?;
        n.pods.push(pod);
        n.pods
            .last()
            .ok_or_else(|| anyhow!("pod {k} of node{} vanished", n.number))
    }

    /// Deletes the pod at `ipv4` the way a CNI's DEL does: the host veth goes (taking
    /// the host route with it), then the namespace.
    pub fn remove_pod(&mut self, ipv4: Ipv4Addr) -> Result<()> {
        for n in &mut self.nodes {
            if let Some(i) = n.pods.iter().position(|p| p.ipv4 == ipv4) {
                let pod = n.pods.remove(i);
                n.ns.ip(&["link", "del", &pod.host_veth])?;
                drop(pod);
                return Ok(());
            }
        }
        bail!("no pod {ipv4}")
    }

    /// The pod at `ipv4`.
    pub fn pod(&self, ipv4: Ipv4Addr) -> Option<&Pod> {
        self.nodes
            .iter()
            .flat_map(|n| &n.pods)
            .find(|p| p.ipv4 == ipv4)
    }

    /// Every pod.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.nodes.iter().flat_map(|n| &n.pods)
    }

    /// Leaf `l` (1 or 2).
    pub fn leaf(&self, l: u8) -> &Router {
        &self.leaves[usize::from(l - 1)]
    }

    /// Waits until every session is Established and every pod's routes are at both
    /// leaves and the spine and in every other node's RIB through both leaves; returns
    /// how long that took.
    pub fn wait_converged(&self, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        let peers = self.node_peer_names();
        for n in &self.nodes {
            for p in &peers {
                n.agent
                    .wait_established(p, timeout.saturating_sub(start.elapsed()))
                    .with_context(|| format!("{}: session {p}", n.name))?;
            }
        }
        let mut missing = String::new();
        wait_until(
            timeout.saturating_sub(start.elapsed()),
            Duration::from_millis(100),
            || {
                missing = self.missing_routes()?;
                Ok(missing.is_empty())
            },
        )
        .with_context(|| format!("the fabric did not converge: {missing}"))?;
        Ok(start.elapsed())
    }

    /// Routes that should be there and are not, as text (empty when converged).
    pub fn missing_routes(&self) -> Result<String> {
        let mut out = String::new();
        let pods: Vec<(usize, String, Option<String>)> = self
            .pods()
            .map(|p| {
                (
                    p.node,
                    format!("{}/32", p.ipv4),
                    p.ipv6.map(|a| format!("{a}/128")),
                )
            })
            .collect();
        for leaf in std::iter::once(&self.spine).chain(&self.leaves) {
            let v4 = leaf.frr.routes(Family::Ipv4)?;
            let v6 = if self.options.ipv6 {
                leaf.frr.routes(Family::Ipv6)?
            } else {
                Default::default()
            };
            for (_, p4, p6) in &pods {
                if !v4.contains_key(p4) {
                    let _ = write!(out, "{} lacks {p4}; ", leaf.name);
                }
                if let Some(p6) = p6
                    && !v6.contains_key(p6)
                {
                    let _ = write!(out, "{} lacks {p6}; ", leaf.name);
                }
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            // Prefix -> number of paths (a remote pod's: one through each leaf).
            let have: Vec<(String, usize)> = n
                .agent
                .routes()?
                .iter()
                .filter_map(|r| {
                    let paths = r["paths"].as_array().map_or(0, Vec::len);
                    Some((r["prefix"].as_str()?.to_owned(), paths))
                })
                .collect();
            for (node, p4, p6) in &pods {
                for p in std::iter::once(p4).chain(p6) {
                    let paths = have.iter().find(|(h, _)| h == p).map_or(0, |h| h.1);
                    let (whose, want) = if *node == i {
                        ("its own", 1)
                    } else {
                        ("remote", self.leaves.len())
                    };
                    if paths < want {
                        let _ = write!(
                            out,
                            "{} has {paths} of {want} paths to {whose} {p}; ",
                            n.name
                        );
                    }
                }
            }
        }
        Ok(out)
    }

    /// A human description: what was built and how to look at it.
    pub fn describe(&self) -> String {
        let bin = self.options.bgp_ctl.display();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Dev fabric: 1 spine, {} leaves, {} nodes, {} pods; IPv6 {}, BFD {}, XDP {} mode.\n",
            self.leaves.len(),
            self.nodes.len(),
            self.pods().count(),
            if self.options.ipv6 { "on" } else { "off" },
            if self.options.bfd { "on" } else { "off" },
            self.options.xdp_mode.as_str(),
        );
        let _ = writeln!(s, "{:<8} {:<28} {:<12} what", "name", "namespace", "AS");
        for r in std::iter::once(&self.spine).chain(&self.leaves) {
            let _ = writeln!(
                s,
                "{:<8} {:<28} {:<12} FRR (zebra, bgpd{}); run dir {}",
                r.name,
                r.ns.name(),
                r.asn,
                if self.options.bfd && r.name != "spine" {
                    ", bfdd"
                } else {
                    ""
                },
                r.frr.run_dir().display()
            );
        }
        for n in &self.nodes {
            let (c4, c6) = pod_cidrs(n.number);
            let (l1, _) = leaf_link_v4(1, n.number);
            let (l2, _) = leaf_link_v4(2, n.number);
            let _ = writeln!(
                s,
                "{:<8} {:<28} {:<12} bgp-ctl daemon; up1 -> leaf1 ({l1}), up2 -> leaf2 ({l2}); pods {c4}{}",
                n.name,
                n.ns.name(),
                n.asn,
                if self.options.ipv6 {
                    format!(", {c6}")
                } else {
                    String::new()
                }
            );
            for p in &n.pods {
                let _ = writeln!(
                    s,
                    "  {:<6} {:<28} {:<12} {}{} behind {} on {}",
                    p.name,
                    p.ns.name(),
                    "",
                    p.ipv4,
                    p.ipv6.map(|a| format!(", {a}")).unwrap_or_default(),
                    p.host_veth,
                    n.name
                );
            }
        }
        let n1 = &self.nodes[0];
        let sock = n1.agent.socket().display();
        let pins = n1.agent.pins.path().display();
        let leaf1 = self.leaf(1);
        let run = leaf1.frr.run_dir().display();
        let _ = writeln!(s, "\nLook at it (node1 shown; the others alike):");
        let _ = writeln!(s, "  {bin} show neighbors --socket {sock}");
        let _ = writeln!(s, "  {bin} show routes --socket {sock}");
        let _ = writeln!(s, "  {bin} show fib --socket {sock}");
        let _ = writeln!(s, "  {bin} show stats --socket {sock}");
        let _ = writeln!(s, "  bpftool map dump pinned {pins}/counters");
        let _ = writeln!(s, "  bpftool map dump pinned {pins}/next_hops");
        let _ = writeln!(
            s,
            "  ip -n {} route        # no route to remote pods: XDP forwards them",
            n1.ns.name()
        );
        let _ = writeln!(s, "  cat {}", n1.agent.config_path().display());
        let _ = writeln!(
            s,
            "  vtysh --vty_socket {run} -d bgpd -c 'show bgp summary'     # leaf1"
        );
        let _ = writeln!(
            s,
            "  vtysh --vty_socket {run} -d bgpd -c 'show bgp ipv4 unicast'"
        );
        if let (Some(a), Some(b)) = (
            self.pods().next(),
            self.pods()
                .find(|p| p.node != self.pods().next().map_or(0, |a| a.node)),
        ) {
            let _ = writeln!(
                s,
                "  ip netns exec {} ping {}           # {} -> {}",
                a.ns.name(),
                b.ipv4,
                a.name,
                b.name
            );
            if let Some(v6) = b.ipv6 {
                let _ = writeln!(s, "  ip netns exec {} ping {v6}", a.ns.name());
            }
        }
        s
    }

    /// Node `node`'s XDP counters (`show stats`), by name.
    pub fn xdp_counters(&self, node: usize) -> Result<Vec<(String, u64)>> {
        let n = self
            .nodes
            .get(node)
            .ok_or_else(|| anyhow!("no node {node}"))?;
        let replies = n.agent.request(&["show", "stats"])?;
        let stats = replies
            .first()
            .ok_or_else(|| anyhow!("{}: no answer to show stats", n.name))?;
        let list = stats["counters"]
            .as_array()
            .ok_or_else(|| anyhow!("{}: no counters in {stats}", n.name))?;
        list.iter()
            .map(|pair| {
                let name = pair[0]
                    .as_str()
                    .ok_or_else(|| anyhow!("bad counter {pair}"))?;
                let value = pair[1]
                    .as_u64()
                    .ok_or_else(|| anyhow!("bad counter {pair}"))?;
                Ok((name.to_owned(), value))
            })
            .collect()
    }

    /// One XDP counter of node `node`.
    pub fn xdp_counter(&self, node: usize, name: &str) -> Result<u64> {
        self.xdp_counters(node)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| anyhow!("no XDP counter {name}"))
    }
}

/// spine <-> leaf L.
fn wire_spine_leaf(spine: &Netns, leaf: &Netns, l: u8, o: &FabricOptions) -> Result<()> {
    let (s_if, l_if) = (format!("leaf{l}"), "spine".to_owned());
    crate::veth(spine, &s_if, leaf, &l_if)?;
    let (s4, l4) = spine_link_v4(l);
    let mut sc = vec![format!("addr add {s4}/24 dev {s_if}")];
    let mut lc = vec![format!("addr add {l4}/24 dev {l_if}")];
    if o.ipv6 {
        let (s6, l6) = spine_link_v6(l);
        sc.push(format!("addr add {s6}/64 dev {s_if} nodad"));
        lc.push(format!("addr add {l6}/64 dev {l_if} nodad"));
    }
    ip_batch(spine, &sc)?;
    ip_batch(leaf, &lc)
}

/// leaf L <-> node N: `nodeN` on the leaf, `upL` on the node.
fn wire_leaf_node(leaf: &Netns, node: &Netns, l: u8, n: u8, o: &FabricOptions) -> Result<()> {
    let (l_if, n_if) = (format!("node{n}"), format!("up{l}"));
    crate::veth(leaf, &l_if, node, &n_if)?;
    let (l4, n4) = leaf_link_v4(l, n);
    let mut lc = vec![format!("addr add {l4}/24 dev {l_if}")];
    let mut nc = vec![format!("addr add {n4}/24 dev {n_if}")];
    if o.ipv6 {
        let (l6, n6) = leaf_link_v6(l, n);
        lc.push(format!("addr add {l6}/64 dev {l_if} nodad"));
        nc.push(format!("addr add {n6}/64 dev {n_if} nodad"));
    }
    ip_batch(leaf, &lc)?;
    ip_batch(node, &nc)?;
    // Frames the node's program redirects (XDP_REDIRECT into the leaf's end) are only
    // taken by a veth end with NAPI: GRO gives it one (LAB-NOTES). The leaf sends what
    // it forwards with full checksums, so the node's program never sees a partial one.
    if o.xdp_mode == XdpMode::Driver {
        ethtool(leaf, &l_if, &["gro", "on"])?;
    }
    ethtool(leaf, &l_if, &["tx", "off"])
}

/// The operator's default routes on node N: ECMP via both leaves.
fn node_default_routes(node: &Netns, n: u8, o: &FabricOptions) -> Result<()> {
    let mut c = Vec::new();
    let hops: Vec<String> = (1..=LEAVES)
        .map(|l| format!("nexthop via {} dev up{l}", leaf_link_v4(l, n).0))
        .collect();
    c.push(format!("route add default proto static {}", hops.join(" ")));
    if o.ipv6 {
        let hops: Vec<String> = (1..=LEAVES)
            .map(|l| format!("nexthop via {} dev up{l}", leaf_link_v6(l, n).0))
            .collect();
        c.push(format!("route add ::/0 proto static {}", hops.join(" ")));
    }
    ip_batch(node, &c)
}

fn start_frr(ns: &Netns, config: &str, bfd: bool) -> Result<Frr> {
    Frr::start_with(
        ns,
        config,
        FrrOptions {
            bfdd: bfd,
            ..FrrOptions::default()
        },
    )
}

/// bgpd's config on the spine: eBGP to both leaves, ECMP across them.
fn spine_config(o: &FabricOptions) -> String {
    let mut c = format!(
        "frr defaults datacenter\nhostname spine\n\
         router bgp {SPINE_AS}\n bgp router-id 10.0.0.1\n no bgp ebgp-requires-policy\n \
         no bgp default ipv4-unicast\n bgp graceful-restart\n \
         bgp bestpath as-path multipath-relax\n"
    );
    for l in 1..=LEAVES {
        let asn = LEAF_AS_BASE + u32::from(l);
        let (_, l4) = spine_link_v4(l);
        let _ = write!(
            c,
            " neighbor {l4} remote-as {asn}\n neighbor {l4} timers connect 1\n"
        );
        if o.ipv6 {
            let (_, l6) = spine_link_v6(l);
            let _ = write!(
                c,
                " neighbor {l6} remote-as {asn}\n neighbor {l6} timers connect 1\n"
            );
        }
    }
    c.push_str(" address-family ipv4 unicast\n  maximum-paths 16\n");
    for l in 1..=LEAVES {
        let _ = writeln!(c, "  neighbor {} activate", spine_link_v4(l).1);
    }
    c.push_str(" exit-address-family\n");
    if o.ipv6 {
        c.push_str(" address-family ipv6 unicast\n  maximum-paths 16\n");
        for l in 1..=LEAVES {
            let _ = writeln!(c, "  neighbor {} activate", spine_link_v6(l).1);
        }
        c.push_str(" exit-address-family\n");
    }
    c
}

/// bgpd's config on leaf L: eBGP to the spine and to every node (graceful restart
/// helper for the nodes' restarts; BFD 100 ms x 3 with BFD on).
fn leaf_config(l: u8, o: &FabricOptions) -> String {
    let asn = LEAF_AS_BASE + u32::from(l);
    let (s4, _) = spine_link_v4(l);
    let mut c = format!(
        "frr defaults datacenter\nhostname leaf{l}\n\
         router bgp {asn}\n bgp router-id 10.0.{l}.2\n no bgp ebgp-requires-policy\n \
         no bgp default ipv4-unicast\n bgp graceful-restart\n \
         bgp bestpath as-path multipath-relax\n \
         neighbor {s4} remote-as {SPINE_AS}\n neighbor {s4} timers connect 1\n \
         neighbor NODES peer-group\n neighbor NODES remote-as external\n \
         neighbor NODES timers 3 9\n neighbor NODES timers connect 1\n"
    );
    if o.bfd {
        c.push_str(" neighbor NODES bfd 3 100 100\n");
    }
    if o.ipv6 {
        let (s6, _) = spine_link_v6(l);
        let _ = write!(
            c,
            " neighbor {s6} remote-as {SPINE_AS}\n neighbor {s6} timers connect 1\n \
             neighbor NODES6 peer-group\n neighbor NODES6 remote-as external\n \
             neighbor NODES6 timers 3 9\n neighbor NODES6 timers connect 1\n"
        );
        if o.bfd {
            c.push_str(" neighbor NODES6 bfd 3 100 100\n");
        }
    }
    for n in 1..=o.nodes {
        let _ = writeln!(c, " neighbor {} peer-group NODES", leaf_link_v4(l, n).1);
        if o.ipv6 {
            let _ = writeln!(c, " neighbor {} peer-group NODES6", leaf_link_v6(l, n).1);
        }
    }
    let _ = write!(
        c,
        " address-family ipv4 unicast\n  maximum-paths 16\n  neighbor {s4} activate\n  \
         neighbor NODES activate\n exit-address-family\n"
    );
    if o.ipv6 {
        let (s6, _) = spine_link_v6(l);
        let _ = write!(
            c,
            " address-family ipv6 unicast\n  maximum-paths 16\n  neighbor {s6} activate\n  \
             neighbor NODES6 activate\n exit-address-family\n"
        );
    }
    c
}

/// Node N's `bgp-ctl` config (`@PINS@`, `@SOCKET@` filled in by [`Agent`]).
pub fn node_config(n: u8, o: &FabricOptions) -> String {
    let (c4, c6) = pod_cidrs(n);
    let cidrs = if o.ipv6 {
        format!("\"{c4}\", \"{c6}\"")
    } else {
        format!("\"{c4}\"")
    };
    let (_, router_id) = leaf_link_v4(1, n);
    let mut c = format!(
        r#"# node{n} of the dev fabric: eBGP to both leaves, pods learned from the kernel.
router-id = "{router_id}"
asn = {asn}

[dataplane]
uplinks = ["up1", "up2"]
mode = "{mode}"
attach-pods = true
pin-dir = "@PINS@"

[api]
socket = "@SOCKET@"

[http]
listen = "127.0.0.1:9179"

[origination]
pod-cidrs = [{cidrs}]

[multipath]
max-paths = 16
relax-as-path = true

[graceful-restart]
restart-time = 120

[timers]
hold = 9
keepalive = 3
connect-retry = 1

[bfd]
interval-ms = 100
multiplier = 3

[prefix-lists]
pods = ["permit 10.244.0.0/16 le 32", "permit fd00:10:244::/48 le 128"]

# Import every pod route; export only our own (empty AS path): a node is no transit.
[policies.pods-in]
default = "reject"
  [[policies.pods-in.terms]]
  match = {{ prefix-list = "pods" }}
  then = "accept"

[policies.own-pods-out]
default = "reject"
  [[policies.own-pods-out.terms]]
  match = {{ prefix-list = "pods", as-path = {{ length = {{ max = 0 }} }} }}
  then = "accept"
"#,
        asn = NODE_AS_BASE + u32::from(n),
        mode = o.xdp_mode.as_str(),
    );
    for l in 1..=LEAVES {
        let asn = LEAF_AS_BASE + u32::from(l);
        let mut sessions = vec![("", IpAddr::V4(leaf_link_v4(l, n).0), "ipv4")];
        if o.ipv6 {
            sessions.push(("-v6", IpAddr::V6(leaf_link_v6(l, n).0), "ipv6"));
        }
        for (suffix, address, afi) in sessions {
            let _ = write!(
                c,
                r#"
[[peer]]
name = "leaf{l}{suffix}"
address = "{address}"
remote-asn = {asn}
families = ["{afi}-unicast"]
import = "pods-in"
export = "own-pods-out"
bfd = {bfd}
"#,
                bfd = o.bfd
            );
        }
    }
    c
}

/// Makes pod K on node `n` (index `node`), as Calico's CNI plugin does.
fn make_pod(n: &Node, node: usize, k: u8, ipv6: bool, driver: bool) -> Result<Pod> {
    let name = format!("pod{}-{k}", n.number);
    let ns = role_ns(&name)?;
    let host_veth = format!("veth{k}");
    crate::veth(&n.ns, &host_veth, &ns, "eth0")?;
    let ipv4 = pod_v4(n.number, k);
    let v6 = ipv6.then(|| pod_v6(n.number, k));
    // The pod: its address, and a default route via a gateway that exists nowhere but
    // in the host veth's proxy ARP (IPv6: the host veth's link-local address).
    let mut pc = vec![
        format!("addr add {ipv4}/32 dev eth0"),
        format!("route add {POD_GATEWAY_V4} dev eth0 scope link"),
        format!("route add default via {POD_GATEWAY_V4} dev eth0"),
    ];
    if let Some(a) = v6 {
        pc.push(format!("addr add {a}/128 dev eth0 nodad"));
        pc.push(format!("route add ::/0 via {POD_GATEWAY_V6} dev eth0"));
    }
    // The host side: proxy ARP, the gateway's link-local address, the pod's host route.
    // Answer at once: the kernel delays proxy ARP replies by 0.8 s by default (Calico
    // sets 0 too).
    sysctls(
        &n.ns,
        &[
            (format!("net/ipv4/conf/{host_veth}/proxy_arp"), "1"),
            (format!("net/ipv4/neigh/{host_veth}/proxy_delay"), "0"),
        ],
    )?;
    let mut hc = Vec::new();
    if ipv6 {
        hc.push(format!(
            "addr add {POD_GATEWAY_V6}/64 dev {host_veth} nodad"
        ));
    }
    ip_batch(&ns, &pc)?;
    // The pod's stack fills in its checksums: a frame with a partial checksum would
    // leave an XDP redirect unfinished (LAB-NOTES).
    ethtool(&ns, "eth0", &["tx", "off"])?;
    if driver {
        ethtool(&ns, "eth0", &["gro", "on"])?;
    }
    hc.push(format!("route add {ipv4}/32 dev {host_veth} scope link"));
    if let Some(a) = v6 {
        hc.push(format!("route add {a}/128 dev {host_veth}"));
    }
    ip_batch(&n.ns, &hc)?;
    Ok(Pod {
        name,
        node,
        host_veth,
        ipv4,
        ipv6: v6,
        ns,
    })
}

impl Pod {
    /// `ping -c count -i interval_s -W 1 dst` from this pod; returns ping's output,
    /// failing unless every reply came.
    pub fn ping(&self, dst: IpAddr, count: u32) -> Result<String> {
        let out = self.ns.exec_output(
            "ping",
            &[
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                "-W",
                "1",
                &dst.to_string(),
            ],
        )?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "ping {dst} from {} ({}) failed: {}{}",
                self.name,
                self.ipv4,
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(text)
    }

    /// Whether one ping to `dst` is answered within `wait`.
    pub fn reaches(&self, dst: IpAddr, wait: Duration) -> Result<bool> {
        let w = format!("{:.3}", wait.as_secs_f64().max(0.001));
        let out = self
            .ns
            .exec_output("ping", &["-c", "1", "-W", &w, "-n", "-q", &dst.to_string()])?;
        Ok(out.status.success())
    }
}

/// Packets an interface received and sent: `(rx, tx)`.
pub fn link_packets(ns: &Netns, dev: &str) -> Result<(u64, u64)> {
    let json = ns.ip(&["-j", "-s", "link", "show", "dev", dev])?;
    let v: serde_json::Value =
        serde_json::from_str(&json).with_context(|| format!("ip -j -s link: {json}"))?;
    let stats = &v[0]["stats64"];
    match (
        stats["rx"]["packets"].as_u64(),
        stats["tx"]["packets"].as_u64(),
    ) {
        (Some(rx), Some(tx)) => Ok((rx, tx)),
        _ => bail!("no packet counts for {dev} in {json}"),
    }
}

/// IP datagrams the kernel of `ns` forwarded so far (IPv4 `ForwDatagrams` plus IPv6
/// `Ip6OutForwDatagrams`).
pub fn kernel_forwarded(ns: &Netns) -> Result<u64> {
    let snmp = ns.exec("cat", &["/proc/net/snmp", "/proc/net/snmp6"])?;
    let lines: Vec<&str> = snmp.lines().collect();
    let mut total = 0;
    let mut found = 0;
    for pair in lines.windows(2) {
        let (names, values) = (pair[0], pair[1]);
        if let (Some(names), Some(values)) =
            (names.strip_prefix("Ip: "), values.strip_prefix("Ip: "))
            && names.starts_with("Forwarding")
        {
            let i = names
                .split_whitespace()
                .position(|n| n == "ForwDatagrams")
                .ok_or_else(|| anyhow!("no ForwDatagrams in /proc/net/snmp"))?;
            total += values
                .split_whitespace()
                .nth(i)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| anyhow!("bad Ip: line {values}"))?;
            found += 1;
        }
    }
    for l in &lines {
        if let Some(v) = l.strip_prefix("Ip6OutForwDatagrams") {
            total += v.trim().parse::<u64>().context("bad Ip6OutForwDatagrams")?;
            found += 1;
        }
    }
    ensure!(found == 2, "forwarding counters not found in {}", ns.name());
    Ok(total)
}

/// A one-off `iperf3` server in a pod; killed on drop.
struct Iperf3Server {
    child: std::process::Child,
}

impl Drop for Iperf3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `iperf3` from `client` to `server` at `dst` (one of its addresses) for `secs`
/// seconds, TCP or UDP at `udp_rate` (e.g. `100M`); returns iperf3's JSON report.
pub fn iperf3(
    client: &Pod,
    server: &Pod,
    dst: IpAddr,
    udp_rate: Option<&str>,
    secs: u32,
) -> Result<serde_json::Value> {
    let addr = dst.to_string();
    let child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            server.ns.name(),
            "iperf3",
            "-s",
            "-1",
            "-B",
        ])
        .arg(&addr)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting iperf3 -s (installed? `cargo xtask setup`)")?;
    let _server = Iperf3Server { child };
    let t = secs.to_string();
    let mut args = vec!["-c", &addr, "-t", &t, "-J", "--connect-timeout", "1000"];
    if let Some(rate) = udp_rate {
        args.extend_from_slice(&["-u", "-b", rate]);
    }
    // The server needs a moment to listen: retry the connection a few times. iperf3
    // 3.12 exits 0 with `-J` even when it failed: its JSON says so.
    let mut last = String::new();
    for _ in 0..30 {
        let out = client.ns.exec_output("iperf3", &args)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        if let Some(j) = json
            && out.status.success()
            && j.get("error").is_none()
        {
            return Ok(j);
        }
        last = text;
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("iperf3 from {} to {addr} failed: {last}", client.name)
}

impl Node {
    /// The node's kernel routes (`ip route show table all` and `-6`), as text lines.
    pub fn kernel_routes(&self) -> Result<Vec<String>> {
        let mut lines: Vec<String> = self
            .ns
            .ip(&["route", "show", "table", "all"])?
            .lines()
            .map(str::to_owned)
            .collect();
        lines.extend(
            self.ns
                .ip(&["-6", "route", "show", "table", "all"])?
                .lines()
                .map(str::to_owned),
        );
        Ok(lines)
    }

    /// Its pin directory.
    pub fn pins(&self) -> &Path {
        self.agent.pins.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_plan() {
        assert_eq!(
            leaf_link_v4(2, 3),
            ("10.2.3.1".parse().unwrap(), "10.2.3.2".parse().unwrap())
        );
        assert_eq!(leaf_link_v6(1, 12).1.to_string(), "fd00:1:c::2");
        assert_eq!(pod_v4(3, 1).to_string(), "10.244.3.11");
        assert_eq!(pod_v6(3, 1).to_string(), "fd00:10:244:3::11");
        assert_eq!(pod_v6(1, 90).to_string(), "fd00:10:244:1::100");
        assert_eq!(
            pod_cidrs(12),
            ("10.244.12.0/24".to_owned(), "fd00:10:244:c::/64".to_owned())
        );
        assert_eq!(spine_link_v4(2).0.to_string(), "10.0.2.1");
    }

    #[test]
    fn node_config_has_both_leaves_and_families() {
        let mut o = FabricOptions::new("/bin/true");
        let c = node_config(2, &o);
        assert!(c.contains("asn = 4200000002"), "{c}");
        assert!(c.contains("address = \"10.1.2.1\""), "{c}");
        assert!(c.contains("address = \"fd00:2:2::1\""), "{c}");
        assert!(c.contains("fd00:10:244:2::/64"), "{c}");
        o.ipv6 = false;
        o.bfd = false;
        let c = node_config(2, &o);
        assert!(
            !c.contains("leaf1-v6") && !c.contains("fd00:10:244:2"),
            "{c}"
        );
        assert!(c.contains("bfd = false"), "{c}");
    }

    #[test]
    fn leaf_config_lists_every_node() {
        let mut o = FabricOptions::new("/bin/true");
        o.nodes = 4;
        let c = leaf_config(2, &o);
        for n in 1..=4 {
            assert!(
                c.contains(&format!("neighbor 10.2.{n}.2 peer-group NODES")),
                "{c}"
            );
            assert!(
                c.contains(&format!("neighbor fd00:2:{n}::2 peer-group NODES6")),
                "{c}"
            );
        }
        assert!(c.contains("bfd 3 100 100") && c.contains("bgp graceful-restart"));
    }
}
