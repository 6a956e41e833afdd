//! The node's own addresses go to its kernel whatever the peers advertise.
//!
//! node (bgp-ctl) --n0-- leaf (FRR)
//!
//! The leaf sends a default route (0.0.0.0/0 and ::/0), the uplink's subnets and a /32
//! for the node's own session address, over sessions with GTSM (TTL 255, as in the
//! reference fabric, so the program's TTL check does not hand the keepalives to the
//! kernel by luck) and hold time 9 s. The sessions must stay Established well past the
//! hold time with the node's keepalive traffic counted as `pass_local`; addresses added
//! to and removed from the node follow; a daemon killed and restarted finds the local
//! entries still in the pinned maps and drops the one of an address removed meanwhile.

use std::{
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use ipnet::IpNet;
use lab::{
    Netns,
    agent::Agent,
    configs::{self, NODE_AS},
    frr::{Frr, FrrOptions},
    wait_until,
};
use serde_json::Value;

const LEAF_AS: u32 = 65001;
const TIMEOUT: Duration = Duration::from_secs(60);
/// Longer than the hold time (9 s) plus a keepalive interval.
const WATCH: Duration = Duration::from_secs(13);

fn node_config() -> String {
    configs::node_config(
        NODE_AS,
        &["n0"],
        &format!(
            r#"
[[peer]]
name = "leaf"
address = "192.0.2.1"
remote-asn = {LEAF_AS}
ttl-security = 1
import = "accept-all"
export = "reject-all"
families = ["ipv4-unicast"]
[[peer]]
name = "leaf-v6"
address = "fd00::1"
remote-asn = {LEAF_AS}
ttl-security = 1
import = "accept-all"
export = "reject-all"
families = ["ipv6-unicast"]
"#
        ),
    )
}

fn leaf_config() -> String {
    let mut c = format!(
        "frr defaults traditional\nhostname leaf\nrouter bgp {LEAF_AS}\n bgp router-id 192.0.2.1\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n"
    );
    for n in ["192.0.2.11", "fd00::11"] {
        c += &format!(
            " neighbor {n} remote-as {NODE_AS}\n neighbor {n} timers 3 9\n \
             neighbor {n} timers connect 1\n neighbor {n} ttl-security hops 1\n"
        );
    }
    c += " address-family ipv4 unicast\n  network 192.0.2.0/24\n  network 192.0.2.11/32\n  \
          network 192.0.2.77/32\n  neighbor 192.0.2.11 default-originate\n  \
          no neighbor fd00::11 activate\n exit-address-family\n \
          address-family ipv6 unicast\n  network fd00::/64\n  neighbor fd00::11 activate\n  \
          neighbor fd00::11 default-originate\n exit-address-family\n";
    c
}

/// `show fib PREFIX`: the entry a packet to it matches, if any.
fn fib_entry(agent: &Agent, prefix: &str) -> Result<Option<Value>> {
    Ok(agent.request(&["show", "fib", prefix])?.into_iter().next())
}

/// Whether `show fib ADDR` answers with a local-address entry for exactly `prefix`.
fn is_local_entry(agent: &Agent, addr: &str, prefix: &str) -> Result<bool> {
    Ok(fib_entry(agent, addr)?.is_some_and(|e| {
        e["prefix"] == prefix && e["local_address"] == true && e["members"][0]["kind"] == "local"
    }))
}

fn counter(agent: &Agent, name: &str) -> Result<u64> {
    let stats = agent
        .request(&["show", "stats"])?
        .into_iter()
        .next()
        .context("no stats reply")?;
    stats["counters"]
        .as_array()
        .context("counters")?
        .iter()
        .find(|c| c[0] == name)
        .and_then(|c| c[1].as_u64())
        .with_context(|| format!("no counter {name} in {stats}"))
}

/// Whether the leaf gets an answer to one ping of `addr` (bounded by `-W 1`).
fn leaf_pings(leaf: &Netns, addr: &str) -> bool {
    leaf.exec_output("ping", &["-c", "1", "-W", "1", addr])
        .is_ok_and(|o| o.status.success())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What the node sees, for failure messages.
fn picture(agent: &Agent) -> String {
    format!(
        "show fib:\n{}\nshow stats:\n{}\nshow neighbors:\n{}\ndaemon log tail:\n{}",
        agent.table(&["show", "fib"]).unwrap_or_default(),
        agent.table(&["show", "stats"]).unwrap_or_default(),
        agent.table(&["show", "neighbors"]).unwrap_or_default(),
        tail(&agent.log(), 25)
    )
}

/// Waits until the peer's routes are in the dataplane and forward through the leaf
/// (neighbor resolved): from then on a route that captured the node's own traffic would
/// send it back out.
fn wait_routes_forwarding(agent: &Agent) -> Result<()> {
    let forwards = |prefix: &str| -> Result<bool> {
        Ok(fib_entry(agent, prefix)?.is_some_and(|e| {
            e["prefix"] == prefix
                && e["local_address"] != true
                && e["members"][0]["kind"] == "forward"
        }))
    };
    wait_until(TIMEOUT, Duration::from_millis(200), || {
        Ok(forwards("0.0.0.0/0")?
            && forwards("192.0.2.0/24")?
            && forwards("::/0")?
            && forwards("fd00::/64")?)
    })
    .with_context(|| format!("the leaf's routes never forwarded\n{}", picture(agent)))?;
    Ok(())
}

/// Both sessions stay Established (and are not re-established: their uptime grows) for
/// `WATCH`, and the node's kernel receives their traffic: `pass_local` grows.
fn sessions_hold(agent: &Agent) -> Result<()> {
    let local_before = counter(agent, "pass_local")?;
    let start = Instant::now();
    let mut since = [0u64; 2];
    while start.elapsed() < WATCH {
        for (i, name) in ["leaf", "leaf-v6"].iter().enumerate() {
            let n = agent.neighbor(name)?;
            let up = n["since_secs"].as_u64().unwrap_or(0);
            if n["state"] != "Established" || up < since[i] {
                bail!(
                    "{name} went down {:.1} s into the watch (hold time 9 s): {n}\n{}",
                    start.elapsed().as_secs_f64(),
                    picture(agent)
                );
            }
            since[i] = up;
        }
        sleep(Duration::from_millis(500));
    }
    let local = counter(agent, "pass_local")? - local_before;
    println!(
        "both sessions Established through {:.0} s (hold 9 s), uptimes {since:?} s; pass_local +{local}",
        WATCH.as_secs_f64()
    );
    // Keepalives every 3 s on two sessions, plus their acknowledgements and ND.
    ensure!(
        local >= 6,
        "pass_local grew by {local} only in {WATCH:?}\n{}",
        picture(agent)
    );
    Ok(())
}

#[test]
fn the_nodes_addresses_go_to_the_kernel_under_a_default_route() -> Result<()> {
    let (node, leaf) = lab::node_and_leaf()?;
    let frr = Frr::start_with(
        &leaf,
        &leaf_config(),
        FrrOptions {
            zebra: false,
            ..FrrOptions::default()
        },
    )?;
    let mut agent = Agent::start(&node, &node_config())?;
    agent.wait_established("leaf", TIMEOUT)?;
    agent.wait_established("leaf-v6", TIMEOUT)?;
    wait_routes_forwarding(&agent)?;
    sessions_hold(&agent)?;
    frr.wait_established("192.0.2.11", Duration::from_secs(1))?;
    frr.wait_established("fd00::11", Duration::from_secs(1))?;
    ensure!(
        leaf_pings(&leaf, "192.0.2.11"),
        "the node does not answer the leaf's ping"
    );

    // The node's addresses, and the space that is always its own, are local entries.
    for (addr, prefix) in [
        ("192.0.2.11/32", "192.0.2.11/32"),
        ("fd00::11/128", "fd00::11/128"),
        ("127.0.0.1/32", "127.0.0.1/32"),
        ("255.255.255.255/32", "255.255.255.255/32"),
        ("224.0.0.5/32", "224.0.0.0/4"),
        ("ff02::1:ff00:11/128", "ff00::/8"),
        ("fe80::1/128", "fe80::/10"),
    ] {
        ensure!(
            is_local_entry(&agent, addr, prefix)?,
            "show fib {addr}: {:?}, not the local entry {prefix}\n{}",
            fib_entry(&agent, addr)?,
            picture(&agent)
        );
    }
    // Not Loc-RIB routes: the leaf's /32 for the node's address is there, but the map
    // entry is the local one, listed once.
    let listed = agent
        .request(&["show", "fib"])?
        .into_iter()
        .filter(|e| e["prefix"] == "192.0.2.11/32")
        .count();
    ensure!(
        listed == 1,
        "192.0.2.11/32 listed {listed} times by show fib"
    );
    ensure!(
        agent
            .routes()?
            .iter()
            .any(|r| r["prefix"] == "192.0.2.11/32"),
        "the leaf's route for the node's address is not in the Loc-RIB"
    );

    // An address added later becomes local at once, ahead of the leaf's /32 for it; once
    // removed, the leaf's route is back in its place.
    ensure!(
        fib_entry(&agent, "192.0.2.77/32")?
            .is_some_and(|e| e["prefix"] == "192.0.2.77/32" && e["local_address"] != true),
        "the leaf's route for 192.0.2.77/32 is not installed: {:?}",
        fib_entry(&agent, "192.0.2.77/32")?
    );
    let added = Instant::now();
    node.ip(&["addr", "add", "192.0.2.77/24", "dev", "n0"])?;
    node.ip(&["-6", "addr", "add", "fd00:99::7/128", "dev", "lo"])?;
    wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        Ok(is_local_entry(&agent, "192.0.2.77/32", "192.0.2.77/32")?
            && is_local_entry(&agent, "fd00:99::7/128", "fd00:99::7/128")?)
    })
    .with_context(|| format!("added addresses did not become local\n{}", picture(&agent)))?;
    println!(
        "added addresses local after {:.0} ms",
        added.elapsed().as_secs_f64() * 1e3
    );
    let answered = wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        Ok(leaf_pings(&leaf, "192.0.2.77"))
    });
    ensure!(
        answered.is_ok(),
        "the node does not answer pings to its added address\n{}",
        picture(&agent)
    );
    node.ip(&["addr", "del", "192.0.2.77/24", "dev", "n0"])?;
    node.ip(&["-6", "addr", "del", "fd00:99::7/128", "dev", "lo"])?;
    wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        let v4 = fib_entry(&agent, "192.0.2.77/32")?;
        let v6 = fib_entry(&agent, "fd00:99::7/128")?;
        Ok(v4.is_some_and(|e| {
            e["prefix"] == "192.0.2.77/32"
                && e["local_address"] != true
                && e["members"][0]["address"] == "192.0.2.1"
        }) && v6.is_some_and(|e| e["prefix"] == "::/0"))
    })
    .with_context(|| format!("removed addresses stayed local\n{}", picture(&agent)))?;

    // A restart: the pinned maps keep the local entries while no daemon runs; an address
    // removed meanwhile loses its entry once the new daemon has the kernel's list.
    node.ip(&["addr", "add", "192.0.2.88/24", "dev", "n0"])?;
    wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        is_local_entry(&agent, "192.0.2.88/32", "192.0.2.88/32")
    })?;
    agent.kill()?;
    {
        let fib = bgp_ctl::fib::Fib::open(agent.pins.path())?;
        for p in [
            "192.0.2.11/32",
            "192.0.2.88/32",
            "fd00::11/128",
            "fe80::/10",
        ] {
            ensure!(
                fib.is_local(&p.parse::<IpNet>()?),
                "{p} is not a local entry in the pinned maps after the daemon died"
            );
        }
        ensure!(
            !fib.prefixes().any(|p| fib.is_local(&p)),
            "local entries were adopted as routes"
        );
    }
    node.ip(&["addr", "del", "192.0.2.88/24", "dev", "n0"])?;
    agent.restart()?;
    wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        Ok(is_local_entry(&agent, "192.0.2.11/32", "192.0.2.11/32")?
            && !is_local_entry(&agent, "192.0.2.88/32", "192.0.2.88/32")?)
    })
    .with_context(|| format!("after the restart\n{}", picture(&agent)))?;
    let stats = agent.request(&["show", "stats"])?;
    let routes = stats[0]["tables"]["routes"].as_u64().unwrap_or(0);
    ensure!(
        routes <= 6,
        "{routes} routes after the restart: local entries counted as routes?"
    );
    agent.wait_established("leaf", TIMEOUT)?;
    agent.wait_established("leaf-v6", TIMEOUT)?;
    ensure!(
        leaf_pings(&leaf, "192.0.2.11"),
        "no answer after the restart"
    );
    Ok(())
}
