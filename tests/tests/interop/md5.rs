//! TCP MD5 (RFC 2385) with FRR: a wrong password never establishes, the matching one
//! does.

use super::*;

const WATCH: Duration = Duration::from_secs(10);

#[test]
fn md5_with_frr_wrong_password_fails_matching_one_establishes() -> Result<()> {
    let (node, leaf) = pair()?;
    let frr = Frr::start(
        &leaf,
        &frr_leaf(
            " neighbor 192.0.2.11 password not-the-secret\n\
             address-family ipv4 unicast\n  network 100.64.1.0/24\n exit-address-family\n",
        ),
    )?;
    let agent = Agent::start(
        &node,
        &node_config(
            r#"
[[peer]]
name = "leaf1"
address = "192.0.2.1"
remote-asn = 65001
password = "s3cret-Key"
import = "accept-all"
export = "accept-all"
families = ["ipv4-unicast"]
"#,
        ),
    )?;
    never_established(WATCH, || {
        Ok((
            agent.neighbor_state("leaf1")?,
            frr.neighbor_state("192.0.2.11")?,
        ))
    })
    .with_context(|| format!("wrong MD5 password; daemon log:\n{}", agent.log()))?;
    ensure!(
        !has_route(&agent, "100.64.1.0/24", "leaf1")?,
        "a route crossed a session with a wrong password"
    );

    frr.configure(&[
        "router bgp 65001",
        "neighbor 192.0.2.11 password s3cret-Key",
    ])?;
    agent.wait_established("leaf1", TIMEOUT)?;
    frr.wait_established("192.0.2.11", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        has_route(&agent, "100.64.1.0/24", "leaf1")
    })
    .context("route over the MD5 session")?;
    Ok(())
}

#[test]
fn md5_with_bird_wrong_password_fails_matching_one_establishes() -> Result<()> {
    let (node, leaf) = pair()?;
    let bird = Bird::start(
        &leaf,
        &bird_config(&["100.64.7.0/24"], r#"password "not-the-secret";"#),
    )?;
    let agent = Agent::start(
        &node,
        &node_config(&bird_peer(r#"password = "s3cret-Key""#)),
    )?;
    never_established(WATCH, || {
        Ok((agent.neighbor_state("leaf2")?, bird.protocol_state("node")?))
    })
    .with_context(|| format!("wrong MD5 password; daemon log:\n{}", agent.log()))?;

    bird.configure(&bird_config(
        &["100.64.7.0/24"],
        r#"password "s3cret-Key";"#,
    ))?;
    agent.wait_established("leaf2", TIMEOUT)?;
    bird.wait_established("node", TIMEOUT)?;
    wait_until(TIMEOUT, POLL, || {
        has_route(&agent, "100.64.7.0/24", "leaf2")
    })
    .context("route over the MD5 session with BIRD")?;
    Ok(())
}
