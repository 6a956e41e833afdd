//! RFC 7606 against a scripted peer (AS 65099 at 192.0.2.1) sending crafted UPDATEs:
//! each malformation gets the action the RFC assigns, and the session survives every
//! one but the last.
//!
//! (a) ORIGIN value 7 (7.1), (b) COMMUNITIES of 3 octets (7.8), (f) ORIGIN missing
//! while routes are announced (3.d): treat-as-withdraw, so a prefix announced before
//! leaves our Loc-RIB; (c) AGGREGATOR of 5 octets (7.7): attribute discard, the prefix is
//! accepted; (d) MULTI_EXIT_DISC twice (3.g): the first is kept; (e) an NLRI prefix cut
//! short (5.3): session reset with UPDATE Message Error / Invalid Network Field (3/10).

use ipnet::{IpNet, Ipv4Net};
use lab::scripted_peer;

use super::{raw_update as raw, *};

const PEER_AS: u32 = 65099;
const PEER_ADDR: Ipv4Addr = SCRIPTED_ADDR;

fn net(third: u8) -> (Ipv4Addr, String) {
    let a = Ipv4Addr::new(100, 64, third, 0);
    (a, format!("{a}/24"))
}

/// A well-formed UPDATE announcing the /24s at `prefixes`.
fn announce(peer: &ScriptedPeer, prefixes: &[Ipv4Addr]) -> Result<()> {
    let nets: Vec<IpNet> = prefixes
        .iter()
        .map(|p| Ipv4Net::new(*p, 24).map(IpNet::V4))
        .collect::<Result<_, _>>()?;
    peer.announce(
        &scripted_peer::attributes(PEER_AS, &[]),
        PEER_ADDR.into(),
        &nets,
    )
}

fn present(agent: &Agent, prefix: &str) -> Result<bool> {
    Ok(path(agent, prefix, "tester")?.is_some())
}

/// Waits until `prefix` is there (or gone), with the session still Established.
fn wait_for(agent: &Agent, prefix: &str, there: bool, case: &str) -> Result<()> {
    wait_until(TIMEOUT, POLL, || Ok(present(agent, prefix)? == there)).with_context(|| {
        format!(
            "case {case}: {prefix} should be {}; routes {:#?}\ndaemon log:\n{}",
            if there { "accepted" } else { "withdrawn" },
            agent.routes(),
            agent.log()
        )
    })?;
    let state = agent.neighbor_state("tester")?;
    ensure!(state == "Established", "case {case}: session {state}");
    Ok(())
}

/// How many times the daemon logged the RFC 7606 finding `finding` (`action attribute`).
fn findings(agent: &Agent, finding: &str) -> usize {
    agent
        .log()
        .lines()
        .filter(|l| l.contains("peer tester: RFC 7606:") && l.contains(finding))
        .count()
}

#[test]
fn rfc7606_malformed_updates_from_a_scripted_peer() -> Result<()> {
    let (node, leaf) = pair()?;
    let agent = Agent::start(
        &node,
        &node_config(&format!(
            r#"
[[peer]]
name = "tester"
address = "{PEER_ADDR}"
remote-asn = {PEER_AS}
passive = true
import = "accept-all"
export = "accept-all"
families = ["ipv4-unicast"]
"#
        )),
    )?;
    let peer = scripted_peer(&leaf, PEER_AS, Vec::new())?;
    agent.wait_established("tester", TIMEOUT)?;

    let (a, pa) = net(71);
    let (b, pb) = net(72);
    let (c, pc) = net(73);
    let (d, pd) = net(74);
    let (f, pf) = net(76);
    // The prefixes that malformed UPDATEs will withdraw, announced properly first.
    announce(&peer, &[a, b, f])?;
    for p in [&pa, &pb, &pf] {
        wait_for(&agent, p, true, "well-formed")?;
    }

    // (a) ORIGIN 7: treat-as-withdraw.
    let attrs = [
        raw::origin(7),
        raw::as_path(&[PEER_AS]),
        raw::next_hop(PEER_ADDR),
    ]
    .concat();
    peer.send(&raw::update(&[], &attrs, &raw::prefix(a, 24)))?;
    wait_for(&agent, &pa, false, "a (ORIGIN 7)")?;
    ensure!(
        findings(&agent, "TreatAsWithdraw Origin") == 1,
        "a: finding logged once:\n{}",
        agent.log()
    );

    // (b) COMMUNITIES of 3 octets: treat-as-withdraw.
    let attrs = [
        raw::origin(0),
        raw::as_path(&[PEER_AS]),
        raw::next_hop(PEER_ADDR),
        raw::communities(&[0xfd, 0xe8, 0x00]),
    ]
    .concat();
    peer.send(&raw::update(&[], &attrs, &raw::prefix(b, 24)))?;
    wait_for(&agent, &pb, false, "b (COMMUNITIES length 3)")?;
    ensure!(
        findings(&agent, "TreatAsWithdraw Communities") == 1,
        "b: finding logged once:\n{}",
        agent.log()
    );

    // (c) AGGREGATOR of 5 octets: attribute discard, the route is used.
    let attrs = [
        raw::origin(0),
        raw::as_path(&[PEER_AS]),
        raw::next_hop(PEER_ADDR),
        raw::aggregator(&[0, 0, 0xfe, 0x4b, 10]),
    ]
    .concat();
    peer.send(&raw::update(&[], &attrs, &raw::prefix(c, 24)))?;
    wait_for(&agent, &pc, true, "c (AGGREGATOR length 5)")?;
    ensure!(
        findings(&agent, "AttributeDiscard Aggregator") == 1,
        "c: finding logged once:\n{}",
        agent.log()
    );

    // (d) MED 10 then MED 20: the first is kept.
    let attrs = [
        raw::origin(0),
        raw::as_path(&[PEER_AS]),
        raw::next_hop(PEER_ADDR),
        raw::med(10),
        raw::med(20),
    ]
    .concat();
    peer.send(&raw::update(&[], &attrs, &raw::prefix(d, 24)))?;
    wait_for(&agent, &pd, true, "d (MED twice)")?;
    let p = path(&agent, &pd, "tester")?.context("path gone")?;
    ensure!(p["med"] == 10, "the first MED is kept: {p}");
    ensure!(
        findings(&agent, "AttributeDiscard Med") == 1,
        "d: the second MED discarded:\n{}",
        agent.log()
    );

    // (f) no ORIGIN while announcing: treat-as-withdraw.
    let attrs = [raw::as_path(&[PEER_AS]), raw::next_hop(PEER_ADDR)].concat();
    peer.send(&raw::update(&[], &attrs, &raw::prefix(f, 24)))?;
    wait_for(&agent, &pf, false, "f (ORIGIN missing)")?;
    ensure!(
        findings(&agent, "TreatAsWithdraw Origin") == 2,
        "f: a second ORIGIN finding:\n{}",
        agent.log()
    );
    // Everything so far left the session up and the other routes in place.
    ensure!(
        present(&agent, &pc)? && present(&agent, &pd)?,
        "routes of earlier cases are kept: {:#?}",
        agent.routes()
    );
    let n = agent.neighbor("tester")?;
    ensure!(n["state"] == "Established", "{n}");

    // (e) NLRI prefix /24 with one octet of address: session reset, 3/10.
    let attrs = [
        raw::origin(0),
        raw::as_path(&[PEER_AS]),
        raw::next_hop(PEER_ADDR),
    ]
    .concat();
    peer.send(&raw::update(&[], &attrs, &[24, 100]))?;
    let mut n = None;
    wait_until(TIMEOUT, POLL, || {
        n = peer.notification();
        Ok(n.is_some())
    })
    .with_context(|| format!("no NOTIFICATION for the scripted peer: {:?}", peer.check()))?;
    let n = n.context("NOTIFICATION gone")?;
    ensure!(
        n.code.code() == (3, 10),
        "expected UPDATE Message Error/Invalid Network Field (3/10), got {n} ({:?})",
        n.code
    );
    let mut summary = Value::Null;
    wait_until(TIMEOUT, POLL, || {
        summary = agent.neighbor("tester")?;
        Ok(summary["state"] != "Established" && !present(&agent, &pc)? && !present(&agent, &pd)?)
    })
    .with_context(|| {
        format!(
            "session down, its routes gone: {summary} {:#?}",
            agent.routes()
        )
    })?;
    ensure!(
        summary["last_error"].as_str().is_some_and(
            |e| e.starts_with("sent NOTIFICATION UPDATE Message Error/Invalid Network Field")
        ),
        "last error: {summary}"
    );
    Ok(())
}
