//! Our daemon against real FRR and BIRD 2 peers in namespaces, over eBGP with 4-octet
//! ASNs: sessions come up, routes flow both ways, withdrawals propagate.
//!
//! node (bgp-ctl, AS 4200000001) --veth-- leaf (FRR AS 65001 or BIRD AS 65002)

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use lab::{Netns, agent::Agent, bird::Bird, frr::Frr, peer::Family, wait_until};

const NODE_AS: u32 = 4_200_000_001;
const TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// Two namespaces joined by a veth: node n0 192.0.2.11/fd00::11, leaf l0 192.0.2.1/fd00::1.
fn pair() -> Result<(Netns, Netns)> {
    lab::require_root()?;
    lab::require_bpffs()?;
    lab::sweep_stale();
    let (node, leaf) = (Netns::new()?, Netns::new()?);
    lab::veth(&node, "n0", &leaf, "l0")?;
    node.ip(&["addr", "add", "192.0.2.11/24", "dev", "n0"])?;
    leaf.ip(&["addr", "add", "192.0.2.1/24", "dev", "l0"])?;
    node.ip(&["-6", "addr", "add", "fd00::11/64", "dev", "n0", "nodad"])?;
    leaf.ip(&["-6", "addr", "add", "fd00::1/64", "dev", "l0", "nodad"])?;
    Ok((node, leaf))
}

fn node_config(peers: &str) -> String {
    format!(
        r#"
router-id = "192.0.2.11"
asn = {NODE_AS}
[dataplane]
uplinks = ["n0"]
mode = "skb"
pin-dir = "@PINS@"
[api]
socket = "@SOCKET@"
[http]
listen = "127.0.0.1:0"
[origination]
static-routes = ["10.244.1.0/24", "fd00:10:244:1::/64"]
[timers]
hold = 9
keepalive = 3
connect-retry = 1
{peers}
"#
    )
}

fn has_route(agent: &Agent, prefix: &str, from: &str) -> Result<bool> {
    Ok(agent.routes()?.iter().any(|r| {
        r["prefix"] == prefix
            && r["paths"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["from"] == from && p["best"] == true))
    }))
}

#[test]
fn frr_session_routes_both_ways_and_withdrawals() -> Result<()> {
    let (node, leaf) = pair()?;
    let frr = Frr::start(
        &leaf,
        &format!(
            "frr defaults traditional\nhostname leaf\n\
             router bgp 65001\n bgp router-id 192.0.2.1\n no bgp ebgp-requires-policy\n \
             no bgp network import-check\n\
             neighbor 192.0.2.11 remote-as {NODE_AS}\n neighbor 192.0.2.11 timers connect 1\n\
             address-family ipv4 unicast\n  network 100.64.1.0/24\n  network 100.64.2.0/24\n exit-address-family\n\
             address-family ipv6 unicast\n  neighbor 192.0.2.11 activate\n  network 2001:db8:f1::/48\n exit-address-family\n"
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
    let bird = Bird::start(
        &leaf,
        &format!(
            r#"
router id 192.0.2.1;
protocol device {{}}
protocol static s4 {{ ipv4; route 100.64.7.0/24 blackhole; }}
protocol bgp node {{
  local 192.0.2.1 as 65002;
  neighbor 192.0.2.11 as {NODE_AS};
  connect delay time 1; connect retry time 2; error wait time 1, 5;
  ipv4 {{ import all; export all; }};
}}
"#
        ),
    )?;
    let agent = Agent::start(
        &node,
        &node_config(
            r#"
[[peer]]
name = "leaf2"
address = "192.0.2.1"
remote-asn = 65002
import = "accept-all"
export = "accept-all"
families = ["ipv4-unicast"]
"#,
        ),
    )?;
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
    Ok(())
}
