//! Graceful restart (RFC 4724), helper side: FRR's bgpd is killed (no NOTIFICATION, as
//! in a crash); we keep its routes, marked stale, in the Loc-RIB and the FIB; FRR comes
//! back with one network fewer; after its End-of-RIB no stale path remains and the
//! route it no longer has is gone. A scripted peer covers the timing FRR decides itself.

use bgp_wire::{GracefulRestart, GracefulRestartFamily};
use ipnet::IpNet;
use lab::scripted_peer;

use super::{raw_update as raw, *};

fn frr_config(networks: &[&str]) -> String {
    let networks: String = networks
        .iter()
        .map(|n| format!("  network {n}\n"))
        .collect();
    frr_leaf(&format!(
        " bgp graceful-restart\n bgp graceful-restart preserve-fw-state\n\
             address-family ipv4 unicast\n{networks} exit-address-family\n"
    ))
}

/// Whether `prefix` has a path from leaf1, and whether it is stale.
fn leaf_path(agent: &Agent, prefix: &str) -> Result<Option<bool>> {
    Ok(path(agent, prefix, "leaf1")?.map(|p| p["stale"] == true))
}

fn in_fib(agent: &Agent, prefix: &str) -> Result<bool> {
    Ok(agent
        .request(&["show", "fib", prefix])?
        .iter()
        .any(|f| f["type"] == "fib" && f["prefix"] == prefix))
}

#[test]
fn graceful_restart_keeps_frr_routes_stale_until_end_of_rib() -> Result<()> {
    let (node, leaf) = pair()?;
    let (kept, dropped) = ("100.64.1.0/24", "100.64.2.0/24");
    let mut frr = Frr::start(&leaf, &frr_config(&[kept, dropped]))?;
    let agent = Agent::start(&node, &node_config(LEAF1_PEER))?;
    agent.wait_established("leaf1", TIMEOUT)?;
    frr.wait_established("192.0.2.11", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        Ok(leaf_path(&agent, kept)? == Some(false) && leaf_path(&agent, dropped)? == Some(false))
    })
    .with_context(|| format!("routes from FRR: {:#?}", agent.routes()))?;
    let detail = neighbor_detail(&agent, "leaf1")?;
    ensure!(
        detail["capabilities_received"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c
                .as_str()
                .is_some_and(|c| c.starts_with("graceful-restart")))),
        "FRR advertises graceful restart: {detail}"
    );

    // bgpd dies: the session drops without a NOTIFICATION; its routes stay, stale.
    frr.kill_bgpd()?;
    wait_until(TIMEOUT, POLL, || {
        Ok(agent.neighbor_state("leaf1")? != "Established")
    })
    .context("session down after bgpd was killed")?;
    wait_until(TIMEOUT, POLL, || {
        Ok(leaf_path(&agent, kept)? == Some(true) && leaf_path(&agent, dropped)? == Some(true))
    })
    .with_context(|| format!("stale routes kept: {:#?}", agent.routes()))?;
    ensure!(
        in_fib(&agent, kept)? && in_fib(&agent, dropped)?,
        "stale routes stay in the FIB: {:?}",
        agent.request(&["show", "fib"])
    );
    let detail = neighbor_detail(&agent, "leaf1")?;
    ensure!(
        detail["graceful_restart"].is_string(),
        "show neighbor says the peer is restarting: {detail}"
    );

    // bgpd comes back without `dropped`: after its End-of-RIB only `kept` remains, fresh.
    frr.set_config(&frr_config(&[kept]))?;
    frr.start_bgpd()?;
    agent.wait_established("leaf1", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        Ok(leaf_path(&agent, kept)? == Some(false) && leaf_path(&agent, dropped)?.is_none())
    })
    .with_context(|| {
        format!(
            "after End-of-RIB: {:#?}\ndaemon log:\n{}",
            agent.routes(),
            agent.log()
        )
    })?;
    let stale: Vec<Value> = agent
        .routes()?
        .into_iter()
        .filter(|r| {
            r["paths"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["stale"] == true))
        })
        .collect();
    ensure!(stale.is_empty(), "stale paths remain: {stale:#?}");
    ensure!(
        agent
            .log()
            .matches("peer leaf1: End-of-RIB ipv4-unicast")
            .count()
            >= 2,
        "End-of-RIB before and after the restart:\n{}",
        agent.log()
    );
    wait_until(TIMEOUT, POLL, || {
        Ok(in_fib(&agent, kept)? && !in_fib(&agent, dropped)?)
    })
    .with_context(|| {
        format!(
            "FIB after the restart: {:?}",
            agent.request(&["show", "fib"])
        )
    })?;
    Ok(())
}

/// The scripted peer's graceful restart capability: IPv4 unicast with the F bit as given.
fn gr_capability(restarting: bool, forwarding_preserved: bool) -> Capability {
    Capability::GracefulRestart(GracefulRestart {
        restarting,
        notification: false,
        restart_time: 120,
        families: vec![GracefulRestartFamily {
            family: bgp_wire::Family::IPV4_UNICAST,
            forwarding_preserved,
        }],
    })
}

/// What FRR does not let a test choose: when the restarted peer's End-of-RIB comes, and
/// whether its new OPEN says it preserved forwarding. A scripted peer (AS 65099) restarts
/// three times: (1) F bit set: its routes stay stale until End-of-RIB, re-announced ones
/// are fresh at once; (2) F bit clear, (3) no graceful restart capability: stale routes go
/// as soon as the session is back (RFC 4724 4.2), without waiting for End-of-RIB.
#[test]
fn graceful_restart_with_a_scripted_peer_follows_end_of_rib_and_the_f_bit() -> Result<()> {
    let (node, leaf) = pair()?;
    let agent = Agent::start(
        &node,
        &node_config(
            r#"
[[peer]]
name = "tester"
address = "192.0.2.1"
remote-asn = 65099
passive = true
import = "accept-all"
export = "accept-all"
families = ["ipv4-unicast"]
"#,
        ),
    )?;
    let asn = 65099;
    let announce = |peer: &ScriptedPeer, prefixes: &[&str]| -> Result<()> {
        let nets: Vec<IpNet> = prefixes
            .iter()
            .map(|p| p.parse())
            .collect::<Result<_, _>>()?;
        peer.announce(
            &scripted_peer::attributes(asn, &[]),
            SCRIPTED_ADDR.into(),
            &nets,
        )
    };
    let (pa, pb) = ("100.64.91.0/24", "100.64.92.0/24");
    let state = |prefix: &str| -> Result<Option<bool>> {
        Ok(path(&agent, prefix, "tester")?.map(|p| p["stale"] == true))
    };
    let wait = |what: &str, ready: &dyn Fn() -> Result<bool>| {
        wait_until(TIMEOUT, POLL, ready).with_context(|| {
            format!(
                "{what}: {:#?}\ndaemon log:\n{}",
                agent.routes(),
                agent.log()
            )
        })
    };

    let peer = scripted_peer(&leaf, asn, vec![gr_capability(false, true)])?;
    announce(&peer, &[pa, pb])?;
    peer.send(&raw::end_of_rib())?;
    wait("both routes", &|| {
        Ok(state(pa)? == Some(false) && state(pb)? == Some(false))
    })?;

    // (1) Restart with the F bit: stale until End-of-RIB.
    peer.close()?;
    wait("both stale", &|| {
        Ok(state(pa)? == Some(true) && state(pb)? == Some(true))
    })?;
    let peer = scripted_peer(&leaf, asn, vec![gr_capability(true, true)])?;
    agent.wait_established("tester", TIMEOUT)?;
    announce(&peer, &[pa])?;
    wait(
        "re-announced route fresh",
        &|| Ok(state(pa)? == Some(false)),
    )?;
    ensure!(
        state(pb)? == Some(true),
        "{pb} must stay stale until End-of-RIB: {:#?}",
        agent.routes()
    );
    peer.send(&raw::end_of_rib())?;
    wait("End-of-RIB sweeps the stale route", &|| {
        Ok(state(pa)? == Some(false) && state(pb)?.is_none())
    })?;

    // (2) Restart without the F bit: the stale route goes when the session is back.
    peer.close()?;
    wait("stale again", &|| Ok(state(pa)? == Some(true)))?;
    let peer = scripted_peer(&leaf, asn, vec![gr_capability(true, false)])?;
    agent.wait_established("tester", TIMEOUT)?;
    wait(
        "F bit clear: stale routes removed without End-of-RIB",
        &|| Ok(state(pa)?.is_none()),
    )?;

    // (3) Restart without the capability at all: the same.
    announce(&peer, &[pb])?;
    wait("announced", &|| Ok(state(pb)? == Some(false)))?;
    peer.close()?;
    wait("stale", &|| Ok(state(pb)? == Some(true)))?;
    let _peer = scripted_peer(&leaf, asn, vec![])?;
    agent.wait_established("tester", TIMEOUT)?;
    wait(
        "no capability: stale routes removed without End-of-RIB",
        &|| Ok(state(pb)?.is_none()),
    )?;
    Ok(())
}

/// BIRD killed and started again: its routes stay, stale, while it is away. It comes back
/// without the F bit (it was not started in recovery mode, `bird -R`), so they are
/// replaced at once by what it announces anew, and no stale path remains.
#[test]
fn graceful_restart_keeps_bird_routes_while_it_is_away() -> Result<()> {
    let (node, leaf) = pair()?;
    let networks = ["100.64.7.0/24", "100.64.8.0/24"];
    let mut bird = Bird::start(&leaf, &bird_config(&networks, "graceful restart on;"))?;
    let agent = Agent::start(&node, &node_config(&bird_peer("")))?;
    agent.wait_established("leaf2", TIMEOUT)?;
    let state = |prefix: &str| -> Result<Option<bool>> {
        Ok(path(&agent, prefix, "leaf2")?.map(|p| p["stale"] == true))
    };
    wait_until(TIMEOUT, POLL, || {
        Ok(networks
            .iter()
            .all(|n| state(n).ok().flatten() == Some(false)))
    })
    .with_context(|| format!("routes from BIRD: {:#?}", agent.routes()))?;

    bird.kill()?;
    wait_until(TIMEOUT, POLL, || {
        Ok(networks
            .iter()
            .all(|n| state(n).ok().flatten() == Some(true)))
    })
    .with_context(|| format!("BIRD's routes kept stale: {:#?}", agent.routes()))?;
    ensure!(
        networks.iter().all(|n| in_fib(&agent, n).unwrap_or(false)),
        "stale routes stay in the FIB: {:?}",
        agent.request(&["show", "fib"])
    );

    bird.start_again()?;
    agent.wait_established("leaf2", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        Ok(networks
            .iter()
            .all(|n| state(n).ok().flatten() == Some(false)))
    })
    .with_context(|| {
        format!(
            "BIRD's routes fresh again: {:#?}\n{}",
            agent.routes(),
            agent.log()
        )
    })?;
    ensure!(
        agent
            .log()
            .contains("peer 192.0.2.1: back without forwarding state for ipv4-unicast"),
        "BIRD's new OPEN has no F bit: the stale routes went at once:\n{}",
        agent.log()
    );
    Ok(())
}
