//! Max-prefix: FRR advertises 5 prefixes to a peer limited to 3; we close the session
//! with Cease / Maximum Number of Prefixes Reached (6/1, RFC 4486: data AFI, SAFI and
//! the limit; inside a Hard Reset, RFC 8538), drop its routes, and stay down (no
//! `restart-after`).

use super::*;

#[test]
fn max_prefix_exceeded_by_frr_tears_down_with_cease_6_1() -> Result<()> {
    let (node, leaf) = pair()?;
    let networks: String = (1..=5)
        .map(|i| format!("  network 100.64.{i}.0/24\n"))
        .collect();
    let frr = Frr::start(
        &leaf,
        &frr_leaf(&format!(
            "address-family ipv4 unicast\n{networks} exit-address-family\n"
        )),
    )?;
    let agent = Agent::start(
        &node,
        &node_config(&format!("{LEAF1_PEER}max-prefix = {{ limit = 3 }}\n")),
    )?;
    // FRR may also log a Cease/Connection Rejected (6/5) for a connection it opened while
    // we were still starting or already down: look for the teardown itself.
    let mut got = Vec::new();
    wait_until(TIMEOUT, POLL, || {
        got = frr.notifications_received("192.0.2.11")?;
        Ok(got.iter().any(|n| n.code == 6 && n.subcode != 5))
    })
    .with_context(|| {
        format!(
            "no teardown NOTIFICATION at FRR ({got:?}); daemon log:\n{}",
            agent.log()
        )
    })?;
    let n = got
        .iter()
        .find(|n| n.code == 6 && n.subcode != 5)
        .context("gone")?;
    ensure!(
        (n.code, n.subcode) == (6, 1),
        "expected Cease/Maximum Number of Prefixes Reached (6/1), FRR got {got:?}"
    );
    // Both sides advertise the graceful restart N-bit (ours always, FRR 8.4 by default),
    // so RFC 8538 5 has it go inside a Hard Reset (6/9): the peer must drop our routes.
    ensure!(
        n.hard_reset,
        "6/1 must come as a Hard Reset (RFC 8538): {n:?}"
    );
    // RFC 4486 4: AFI 1, SAFI 1, the limit 3. FRR prints `<len> bytes <hex>`; for a Hard
    // Reset FRR 8.4 prints the inner length with the start of the outer data (the inner
    // code and subcode first), so the limit's last octets are cut off there.
    let inner = "00 01 01 00 00 00 03";
    let outer = format!("06 01 {inner}");
    let hex = n
        .detail
        .strip_prefix("7 bytes ")
        .with_context(|| format!("7 octets of data expected: {n:?}"))?;
    ensure!(
        hex == inner || (n.hard_reset && hex.len() == inner.len() && outer.starts_with(hex)),
        "data should be AFI/SAFI/limit: {n:?}"
    );
    // We stay down and hold none of its routes.
    never_established(Duration::from_secs(3), || {
        Ok((
            agent.neighbor_state("leaf1")?,
            frr.neighbor_state("192.0.2.11")?,
        ))
    })?;
    let summary = agent.neighbor("leaf1")?;
    let last_error = summary["last_error"].as_str().unwrap_or_default();
    ensure!(
        last_error.contains("Maximum Number of Prefixes"),
        "last error should name the teardown: {summary}"
    );
    ensure!(
        !agent.routes()?.iter().any(|r| r["paths"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["from"] == "leaf1"))),
        "routes of the torn-down peer stay: {:#?}",
        agent.routes()
    );
    Ok(())
}

#[test]
fn max_prefix_exceeded_by_bird_tears_down_with_cease_6_1() -> Result<()> {
    let (node, leaf) = pair()?;
    let networks: Vec<String> = (1..=5).map(|i| format!("100.64.{i}.0/24")).collect();
    let networks: Vec<&str> = networks.iter().map(String::as_str).collect();
    let bird = Bird::start(&leaf, &bird_config(&networks, ""))?;
    let agent = Agent::start(
        &node,
        &node_config(&bird_peer("max-prefix = { limit = 3 }")),
    )?;
    // BIRD names the Cease subcode it received (the one inside a Hard Reset too).
    let mut last = String::new();
    wait_until(TIMEOUT, POLL, || {
        last = bird_last_error(&bird, "node")?;
        Ok(!last.is_empty())
    })
    .with_context(|| format!("no error at BIRD; daemon log:\n{}", agent.log()))?;
    ensure!(
        last.contains("Maximum number of prefixes reached"),
        "BIRD should have received Cease/Maximum Number of Prefixes Reached: {last:?}"
    );
    never_established(Duration::from_secs(3), || {
        Ok((agent.neighbor_state("leaf2")?, bird.protocol_state("node")?))
    })?;
    Ok(())
}
