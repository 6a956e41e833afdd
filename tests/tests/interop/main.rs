//! Our daemon against real FRR and BIRD 2 peers in namespaces (issue 4's interop matrix):
//! eBGP with 4-octet ASNs over IPv4 and IPv6, routes both ways, withdrawals, multipath,
//! route refresh, MD5, GTSM, max-prefix, graceful restart, route reflection, the
//! NOTIFICATIONs we send, and RFC 7606 handling against a scripted peer.
//!
//! Most tests: node (bgp-ctl, AS 4200000001) --veth-- leaf (FRR AS 65001 or BIRD AS
//! 65002). Each module is one cell of the matrix and builds its own namespaces.

mod graceful_restart;
mod gtsm;
mod ipv6;
mod max_prefix;
mod md5;
mod multipath;
mod notifications;
mod raw_update;
mod rfc7606;
mod route_reflection;
mod route_refresh;

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use anyhow::{Context, Result, ensure};
use bgp_wire::Capability;
use lab::{
    Netns,
    agent::Agent,
    bird::Bird,
    configs::{self, LEAF1_AS, LEAF1_PEER, NODE_AS},
    frr::Frr,
    peer::Family,
    scripted_peer::{ScriptedPeer, SessionSpec},
    wait_until,
};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// Two namespaces joined by a veth: node n0 192.0.2.11/fd00::11, leaf l0 192.0.2.1/fd00::1.
fn pair() -> Result<(Netns, Netns)> {
    lab::node_and_leaf()
}

/// A node with two uplinks and a leaf behind each: node n0 192.0.2.11 -- leaf1 l0
/// 192.0.2.1, node n1 198.51.100.11 -- leaf2 l0 198.51.100.1.
fn node_with_two_leaves() -> Result<(Netns, Netns, Netns)> {
    let (node, leaf1) = pair()?;
    let leaf2 = Netns::new()?;
    lab::veth(&node, "n1", &leaf2, "l0")?;
    node.ip(&["addr", "add", "198.51.100.11/24", "dev", "n1"])?;
    leaf2.ip(&["addr", "add", "198.51.100.1/24", "dev", "l0"])?;
    Ok((node, leaf1, leaf2))
}

/// Our daemon's config: AS [`NODE_AS`] on uplink n0, hold 9 s; `peers` is appended
/// (`[[peer]]` tables, or any other table).
fn node_config(peers: &str) -> String {
    node_config_with(NODE_AS, &["n0"], peers)
}

/// [`node_config`] with another local AS and other uplinks (the node also originates
/// 10.244.1.0/24 and fd00:10:244:1::/64).
fn node_config_with(asn: u32, uplinks: &[&str], rest: &str) -> String {
    configs::node_config(
        asn,
        uplinks,
        &format!(
            "[origination]\nstatic-routes = [\"10.244.1.0/24\", \"fd00:10:244:1::/64\"]\n{rest}"
        ),
    )
}

/// FRR's config in the leaf of [`pair`]: AS 65001, with us (192.0.2.11) as its neighbor;
/// `rest` goes on inside `router bgp`.
fn frr_leaf(rest: &str) -> String {
    configs::frr_leaf("leaf", LEAF1_AS, "192.0.2.11", NODE_AS, rest)
}

/// BIRD's config in the leaf of [`pair`]: AS 65002, one BGP protocol `node` with us over
/// IPv4, originating `networks`; `extra` goes into the protocol (e.g. a password).
fn bird_config(networks: &[&str], extra: &str) -> String {
    let routes: String = networks
        .iter()
        .map(|n| format!("  route {n} blackhole;\n"))
        .collect();
    format!(
        r#"
router id 192.0.2.1;
protocol device {{}}
protocol static s4 {{
  ipv4;
{routes}}}
protocol bgp node {{
  local 192.0.2.1 as 65002;
  neighbor 192.0.2.11 as {NODE_AS};
  connect delay time 1; connect retry time 2; error wait time 1, 5;
  {extra}
  ipv4 {{ import all; export all; }};
}}
"#
    )
}

/// Our `[[peer]]` for BIRD in the leaf of [`pair`] (name `leaf2`); `extra` is added to it.
fn bird_peer(extra: &str) -> String {
    format!(
        r#"
[[peer]]
name = "leaf2"
address = "192.0.2.1"
remote-asn = 65002
import = "accept-all"
export = "accept-all"
families = ["ipv4-unicast"]
{extra}
"#
    )
}

/// The `Last error:` line of a BIRD protocol, empty if none.
fn bird_last_error(bird: &Bird, protocol: &str) -> Result<String> {
    Ok(bird
        .birdc(&format!("show protocols all {protocol}"))?
        .lines()
        .find_map(|l| l.trim().strip_prefix("Last error:"))
        .unwrap_or_default()
        .trim()
        .to_owned())
}

/// The scripted peer's address in the leaf of [`pair`].
const SCRIPTED_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// A scripted peer (`lab::scripted_peer`) of AS `asn` in the leaf of [`pair`], connected
/// to our daemon, with `capabilities` added to its OPEN.
fn scripted_peer(leaf: &Netns, asn: u32, capabilities: Vec<Capability>) -> Result<ScriptedPeer> {
    ScriptedPeer::connect(
        leaf,
        SocketAddr::from(([192, 0, 2, 11], 179)),
        &SessionSpec {
            asn,
            router_id: SCRIPTED_ADDR,
            peer_asn: NODE_AS,
            hold_time: 90,
            capabilities,
        },
        TIMEOUT,
    )
}

/// The path to `prefix` learned from neighbor `from`, if our Loc-RIB has one.
fn path(agent: &Agent, prefix: &str, from: &str) -> Result<Option<Value>> {
    Ok(agent
        .request(&["show", "routes", prefix])?
        .into_iter()
        .filter(|r| r["prefix"] == prefix)
        .flat_map(|r| r["paths"].as_array().cloned().unwrap_or_default())
        .find(|p| p["from"] == from))
}

fn has_route(agent: &Agent, prefix: &str, from: &str) -> Result<bool> {
    Ok(agent.routes()?.iter().any(|r| {
        r["prefix"] == prefix
            && r["paths"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["from"] == from && p["best"] == true))
    }))
}

/// `bgp-ctl show neighbor NAME --json`.
fn neighbor_detail(agent: &Agent, name: &str) -> Result<Value> {
    agent
        .request(&["show", "neighbor", name])?
        .into_iter()
        .next()
        .with_context(|| format!("no answer for neighbor {name}"))
}

/// Watches for `period` that neither side reaches Established; `states` reads both.
fn never_established(
    period: Duration,
    mut states: impl FnMut() -> Result<(String, String)>,
) -> Result<()> {
    let start = std::time::Instant::now();
    while start.elapsed() < period {
        let (ours, theirs) = states()?;
        ensure!(
            ours != "Established" && theirs != "Established",
            "Established although it must not be: ours {ours}, peer {theirs}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

#[test]
fn frr_session_routes_both_ways_and_withdrawals() -> Result<()> {
    let (node, leaf) = pair()?;
    let frr = Frr::start(
        &leaf,
        &frr_leaf(
            "address-family ipv4 unicast\n  network 100.64.1.0/24\n  network 100.64.2.0/24\n exit-address-family\n\
             address-family ipv6 unicast\n  neighbor 192.0.2.11 activate\n  network 2001:db8:f1::/48\n exit-address-family\n",
        ),
    )?;
    let agent = Agent::start(
        &node,
        &node_config(
            r#"
[[peer]]
name = "leaf1"
address = "192.0.2.1"
remote-asn = 65001
import = "accept-all"
export = "accept-all"
"#,
        ),
    )?;
    let took = agent.wait_established("leaf1", TIMEOUT)?;
    println!("Established with FRR after {took:?}");
    frr.wait_established("192.0.2.11", TIMEOUT)?;

    // FRR's routes reach our Loc-RIB.
    wait_until(TIMEOUT, POLL, || {
        Ok(has_route(&agent, "100.64.1.0/24", "leaf1")?
            && has_route(&agent, "100.64.2.0/24", "leaf1")?)
    })
    .with_context(|| format!("routes from FRR: {:#?}", agent.routes()))?;
    // Ours reach FRR, with our address as next hop.
    wait_until(TIMEOUT, POLL, || {
        let r = frr.routes(Family::Ipv4)?;
        let ours: std::net::IpAddr = "192.0.2.11".parse()?;
        Ok(r.get("10.244.1.0/24").is_some_and(|nh| nh.contains(&ours)))
    })
    .with_context(|| format!("FRR's table: {:?}", frr.routes(Family::Ipv4)))?;
    let n = agent.neighbor("leaf1")?;
    ensure!(n["accepted"].as_u64() >= Some(2), "{n}");
    ensure!(n["advertised"].as_u64() >= Some(1), "{n}");

    // A withdrawal at FRR leaves our Loc-RIB.
    frr.configure(&[
        "router bgp 65001",
        "address-family ipv4 unicast",
        "no network 100.64.2.0/24",
    ])?;
    wait_until(TIMEOUT, POLL, || {
        Ok(!has_route(&agent, "100.64.2.0/24", "leaf1")?)
    })
    .context("withdrawal from FRR")?;
    ensure!(
        has_route(&agent, "100.64.1.0/24", "leaf1")?,
        "the other route went too"
    );

    // Our withdrawal (route del of a static added at run time) leaves FRR's table.
    agent.table(&["route", "add", "10.244.9.0/24"])?;
    wait_until(TIMEOUT, POLL, || {
        Ok(frr.routes(Family::Ipv4)?.contains_key("10.244.9.0/24"))
    })
    .context("route add reaching FRR")?;
    agent.table(&["route", "del", "10.244.9.0/24"])?;
    wait_until(TIMEOUT, POLL, || {
        Ok(!frr.routes(Family::Ipv4)?.contains_key("10.244.9.0/24"))
    })
    .context("route del reaching FRR")?;
    Ok(())
}

#[test]
fn bird_session_routes_both_ways() -> Result<()> {
    let (node, leaf) = pair()?;
    let bird = Bird::start(&leaf, &bird_config(&["100.64.7.0/24"], ""))?;
    let agent = Agent::start(&node, &node_config(&bird_peer("")))?;
    let took = agent.wait_established("leaf2", TIMEOUT)?;
    println!("Established with BIRD after {took:?}");
    bird.wait_established("node", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        has_route(&agent, "100.64.7.0/24", "leaf2")
    })
    .with_context(|| format!("routes from BIRD: {:#?}", agent.routes()))?;
    wait_until(TIMEOUT, POLL, || {
        Ok(bird.routes("master4")?.contains_key("10.244.1.0/24"))
    })
    .with_context(|| format!("BIRD's table: {:?}", bird.routes("master4")))?;

    // Withdrawals both ways: BIRD drops its static route, we delete one added at run time.
    agent.table(&["route", "add", "10.244.9.0/24"])?;
    wait_until(TIMEOUT, POLL, || {
        Ok(bird.routes("master4")?.contains_key("10.244.9.0/24"))
    })
    .context("route add reaching BIRD")?;
    bird.configure(&bird_config(&[], ""))?;
    wait_until(TIMEOUT, POLL, || {
        Ok(!has_route(&agent, "100.64.7.0/24", "leaf2")?)
    })
    .context("withdrawal from BIRD")?;
    agent.table(&["route", "del", "10.244.9.0/24"])?;
    wait_until(TIMEOUT, POLL, || {
        Ok(!bird.routes("master4")?.contains_key("10.244.9.0/24"))
    })
    .context("route del reaching BIRD")?;
    ensure!(
        bird.routes("master4")?.contains_key("10.244.1.0/24"),
        "our other route went too"
    );
    Ok(())
}
