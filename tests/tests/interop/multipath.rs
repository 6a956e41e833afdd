//! Multipath from two peers: FRR (leaf1, AS 65001) and BIRD (leaf2, AS 65002), each
//! behind its own uplink, advertise the same prefix with AS paths of equal length. With
//! `relax-as-path` both paths form one ECMP set and one FIB group of two members;
//! without it (the default: different neighbor ASes) one path is used.

use super::*;

const PREFIX: &str = "100.64.50.0/24";

fn config(relax: bool) -> String {
    node_config_with(
        NODE_AS,
        &["n0", "n1"],
        &format!(
            r#"
[multipath]
relax-as-path = {relax}
{LEAF1_PEER}[[peer]]
name = "leaf2"
address = "198.51.100.1"
remote-asn = 65002
import = "accept-all"
export = "accept-all"
families = ["ipv4-unicast"]
"#
        ),
    )
}

/// The paths to [`PREFIX`] once both leaves' are there.
fn both_paths(agent: &Agent) -> Result<Vec<Value>> {
    let mut paths = Vec::new();
    wait_until(TIMEOUT, POLL, || {
        paths = agent
            .request(&["show", "routes", PREFIX])?
            .into_iter()
            .filter(|r| r["prefix"] == PREFIX)
            .flat_map(|r| r["paths"].as_array().cloned().unwrap_or_default())
            .collect();
        Ok(["leaf1", "leaf2"]
            .iter()
            .all(|n| paths.iter().any(|p| p["from"] == *n)))
    })
    .with_context(|| format!("both paths to {PREFIX}: {:#?}", agent.routes()))?;
    Ok(paths)
}

/// The FIB entry of [`PREFIX`].
fn fib(agent: &Agent) -> Result<Option<Value>> {
    Ok(agent
        .request(&["show", "fib", PREFIX])?
        .into_iter()
        .find(|f| f["type"] == "fib" && f["prefix"] == PREFIX))
}

fn members(entry: &Value) -> Vec<Value> {
    entry["members"].as_array().cloned().unwrap_or_default()
}

#[test]
fn multipath_from_frr_and_bird_needs_relax_as_path() -> Result<()> {
    let (node, leaf1, leaf2) = node_with_two_leaves()?;
    let _frr = Frr::start(
        &leaf1,
        &configs::frr_leaf(
            "leaf1",
            65001,
            "192.0.2.11",
            NODE_AS,
            &format!("address-family ipv4 unicast\n  network {PREFIX}\n exit-address-family\n"),
        ),
    )?;
    let _bird = Bird::start(
        &leaf2,
        &format!(
            r#"
router id 198.51.100.1;
protocol device {{}}
protocol static s4 {{ ipv4; route {PREFIX} blackhole; }}
protocol bgp node {{
  local 198.51.100.1 as 65002;
  neighbor 198.51.100.11 as {NODE_AS};
  connect delay time 1; connect retry time 2; error wait time 1, 5;
  ipv4 {{ import all; export filter {{ bgp_origin = ORIGIN_IGP; accept; }}; }};
}}
"#
        ),
    )?;

    // Default: paths from different neighbor ASes are not equal; one is used.
    {
        let agent = Agent::start(&node, &config(false))?;
        let paths = both_paths(&agent)?;
        ensure!(
            paths.iter().filter(|p| p["best"] == true).count() == 1,
            "one best path: {paths:#?}"
        );
        ensure!(
            paths.iter().filter(|p| p["multipath"] == true).count() <= 1,
            "no ECMP set without relax-as-path: {paths:#?}"
        );
        wait_until(TIMEOUT, POLL, || Ok(fib(&agent)?.is_some())).with_context(|| {
            format!("{PREFIX} in the FIB: {:?}", agent.request(&["show", "fib"]))
        })?;
        let entry = fib(&agent)?.context("FIB entry gone")?;
        ensure!(members(&entry).len() == 1, "one member: {entry:#}");
    }

    // relax-as-path: both paths in the set, one group with both leaves.
    let agent = Agent::start(&node, &config(true))?;
    let mut paths = both_paths(&agent)?;
    wait_until(TIMEOUT, POLL, || {
        paths = both_paths(&agent)?;
        Ok(paths.iter().all(|p| p["multipath"] == true))
    })
    .with_context(|| format!("both paths multipath: {paths:#?}"))?;
    ensure!(
        paths.iter().filter(|p| p["best"] == true).count() == 1,
        "still one best path: {paths:#?}"
    );
    let macs = [leaf1.link("l0")?.mac, leaf2.link("l0")?.mac].map(|m| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    });
    let mut entry = Value::Null;
    wait_until(TIMEOUT, POLL, || {
        entry = fib(&agent)?.unwrap_or(Value::Null);
        let m = members(&entry);
        Ok(m.len() == 2
            && m.iter().all(|x| x["kind"] == "forward")
            && macs.iter().all(|mac| {
                m.iter()
                    .any(|x| x["dst_mac"].as_str() == Some(mac.as_str()))
            }))
    })
    .with_context(|| format!("one group, both leaves resolved ({macs:?}): {entry:#}"))?;
    let mut addrs: Vec<String> = members(&entry)
        .iter()
        .filter_map(|m| m["address"].as_str().map(str::to_owned))
        .collect();
    addrs.sort_unstable();
    ensure!(
        addrs == ["192.0.2.1", "198.51.100.1"],
        "members are the two leaves: {entry:#}"
    );
    Ok(())
}
