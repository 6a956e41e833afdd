//! GTSM (RFC 5082) with FRR: `ttl-security = 1` establishes with a directly connected
//! FRR (`ttl-security hops 1`); with a router in between (TTL 254 on arrival) it never
//! establishes, while `ttl-security = 2` does.

use super::*;

fn frr_config(neighbor_hops: u8, network: &str) -> String {
    frr_leaf(&format!(
        " neighbor 192.0.2.11 ttl-security hops {neighbor_hops}\n\
             address-family ipv4 unicast\n  network {network}\n exit-address-family\n"
    ))
}

fn agent_config(leaf: &str, hops: u8) -> String {
    node_config(&format!(
        r#"
[[peer]]
name = "leaf1"
address = "{leaf}"
remote-asn = 65001
ttl-security = {hops}
import = "accept-all"
export = "accept-all"
families = ["ipv4-unicast"]
"#
    ))
}

#[test]
fn gtsm_with_directly_connected_frr_establishes() -> Result<()> {
    let (node, leaf) = pair()?;
    let frr = Frr::start(&leaf, &frr_config(1, "100.64.1.0/24"))?;
    let agent = Agent::start(&node, &agent_config("192.0.2.1", 1))?;
    agent.wait_established("leaf1", TIMEOUT)?;
    frr.wait_established("192.0.2.11", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        has_route(&agent, "100.64.1.0/24", "leaf1")
    })
    .context("route over the GTSM session")?;
    Ok(())
}

#[test]
fn gtsm_one_hop_refuses_frr_behind_a_router() -> Result<()> {
    lab::require_root()?;
    lab::require_bpffs()?;
    lab::sweep_stale();
    // node n0 192.0.2.11 -- r0 192.0.2.254 router r1 198.51.100.254 -- l0 198.51.100.1 leaf
    let (node, router, leaf) = (Netns::new()?, Netns::new()?, Netns::new()?);
    lab::veth(&node, "n0", &router, "r0")?;
    lab::veth(&router, "r1", &leaf, "l0")?;
    node.ip(&["addr", "add", "192.0.2.11/24", "dev", "n0"])?;
    router.ip(&["addr", "add", "192.0.2.254/24", "dev", "r0"])?;
    router.ip(&["addr", "add", "198.51.100.254/24", "dev", "r1"])?;
    leaf.ip(&["addr", "add", "198.51.100.1/24", "dev", "l0"])?;
    node.ip(&["route", "add", "198.51.100.0/24", "via", "192.0.2.254"])?;
    leaf.ip(&["route", "add", "192.0.2.0/24", "via", "198.51.100.254"])?;
    router.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
    // FRR accepts one router in between (it expects TTL >= 254).
    let frr = Frr::start(&leaf, &frr_config(2, "100.64.1.0/24"))?;

    {
        let agent = Agent::start(&node, &agent_config("198.51.100.1", 1))?;
        never_established(Duration::from_secs(10), || {
            Ok((
                agent.neighbor_state("leaf1")?,
                frr.neighbor_state("192.0.2.11")?,
            ))
        })
        .with_context(|| format!("GTSM 1 hop, peer 2 hops away; daemon log:\n{}", agent.log()))?;
    }

    // The same path with one more hop allowed: the refusal above was GTSM's.
    let agent = Agent::start(&node, &agent_config("198.51.100.1", 2))?;
    agent.wait_established("leaf1", TIMEOUT)?;
    frr.wait_established("192.0.2.11", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        has_route(&agent, "100.64.1.0/24", "leaf1")
    })
    .context("route over the 2-hop GTSM session")?;
    Ok(())
}

#[test]
fn gtsm_with_directly_connected_bird_establishes() -> Result<()> {
    let (node, leaf) = pair()?;
    let bird = Bird::start(&leaf, &bird_config(&["100.64.7.0/24"], "ttl security on;"))?;
    let agent = Agent::start(&node, &node_config(&bird_peer("ttl-security = 1")))?;
    agent.wait_established("leaf2", TIMEOUT)?;
    bird.wait_established("node", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        has_route(&agent, "100.64.7.0/24", "leaf2")
    })
    .context("route over the GTSM session with BIRD")?;
    Ok(())
}
