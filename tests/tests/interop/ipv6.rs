//! IPv6 sessions (fd00::11 <-> fd00::1) with FRR and with BIRD, IPv6 routes both ways,
//! next hops checked on both sides.

use std::net::IpAddr;

use super::*;

/// Our path's next hop as an address.
fn next_hop(path: &Value) -> Option<IpAddr> {
    path["next_hop"].as_str()?.parse().ok()
}

#[test]
fn ipv6_session_with_frr_routes_both_ways() -> Result<()> {
    let (node, leaf) = pair()?;
    let frr = Frr::start(
        &leaf,
        &configs::frr_leaf(
            "leaf",
            65001,
            "fd00::11",
            NODE_AS,
            "address-family ipv4 unicast\n  no neighbor fd00::11 activate\n exit-address-family\n\
             address-family ipv6 unicast\n  neighbor fd00::11 activate\n  \
             network 2001:db8:f1::/48\n  network 2001:db8:f3::/48\n exit-address-family\n",
        ),
    )?;
    let agent = Agent::start(
        &node,
        &node_config(
            r#"
[[peer]]
name = "leaf1"
address = "fd00::1"
remote-asn = 65001
import = "accept-all"
export = "accept-all"
families = ["ipv6-unicast"]
"#,
        ),
    )?;
    agent.wait_established("leaf1", TIMEOUT)?;
    frr.wait_established("fd00::11", TIMEOUT)?;
    let leaf_addr: IpAddr = "fd00::1".parse()?;
    let ours: IpAddr = "fd00::11".parse()?;

    // FRR's routes reach us with FRR's global address as next hop.
    wait_until(TIMEOUT, POLL, || {
        Ok(has_route(&agent, "2001:db8:f1::/48", "leaf1")?
            && has_route(&agent, "2001:db8:f3::/48", "leaf1")?)
    })
    .with_context(|| format!("IPv6 routes from FRR: {:#?}", agent.routes()))?;
    let p = path(&agent, "2001:db8:f1::/48", "leaf1")?.context("path gone")?;
    ensure!(
        next_hop(&p) == Some(leaf_addr),
        "next hop of FRR's route: {p}"
    );

    // Ours reach FRR with our global address as next hop.
    wait_until(TIMEOUT, POLL, || {
        Ok(frr
            .routes(Family::Ipv6)?
            .get("fd00:10:244:1::/64")
            .is_some_and(|nh| nh == &vec![ours]))
    })
    .with_context(|| format!("FRR's IPv6 table: {:?}", frr.routes(Family::Ipv6)))?;

    // Withdrawals both ways.
    frr.configure(&[
        "router bgp 65001",
        "address-family ipv6 unicast",
        "no network 2001:db8:f3::/48",
    ])?;
    wait_until(TIMEOUT, POLL, || {
        Ok(!has_route(&agent, "2001:db8:f3::/48", "leaf1")?)
    })
    .context("IPv6 withdrawal from FRR")?;
    ensure!(
        has_route(&agent, "2001:db8:f1::/48", "leaf1")?,
        "the other IPv6 route went too"
    );
    agent.table(&["route", "add", "fd00:10:244:99::/64"])?;
    wait_until(TIMEOUT, POLL, || {
        Ok(frr
            .routes(Family::Ipv6)?
            .get("fd00:10:244:99::/64")
            .is_some_and(|nh| nh == &vec![ours]))
    })
    .context("IPv6 route add reaching FRR")?;
    agent.table(&["route", "del", "fd00:10:244:99::/64"])?;
    wait_until(TIMEOUT, POLL, || {
        Ok(!frr
            .routes(Family::Ipv6)?
            .contains_key("fd00:10:244:99::/64"))
    })
    .context("IPv6 route del reaching FRR")?;
    // An IPv6-only session: no IPv4 route crossed it.
    ensure!(
        frr.routes(Family::Ipv4)?.is_empty(),
        "IPv4 routes over an IPv6-only session: {:?}",
        frr.routes(Family::Ipv4)
    );
    Ok(())
}

#[test]
fn ipv6_session_with_bird_routes_both_ways() -> Result<()> {
    let (node, leaf) = pair()?;
    let bird = Bird::start(
        &leaf,
        &format!(
            r#"
router id 192.0.2.1;
protocol device {{}}
protocol static s6 {{ ipv6; route 2001:db8:f2::/48 blackhole; }}
protocol bgp node6 {{
  local fd00::1 as 65002;
  neighbor fd00::11 as {NODE_AS};
  connect delay time 1; connect retry time 2; error wait time 1, 5;
  ipv6 {{ import all; export all; }};
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
address = "fd00::1"
remote-asn = 65002
import = "accept-all"
export = "accept-all"
families = ["ipv6-unicast"]
"#,
        ),
    )?;
    agent.wait_established("leaf2", TIMEOUT)?;
    bird.wait_established("node6", TIMEOUT)?;
    let leaf_addr: IpAddr = "fd00::1".parse()?;
    let ours: IpAddr = "fd00::11".parse()?;
    wait_until(TIMEOUT, POLL, || {
        has_route(&agent, "2001:db8:f2::/48", "leaf2")
    })
    .with_context(|| format!("IPv6 routes from BIRD: {:#?}", agent.routes()))?;
    let p = path(&agent, "2001:db8:f2::/48", "leaf2")?.context("path gone")?;
    ensure!(
        next_hop(&p) == Some(leaf_addr),
        "next hop of BIRD's route: {p}"
    );
    wait_until(TIMEOUT, POLL, || {
        Ok(bird
            .routes("master6")?
            .get("fd00:10:244:1::/64")
            .is_some_and(|nh| nh == &vec![ours]))
    })
    .with_context(|| format!("BIRD's IPv6 table: {:?}", bird.routes("master6")))?;
    Ok(())
}
