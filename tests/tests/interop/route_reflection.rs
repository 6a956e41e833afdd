//! Route reflection (RFC 4456): our daemon in AS 65000 reflects between two iBGP clients,
//! FRR (leaf1) and BIRD (leaf2), each behind its own uplink. A route from one reaches the
//! other with ORIGINATOR_ID (the originator's router id) and CLUSTER_LIST (our router
//! id), and its next hop unchanged.

use super::*;

const AS: u32 = 65000;
const FROM_FRR: &str = "100.64.81.0/24";
const FROM_BIRD: &str = "100.64.82.0/24";

#[test]
fn route_reflection_between_frr_and_bird_clients() -> Result<()> {
    let (node, leaf1, leaf2) = node_with_two_leaves()?;
    // Each client reaches the other's next hop through the node.
    leaf1.ip(&["route", "add", "198.51.100.0/24", "via", "192.0.2.11"])?;
    let frr = Frr::start(
        &leaf1,
        &format!(
            "frr defaults traditional\nhostname leaf1\n\
             router bgp {AS}\n bgp router-id 192.0.2.1\n no bgp network import-check\n \
             neighbor 192.0.2.11 remote-as {AS}\n neighbor 192.0.2.11 timers connect 1\n\
             address-family ipv4 unicast\n  network {FROM_FRR}\n exit-address-family\n"
        ),
    )?;
    let bird = Bird::start(
        &leaf2,
        &format!(
            r#"
router id 198.51.100.1;
protocol device {{}}
protocol static s4 {{
  ipv4;
  route {FROM_BIRD} blackhole;
  route 192.0.2.0/24 via 198.51.100.11;
}}
protocol bgp node {{
  local 198.51.100.1 as {AS};
  neighbor 198.51.100.11 as {AS};
  connect delay time 1; connect retry time 2; error wait time 1, 5;
  ipv4 {{ import all; export where net = {FROM_BIRD}; next hop self; }};
}}
"#
        ),
    )?;
    let agent = Agent::start(
        &node,
        &node_config_with(
            AS,
            &["n0", "n1"],
            r#"
[[peer]]
name = "leaf1"
address = "192.0.2.1"
remote-asn = 65000
route-reflector-client = true
families = ["ipv4-unicast"]
[[peer]]
name = "leaf2"
address = "198.51.100.1"
remote-asn = 65000
route-reflector-client = true
families = ["ipv4-unicast"]
"#,
        ),
    )?;
    agent.wait_established("leaf1", TIMEOUT)?;
    agent.wait_established("leaf2", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        Ok(has_route(&agent, FROM_FRR, "leaf1")? && has_route(&agent, FROM_BIRD, "leaf2")?)
    })
    .with_context(|| format!("routes from both clients: {:#?}", agent.routes()))?;

    // FRR's route at BIRD.
    let mut text = String::new();
    wait_until(TIMEOUT, POLL, || {
        text = bird.birdc(&format!("show route all {FROM_FRR}"))?;
        Ok(text.contains("BGP.cluster_list"))
    })
    .with_context(|| format!("{FROM_FRR} reflected to BIRD: {text}"))?;
    let attr = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_default()
    };
    ensure!(
        attr("BGP.originator_id:") == "192.0.2.1",
        "ORIGINATOR_ID at BIRD should be FRR's router id: {text}"
    );
    ensure!(
        attr("BGP.cluster_list:") == "192.0.2.11",
        "CLUSTER_LIST at BIRD should be our router id: {text}"
    );
    ensure!(
        attr("BGP.next_hop:") == "192.0.2.1",
        "next hop unchanged by reflection: {text}"
    );
    ensure!(
        attr("BGP.as_path:").is_empty(),
        "iBGP reflection adds no AS: {text}"
    );

    // BIRD's route at FRR.
    let mut path = Value::Null;
    wait_until(TIMEOUT, POLL, || {
        let json = frr.vtysh_json(&format!("show bgp ipv4 unicast {FROM_BIRD} json"))?;
        path = json["paths"]
            .as_array()
            .and_then(|p| p.first())
            .cloned()
            .unwrap_or(Value::Null);
        Ok(!path.is_null())
    })
    .with_context(|| format!("{FROM_BIRD} reflected to FRR"))?;
    ensure!(
        path["originatorId"] == "198.51.100.1",
        "ORIGINATOR_ID at FRR should be BIRD's router id: {path:#}"
    );
    ensure!(
        path["clusterList"]["list"] == serde_json::json!(["192.0.2.11"]),
        "CLUSTER_LIST at FRR should be our router id: {path:#}"
    );
    ensure!(
        path["nexthops"][0]["ip"] == "198.51.100.1",
        "next hop unchanged by reflection: {path:#}"
    );
    Ok(())
}
