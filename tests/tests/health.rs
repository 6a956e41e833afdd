//! Health of a running daemon, as operators and kubelet see it: `bgp-ctl health` (exit
//! code and one line) and the HTTP `/healthz`, `/readyz` and `/metrics` endpoints. Each
//! failing condition of the readiness table is produced for real (a peer that never
//! comes up, an uplink that disappears) and must be named; a stopped daemon is
//! "unreachable" with its own exit code.

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, ensure};
use lab::{Netns, agent::Agent, wait_until};

const HTTP: &str = "127.0.0.1:9179";

/// `bgp-ctl health`: exit code and stdout.
fn health(agent: &Agent) -> Result<(i32, String)> {
    let out = Command::new(agent.bin())
        .args(["health", "--socket"])
        .arg(agent.socket())
        .output()?;
    Ok((
        out.status.code().context("bgp-ctl health killed")?,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

/// GET `path` from the daemon's HTTP endpoints in `ns`: status and body.
fn get(ns: &Netns, path: &str) -> Result<(u16, String)> {
    let path = path.to_string();
    ns.enter(move || -> Result<(u16, String)> {
        let mut s = TcpStream::connect(HTTP)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: node\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let (head, body) = text.split_once("\r\n\r\n").context("no HTTP head")?;
        let status = head
            .split(' ')
            .nth(1)
            .context("no status")?
            .parse()
            .context("status")?;
        Ok((status, body.to_string()))
    })?
}

#[test]
fn every_failing_condition_is_named_by_the_cli_and_the_probes() -> Result<()> {
    lab::require_root()?;
    lab::require_bpffs()?;
    lab::sweep_stale();
    let (node, leaf) = (Netns::new()?, Netns::new()?);
    lab::veth(&node, "n0", &leaf, "l0")?;
    lab::veth(&node, "n1", &leaf, "l1")?;
    node.ip(&["addr", "add", "192.0.2.11/24", "dev", "n0"])?;
    node.ip(&["link", "set", "lo", "up"])?;
    // `ghost` is configured but nothing answers at its address.
    let config = format!(
        r#"
router-id = "192.0.2.11"
asn = 4200000001
[dataplane]
uplinks = ["n0", "n1"]
mode = "skb"
pin-dir = "@PINS@"
[api]
socket = "@SOCKET@"
[http]
listen = "{HTTP}"
[health]
peer-startup-grace = 2
[timers]
connect-retry = 1
[[peer]]
name = "ghost"
address = "192.0.2.99"
remote-asn = 65001
"#
    );
    let mut agent = Agent::start(&node, &config)?;

    // The peer outlives its startup grace: not ready, and the reason is named.
    wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        Ok(health(&agent)?.0 == 1)
    })
    .with_context(|| format!("health never turned not-ready; log:\n{}", agent.log()))?;
    let (code, line) = health(&agent)?;
    ensure!(code == 1, "exit code {code}: {line}");
    ensure!(
        line.starts_with("not ready: peer-not-established:ghost ("),
        "{line}"
    );
    ensure!(
        !line.contains("uplink"),
        "both uplinks are attached: {line}"
    );
    // The probes say the same (their snapshot is refreshed every 2 s).
    wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        Ok(get(&node, "/readyz")?.0 == 503)
    })?;
    let (status, body) = get(&node, "/readyz")?;
    ensure!(
        status == 503 && body.contains("peer-not-established:ghost"),
        "/readyz {status}: {body}"
    );
    let (status, body) = get(&node, "/healthz")?;
    ensure!(
        status == 200 && body.trim() == "live",
        "/healthz {status}: {body}"
    );
    let (status, metrics) = get(&node, "/metrics")?;
    ensure!(status == 200, "/metrics {status}: {metrics}");
    for sample in [
        "bgp_ctl_ready 0\n",
        "bgp_ctl_peer_established{peer=\"ghost\",address=\"192.0.2.99\",remote_asn=\"65001\"} 0\n",
        "bgp_ctl_xdp_attached{interface=\"n1\",mode=\"skb\"} 1\n",
        "bgp_ctl_xdp_packets_total{reason=\"rx\"} ",
    ] {
        ensure!(metrics.contains(sample), "no {sample:?} in\n{metrics}");
    }

    // Disabled on purpose: no longer required.
    agent.table(&["neighbor", "disable", "ghost"])?;
    let (code, line) = health(&agent)?;
    ensure!(code == 0, "exit code {code}: {line}");
    ensure!(
        line == "ready: config loaded, 2 uplinks attached, 0/0 peers established",
        "{line}"
    );

    // An uplink disappears (with it, the program's attachment): named as such.
    node.ip(&["link", "del", "n1"])?;
    let (code, line) = health(&agent)?;
    ensure!(code == 1, "exit code {code}: {line}");
    ensure!(
        line == "not ready: uplink-not-attached:n1 (XDP program not attached, want skb mode)",
        "{line}"
    );
    wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let (status, body) = get(&node, "/readyz")?;
        Ok(status == 503 && body.contains("uplink-not-attached:n1"))
    })?;

    // No daemon: its own exit code.
    agent.kill()?;
    let (code, line) = health(&agent)?;
    ensure!(code == 2, "exit code {code}: {line}");
    ensure!(line.starts_with("unreachable: "), "{line}");
    Ok(())
}
