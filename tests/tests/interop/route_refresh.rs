//! Route refresh (RFC 2918): `clear bgp 192.0.2.11 soft in` makes FRR send a
//! ROUTE-REFRESH; we answer by sending our routes again (and End-of-RIB).

use super::*;

/// FRR's message counters for our session (`messageStats` of `show bgp neighbors`).
fn frr_stats(frr: &Frr) -> Result<Value> {
    let json = frr.vtysh_json("show bgp neighbors 192.0.2.11 json")?;
    json["192.0.2.11"]
        .get("messageStats")
        .cloned()
        .with_context(|| format!("no messageStats: {json}"))
}

fn count(stats: &Value, key: &str) -> Result<u64> {
    stats[key]
        .as_u64()
        .with_context(|| format!("no {key} in {stats}"))
}

#[test]
fn route_refresh_from_frr_is_answered_with_our_routes() -> Result<()> {
    let (node, leaf) = pair()?;
    let frr = Frr::start(
        &leaf,
        &frr_leaf("address-family ipv4 unicast\n  network 100.64.1.0/24\n exit-address-family\n"),
    )?;
    let agent = Agent::start(&node, &node_config(LEAF1_PEER))?;
    agent.wait_established("leaf1", TIMEOUT)?;
    frr.wait_established("192.0.2.11", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        Ok(frr.routes(Family::Ipv4)?.contains_key("10.244.1.0/24"))
    })
    .with_context(|| format!("FRR's table: {:?}", frr.routes(Family::Ipv4)))?;
    // Our initial UPDATEs and End-of-RIB are in once the counter holds still for 1 s.
    let mut before = frr_stats(&frr)?;
    wait_until(TIMEOUT, Duration::ZERO, || {
        std::thread::sleep(Duration::from_secs(1));
        let now = frr_stats(&frr)?;
        let still = count(&now, "updatesRecv")? == count(&before, "updatesRecv")?;
        before = now;
        Ok(still)
    })?;
    let ours_before = neighbor_detail(&agent, "leaf1")?;

    frr.vtysh("clear bgp 192.0.2.11 soft in")?;
    let mut after = Value::Null;
    wait_until(TIMEOUT, POLL, || {
        after = frr_stats(&frr)?;
        Ok(
            count(&after, "routeRefreshSent")? > count(&before, "routeRefreshSent")?
                && count(&after, "updatesRecv")? > count(&before, "updatesRecv")?,
        )
    })
    .with_context(|| {
        format!(
            "FRR sent a ROUTE-REFRESH and received UPDATEs again: before {before}, after {after}\ndaemon log:\n{}",
            agent.log()
        )
    })?;
    let ours = neighbor_detail(&agent, "leaf1")?;
    let refreshes = |d: &Value| d["messages_received"]["route_refresh"].as_u64();
    ensure!(
        refreshes(&ours) > refreshes(&ours_before),
        "we counted no ROUTE-REFRESH: {ours}"
    );
    ensure!(
        ours["summary"]["state"] == "Established",
        "session survived: {ours}"
    );
    ensure!(
        frr.routes(Family::Ipv4)?.contains_key("10.244.1.0/24"),
        "our route stays at FRR"
    );
    Ok(())
}

/// BIRD's `Import updates: received` count for protocol `node`.
fn bird_updates_received(bird: &Bird) -> Result<u64> {
    let text = bird.birdc("show protocols all node")?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Import updates:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no Import updates line: {text}"))
}

#[test]
fn route_refresh_from_bird_is_answered_with_our_routes() -> Result<()> {
    let (node, leaf) = pair()?;
    let bird = Bird::start(&leaf, &bird_config(&["100.64.7.0/24"], ""))?;
    let agent = Agent::start(&node, &node_config(&bird_peer("")))?;
    agent.wait_established("leaf2", TIMEOUT)?;
    bird.wait_established("node", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        Ok(bird.routes("master4")?.contains_key("10.244.1.0/24"))
    })
    .with_context(|| format!("BIRD's table: {:?}", bird.routes("master4")))?;
    let mut before = bird_updates_received(&bird)?;
    wait_until(TIMEOUT, Duration::ZERO, || {
        std::thread::sleep(Duration::from_secs(1));
        let now = bird_updates_received(&bird)?;
        let still = now == before;
        before = now;
        Ok(still)
    })?;
    let ours_before = neighbor_detail(&agent, "leaf2")?;

    // BIRD asks for our routes again (RFC 2918) and re-imports what we send.
    bird.birdc("reload in node")?;
    let refreshes = |d: &Value| d["messages_received"]["route_refresh"].as_u64();
    let mut ours = Value::Null;
    wait_until(TIMEOUT, POLL, || {
        ours = neighbor_detail(&agent, "leaf2")?;
        Ok(refreshes(&ours) > refreshes(&ours_before) && bird_updates_received(&bird)? > before)
    })
    .with_context(|| {
        format!(
            "BIRD's ROUTE-REFRESH answered: we counted {:?} (before {:?}), BIRD received {:?} updates (before {before})",
            refreshes(&ours),
            refreshes(&ours_before),
            bird_updates_received(&bird)
        )
    })?;
    ensure!(
        ours["summary"]["state"] == "Established",
        "session survived: {ours}"
    );
    ensure!(
        bird.routes("master4")?.contains_key("10.244.1.0/24"),
        "our route stays at BIRD"
    );
    Ok(())
}
