//! The NOTIFICATIONs we send carry the code and subcode the RFCs assign, read from what
//! FRR logs: Cease/Administrative Shutdown with its shutdown communication (RFC 4486,
//! RFC 9003), Hold Timer Expired (RFC 4271 6.5; FRR cannot receive it through the
//! black hole that causes it, so our own `show neighbor` says it was sent), OPEN Message
//! Error/Bad Peer AS (RFC 4271 6.2).

use super::*;

fn frr_config(local_as: u32) -> String {
    configs::frr_leaf(
        "leaf",
        local_as,
        "192.0.2.11",
        NODE_AS,
        "address-family ipv4 unicast\n  network 100.64.1.0/24\n exit-address-family\n",
    )
}

/// FRR's NOTIFICATIONs from us, once one with `code` has arrived.
fn wait_notification(frr: &Frr, agent: &Agent, code: u8) -> Result<lab::frr::Notification> {
    let mut got = Vec::new();
    wait_until(TIMEOUT, POLL, || {
        got = frr.notifications_received("192.0.2.11")?;
        Ok(got.iter().any(|n| n.code == code))
    })
    .with_context(|| {
        format!(
            "no NOTIFICATION with code {code} at FRR ({got:?}); daemon log:\n{}",
            agent.log()
        )
    })?;
    got.into_iter()
        .find(|n| n.code == code)
        .context("NOTIFICATION gone")
}

#[test]
fn admin_shutdown_sends_cease_6_2_with_the_message() -> Result<()> {
    let (node, leaf) = pair()?;
    let frr = Frr::start(&leaf, &frr_config(65001))?;
    let agent = Agent::start(&node, &node_config(LEAF1_PEER))?;
    agent.wait_established("leaf1", TIMEOUT)?;
    frr.wait_established("192.0.2.11", TIMEOUT)?;

    agent.table(&[
        "neighbor",
        "disable",
        "leaf1",
        "--message",
        "maintenance until 14:00",
    ])?;
    let n = wait_notification(&frr, &agent, 6)?;
    ensure!(
        (n.code, n.subcode) == (6, 2),
        "expected Cease/Administrative Shutdown (6/2): {n:?}"
    );
    ensure!(
        n.detail.contains("maintenance until 14:00"),
        "FRR should log the shutdown communication: {n:?}"
    );
    // Both sides set the graceful restart N-bit: RFC 8538 5 sends it as a Hard Reset.
    ensure!(
        n.hard_reset,
        "Administrative Shutdown as a Hard Reset: {n:?}"
    );
    ensure!(
        agent.neighbor_state("leaf1")? == "Disabled",
        "stays down: {}",
        agent.neighbor("leaf1")?
    );
    let summary = agent.neighbor("leaf1")?;
    ensure!(
        summary["last_error"]
            .as_str()
            .is_some_and(|e| e
                .starts_with("sent NOTIFICATION Cease/Hard Reset (Cease/Administrative Shutdown")),
        "last error: {summary}"
    );

    agent.table(&["neighbor", "enable", "leaf1"])?;
    agent.wait_established("leaf1", TIMEOUT)?;
    Ok(())
}

#[test]
fn hold_timer_expiry_sends_4_0() -> Result<()> {
    let (node, leaf) = pair()?;
    let frr = Frr::start(&leaf, &frr_config(65001))?;
    let agent = Agent::start(&node, &node_config(LEAF1_PEER))?;
    agent.wait_established("leaf1", TIMEOUT)?;
    frr.wait_established("192.0.2.11", TIMEOUT)?;
    let hold = neighbor_detail(&agent, "leaf1")?["hold_time"].as_u64();
    ensure!(hold == Some(9), "negotiated hold time 9 s: {hold:?}");

    // FRR's namespace goes silent: nothing in or out, so no keepalive and no FIN.
    leaf.exec(
        "nft",
        &["add table inet blackhole; \
             add chain inet blackhole in { type filter hook input priority 0; policy drop; }; \
             add chain inet blackhole out { type filter hook output priority 0; policy drop; }"],
    )?;
    let mut summary = Value::Null;
    wait_until(TIMEOUT, POLL, || {
        summary = agent.neighbor("leaf1")?;
        Ok(summary["state"] != "Established")
    })
    .context("session still up through the black hole")?;
    ensure!(
        summary["last_error"] == "sent NOTIFICATION Hold Timer Expired/Unspecific",
        "we sent Hold Timer Expired (4/0): {summary}"
    );
    Ok(())
}

#[test]
fn bad_peer_as_sends_open_error_2_2() -> Result<()> {
    let (node, leaf) = pair()?;
    // FRR speaks as AS 65009; we expect 65001.
    let frr = Frr::start(&leaf, &frr_config(65009))?;
    let agent = Agent::start(&node, &node_config(LEAF1_PEER))?;
    let n = wait_notification(&frr, &agent, 2)?;
    ensure!(
        (n.code, n.subcode) == (2, 2),
        "expected OPEN Message Error/Bad Peer AS (2/2): {n:?}"
    );
    never_established(Duration::from_secs(3), || {
        Ok((
            agent.neighbor_state("leaf1")?,
            frr.neighbor_state("192.0.2.11")?,
        ))
    })?;
    let summary = agent.neighbor("leaf1")?;
    ensure!(
        summary["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("Bad Peer AS")),
        "last error: {summary}"
    );
    Ok(())
}

#[test]
fn admin_shutdown_and_bad_peer_as_seen_by_bird() -> Result<()> {
    let (node, leaf) = pair()?;
    let bird = Bird::start(&leaf, &bird_config(&["100.64.7.0/24"], ""))?;
    let agent = Agent::start(&node, &node_config(&bird_peer("")))?;
    agent.wait_established("leaf2", TIMEOUT)?;
    bird.wait_established("node", TIMEOUT)?;

    agent.table(&["neighbor", "disable", "leaf2", "--message", "maintenance"])?;
    // BIRD logs the shutdown communication (RFC 9003) with the Cease subcode.
    wait_until(TIMEOUT, POLL, || {
        Ok(bird
            .log()?
            .contains(r#"node: Received: Administrative shutdown: "maintenance""#))
    })
    .with_context(|| {
        format!(
            "BIRD should have received Cease/Administrative Shutdown with our message:\n{}",
            bird.log().unwrap_or_default()
        )
    })?;
    let mut last = String::new();
    ensure!(
        agent.neighbor_state("leaf2")? == "Disabled",
        "stays down: {}",
        agent.neighbor("leaf2")?
    );

    // BIRD turns into AS 65009, which we do not expect: OPEN Message Error/Bad Peer AS.
    bird.configure(&bird_config(&["100.64.7.0/24"], "").replace("as 65002", "as 65009"))?;
    agent.table(&["neighbor", "enable", "leaf2"])?;
    wait_until(TIMEOUT, POLL, || {
        last = bird_last_error(&bird, "node")?;
        Ok(last.contains("Bad peer AS"))
    })
    .with_context(|| {
        format!(
            "BIRD should have received Bad Peer AS: {last:?}\ndaemon log:\n{}",
            agent.log()
        )
    })?;
    ensure!(
        agent.neighbor("leaf2")?["last_error"]
            .as_str()
            .is_some_and(|e| e == "sent NOTIFICATION OPEN Message Error/Bad Peer AS"),
        "{}",
        agent.neighbor("leaf2")?
    );
    Ok(())
}
