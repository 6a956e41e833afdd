//! BFD (RFC 5880, RFC 5881) against a real peer: our `BfdManager` in one namespace, FRR's
//! bfdd (or a second `BfdManager`) in another, joined by a veth, over IPv4 and IPv6 at
//! 100 ms x 3. Each test brings the sessions Up (checked on both sides), black-holes the
//! path with nft in the peer's namespace (both directions, so neither side hears the
//! other), waits for our Down event (Control Detection Time Expired), mends the path and
//! waits for Up again.
//!
//! Detection times are printed (`--nocapture`): from the moment the drop rule is in
//! place to our Down event, so they include the part of a detection time already run.
//! The only bound asserted is a generous 5 s, to keep the wait finite.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    num::NonZeroU32,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use bgp_ctl::bfd::{
    BfdEvent, BfdHandle, BfdManager, BfdState, ControlPacket, Diagnostic, Local, SessionConfig,
    SessionInfo, State,
};
use lab::{
    Netns,
    frr::{Frr, FrrOptions},
    wait_until,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

const OURS_V4: &str = "10.0.0.1";
const PEER_V4: &str = "10.0.0.2";
const OURS_V6: &str = "fd00::1";
const PEER_V6: &str = "fd00::2";
const OURS_DEV: &str = "bfd-a";
const PEER_DEV: &str = "bfd-b";
/// The fabric's timers.
const INTERVAL: Duration = Duration::from_millis(100);
const MULTIPLIER: u8 = 3;
/// Up takes a slow-rate (1 s) handshake; generous for a shared machine.
const UP_TIMEOUT: Duration = Duration::from_secs(30);
/// The bound on detection asserted (it should be ~300 ms).
const DETECT_BOUND: Duration = Duration::from_secs(5);
const NFT_TABLE: &str = "bfdtest";

fn addr(s: &str) -> IpAddr {
    s.parse().expect("test constant")
}

/// Our BfdManager on a tokio runtime of its own, on a thread inside a namespace (the
/// manager opens its sockets there). Stopped on drop.
struct Agent {
    handle: BfdHandle,
    /// A current-thread runtime for the test's own awaits (the manager runs elsewhere).
    rt: tokio::runtime::Runtime,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Agent {
    fn start(ns: &Netns) -> Result<Self> {
        let path = format!("/run/netns/{}", ns.name());
        let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on this thread only, with a valid namespace fd.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let _ = handle_tx.send(Err(anyhow!("setns: {}", std::io::Error::last_os_error())));
                return;
            }
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = handle_tx.send(Err(anyhow!("tokio runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let _ = handle_tx.send(BfdManager::spawn().map_err(anyhow::Error::from));
                let _ = stop_rx.await;
            });
        });
        let handle = handle_rx
            .recv()
            .map_err(|_| anyhow!("the agent thread died"))??;
        Ok(Self {
            handle,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn add(&self, peer: &str, local: &str, ifindex: u32) -> Result<()> {
        let local = Local::on_interface(
            addr(local),
            NonZeroU32::new(ifindex).ok_or_else(|| anyhow!("ifindex 0"))?,
        );
        let config = SessionConfig::symmetric(INTERVAL, MULTIPLIER);
        self.rt
            .block_on(self.handle.add_session(addr(peer), local, config))?;
        Ok(())
    }

    fn sessions(&self) -> Result<Vec<SessionInfo>> {
        Ok(self.rt.block_on(self.handle.sessions())?)
    }

    fn session(&self, peer: &str) -> Result<SessionInfo> {
        self.sessions()?
            .into_iter()
            .find(|s| s.key.peer == addr(peer))
            .ok_or_else(|| anyhow!("no session to {peer}"))
    }

    /// The next event, or an error after `timeout`.
    fn next_event(
        &self,
        events: &mut mpsc::UnboundedReceiver<BfdEvent>,
        timeout: Duration,
    ) -> Result<BfdEvent> {
        self.rt
            .block_on(async { tokio::time::timeout(timeout, events.recv()).await })
            .map_err(|_| anyhow!("no BFD event within {timeout:?}"))?
            .ok_or_else(|| anyhow!("the BFD manager stopped"))
    }

    /// Waits for `state` events from every peer of `peers` (in any order, other events
    /// in between are skipped); returns each event with when it arrived.
    fn wait_state(
        &self,
        events: &mut mpsc::UnboundedReceiver<BfdEvent>,
        peers: &[&str],
        state: BfdState,
        timeout: Duration,
    ) -> Result<Vec<(BfdEvent, Instant)>> {
        let deadline = Instant::now() + timeout;
        let mut got: Vec<(BfdEvent, Instant)> = Vec::new();
        while got.len() < peers.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self
                .next_event(events, left)
                .with_context(|| format!("waiting for {state:?} from {peers:?}, got {got:?}"))?;
            let at = Instant::now();
            if event.state == state
                && peers.iter().any(|p| addr(p) == event.peer)
                && !got.iter().any(|(e, _)| e.peer == event.peer)
            {
                got.push((event, at));
            }
        }
        Ok(got)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Two namespaces joined by a veth with IPv4 and IPv6 on both ends.
struct Link {
    ours: Netns,
    peer: Netns,
    ours_ifindex: u32,
}

fn link() -> Result<Link> {
    lab::require_root()?;
    lab::sweep_stale();
    let (ours, peer) = (Netns::new()?, Netns::new()?);
    lab::veth(&ours, OURS_DEV, &peer, PEER_DEV)?;
    for (ns, dev, v4, v6) in [
        (&ours, OURS_DEV, OURS_V4, OURS_V6),
        (&peer, PEER_DEV, PEER_V4, PEER_V6),
    ] {
        ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", dev])?;
        ns.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{v6}/64"),
            "dev",
            dev,
            "nodad",
        ])?;
    }
    let ours_ifindex = ours.link(OURS_DEV)?.ifindex;
    Ok(Link {
        ours,
        peer,
        ours_ifindex,
    })
}

/// Drops every BFD Control packet in and out of `ns` (UDP port 3784 either way).
fn black_hole(ns: &Netns) -> Result<()> {
    ns.exec(
        "nft",
        &[&format!(
            "add table inet {NFT_TABLE}; \
             add chain inet {NFT_TABLE} in {{ type filter hook input priority 0; policy accept; }}; \
             add chain inet {NFT_TABLE} out {{ type filter hook output priority 0; policy accept; }}; \
             add rule inet {NFT_TABLE} in udp dport 3784 drop; \
             add rule inet {NFT_TABLE} out udp dport 3784 drop"
        )],
    )
    .map(drop)
}

fn mend(ns: &Netns) -> Result<()> {
    ns.exec("nft", &["delete", "table", "inet", NFT_TABLE])
        .map(drop)
}

/// FRR's view of its session to `peer`, from `show bfd peers json`.
fn frr_peer(frr: &Frr, peer: &str) -> Result<Value> {
    let json = frr.bfdd_json("show bfd peers json")?;
    json.as_array()
        .and_then(|peers| {
            peers.iter().find(|p| {
                p.get("peer")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    == Some(addr(peer))
            })
        })
        .cloned()
        .ok_or_else(|| anyhow!("FRR has no BFD peer {peer}: {json}"))
}

fn frr_status(frr: &Frr, peer: &str) -> Result<String> {
    frr_peer(frr, peer)?
        .get("status")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no status for FRR's BFD peer {peer}"))
}

fn wait_frr_status(frr: &Frr, peer: &str, want: &str) -> Result<Duration> {
    let mut last = String::new();
    wait_until(UP_TIMEOUT, Duration::from_millis(50), || {
        last = frr_status(frr, peer)?;
        Ok(last == want)
    })
    .with_context(|| {
        format!(
            "FRR's BFD peer {peer} is {last}, not {want}; bfdd log tail:\n{}",
            log_tail(frr)
        )
    })
}

fn log_tail(frr: &Frr) -> String {
    let log = frr.bfdd_log().unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Checks a session of ours is Up at the fabric's rate with the Poll done.
fn check_ours_fast(agent: &Agent, peer: &str) -> Result<()> {
    let s = agent.session(peer)?;
    ensure!(s.status.state == State::Up, "{peer}: {s:?}");
    // The Poll that switched to 100 ms completes within a round trip or two.
    wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        let s = agent.session(peer)?;
        Ok(!s.status.polling && s.status.transmit_interval == INTERVAL)
    })
    .with_context(|| {
        format!(
            "{peer} never settled at {INTERVAL:?}: {:?}",
            agent.session(peer)
        )
    })?;
    let s = agent.session(peer)?;
    ensure!(
        s.status.detection_time == Some(INTERVAL * u32::from(MULTIPLIER)),
        "{peer}: detection time {:?}",
        s.status.detection_time
    );
    ensure!(s.status.remote_multiplier == MULTIPLIER, "{s:?}");
    ensure!(
        (49152..=65535).contains(&s.source_port),
        "source port {}",
        s.source_port
    );
    Ok(())
}

/// Black-holes the path in `peer_ns`, waits for our Down events from `peers`, prints
/// and checks them; returns the detection times.
fn measure_detection(
    agent: &Agent,
    events: &mut mpsc::UnboundedReceiver<BfdEvent>,
    peer_ns: &Netns,
    peers: &[&str],
    label: &str,
) -> Result<Vec<Duration>> {
    black_hole(peer_ns)?;
    let t0 = Instant::now();
    let downs = agent.wait_state(events, peers, BfdState::Down, DETECT_BOUND)?;
    let mut out = Vec::new();
    for (event, at) in downs {
        let took = at - t0;
        println!(
            "detection [{label}] {} -> {}: Down after {:.0} ms ({})",
            event.local.addr,
            event.peer,
            took.as_secs_f64() * 1000.0,
            event.diag
        );
        ensure!(
            event.diag == Diagnostic::ControlDetectionTimeExpired && !event.peer_admin_down,
            "{event:?}"
        );
        ensure!(took < DETECT_BOUND, "{label}: {took:?}");
        out.push(took);
    }
    Ok(out)
}

fn frr_interop(family_peers: &[(&str, &str)], label: &str) -> Result<()> {
    let link = link()?;
    let options = FrrOptions {
        bfdd: true,
        ..FrrOptions::default()
    };
    let frr = Frr::start_with(&link.peer, "hostname frr\n", options)?;
    let mut lines = vec!["bfd".to_owned()];
    for (ours, peer) in family_peers {
        lines.extend([
            format!("peer {ours} local-address {peer} interface {PEER_DEV}"),
            "receive-interval 100".into(),
            "transmit-interval 100".into(),
            "detect-multiplier 3".into(),
            "no shutdown".into(),
            "exit".into(),
        ]);
    }
    lines.push("exit".into());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    frr.configure_bfdd(&lines)?;

    let agent = Agent::start(&link.ours)?;
    let mut events = agent.handle.subscribe();
    let t = Instant::now();
    for (ours, peer) in family_peers {
        agent.add(peer, ours, link.ours_ifindex)?;
    }
    let peers: Vec<&str> = family_peers.iter().map(|(_, p)| *p).collect();
    agent
        .wait_state(&mut events, &peers, BfdState::Up, UP_TIMEOUT)
        .with_context(|| format!("bfdd log tail:\n{}", log_tail(&frr)))?;
    println!(
        "up [{label}]: our sessions Up after {:.2} s",
        t.elapsed().as_secs_f64()
    );
    for (ours, peer) in family_peers {
        wait_frr_status(&frr, ours, "up")?;
        check_ours_fast(&agent, peer)?;
        let f = frr_peer(&frr, ours)?;
        println!("FRR's view of {ours}: {f}");
        // FRR heard our 100 ms x 3 (its JSON counts milliseconds).
        for (field, want) in [
            ("remote-receive-interval", 100),
            ("remote-transmit-interval", 100),
            ("remote-detect-multiplier", 3),
        ] {
            ensure!(
                f.get(field).and_then(Value::as_u64) == Some(want),
                "FRR's {field} for {ours} is not {want}: {f}"
            );
        }
        let ours_discr = agent.session(peer)?.status.local_discriminator;
        ensure!(
            f.get("remote-id").and_then(Value::as_u64) == Some(u64::from(ours_discr)),
            "FRR's remote-id is not our discriminator {ours_discr}: {f}"
        );
    }
    // Stays Up at the fast rate (no flap) for a second.
    std::thread::sleep(Duration::from_secs(1));
    if let Ok(e) = events.try_recv() {
        bail!("unexpected event while steady: {e:?}");
    }

    for round in 1..=2 {
        measure_detection(
            &agent,
            &mut events,
            &link.peer,
            &peers,
            &format!("{label}, ours <- FRR, round {round}"),
        )?;
        for (ours, _) in family_peers {
            wait_frr_status(&frr, ours, "down")?;
            let f = frr_peer(&frr, ours)?;
            ensure!(
                f.get("diagnostic").and_then(Value::as_str)
                    == Some("control detection time expired"),
                "FRR's diagnostic: {f}"
            );
        }
        mend(&link.peer)?;
        let t = Instant::now();
        agent.wait_state(&mut events, &peers, BfdState::Up, UP_TIMEOUT)?;
        println!(
            "up again [{label}, round {round}] after {:.2} s",
            t.elapsed().as_secs_f64()
        );
        for (ours, peer) in family_peers {
            wait_frr_status(&frr, ours, "up")?;
            check_ours_fast(&agent, peer)?;
        }
    }

    // FRR taking its end administratively down: we go Down, told it is not a failure.
    frr.configure_bfdd(&[
        "bfd",
        &format!(
            "peer {} local-address {} interface {PEER_DEV}",
            family_peers[0].0, family_peers[0].1
        ),
        "shutdown",
    ])?;
    let (event, _) = agent
        .wait_state(
            &mut events,
            &[family_peers[0].1],
            BfdState::Down,
            DETECT_BOUND,
        )?
        .remove(0);
    ensure!(
        event.diag == Diagnostic::NeighborSignaledSessionDown && event.peer_admin_down,
        "{event:?}"
    );
    Ok(())
}

#[test]
fn frr_bfdd_interop_ipv4() -> Result<()> {
    frr_interop(&[(OURS_V4, PEER_V4)], "IPv4")
}

#[test]
fn frr_bfdd_interop_ipv6() -> Result<()> {
    frr_interop(&[(OURS_V6, PEER_V6)], "IPv6")
}

/// Our manager against itself: IPv4 and IPv6 sessions at once, detection on both sides,
/// and a removed session telling the other side AdminDown.
#[test]
fn our_manager_against_itself() -> Result<()> {
    let link = link()?;
    let peer_ifindex = link.peer.link(PEER_DEV)?.ifindex;
    let a = Agent::start(&link.ours)?;
    let b = Agent::start(&link.peer)?;
    let (mut ea, mut eb) = (a.handle.subscribe(), b.handle.subscribe());
    let t = Instant::now();
    for (ours, peer) in [(OURS_V4, PEER_V4), (OURS_V6, PEER_V6)] {
        a.add(peer, ours, link.ours_ifindex)?;
        b.add(ours, peer, peer_ifindex)?;
    }
    a.wait_state(&mut ea, &[PEER_V4, PEER_V6], BfdState::Up, UP_TIMEOUT)?;
    b.wait_state(&mut eb, &[OURS_V4, OURS_V6], BfdState::Up, UP_TIMEOUT)?;
    println!("up [self]: after {:.2} s", t.elapsed().as_secs_f64());
    for peer in [PEER_V4, PEER_V6] {
        check_ours_fast(&a, peer)?;
    }
    for peer in [OURS_V4, OURS_V6] {
        check_ours_fast(&b, peer)?;
    }

    // Black hole in b's namespace: both sides detect it.
    black_hole(&link.peer)?;
    let t0 = Instant::now();
    let downs_a = a.wait_state(&mut ea, &[PEER_V4, PEER_V6], BfdState::Down, DETECT_BOUND)?;
    let downs_b = b.wait_state(&mut eb, &[OURS_V4, OURS_V6], BfdState::Down, DETECT_BOUND)?;
    for (side, downs) in [("a", downs_a), ("b", downs_b)] {
        for (e, at) in downs {
            println!(
                "detection [self, side {side}] {} -> {}: Down after {:.0} ms ({})",
                e.local.addr,
                e.peer,
                (at - t0).as_secs_f64() * 1000.0,
                e.diag
            );
            ensure!(e.diag == Diagnostic::ControlDetectionTimeExpired, "{e:?}");
        }
    }
    mend(&link.peer)?;
    a.wait_state(&mut ea, &[PEER_V4, PEER_V6], BfdState::Up, UP_TIMEOUT)?;
    b.wait_state(&mut eb, &[OURS_V4, OURS_V6], BfdState::Up, UP_TIMEOUT)?;

    // b removes its IPv4 session: a hears AdminDown at once (no detection time).
    let t0 = Instant::now();
    let removed = b.rt.block_on(b.handle.remove_session(
        addr(OURS_V4),
        Local::on_interface(
            addr(PEER_V4),
            NonZeroU32::new(peer_ifindex).ok_or_else(|| anyhow!("ifindex 0"))?,
        ),
    ))?;
    ensure!(removed, "b had no IPv4 session to remove");
    let (e, at) = a
        .wait_state(&mut ea, &[PEER_V4], BfdState::Down, DETECT_BOUND)?
        .remove(0);
    println!(
        "admin down [self]: a saw it after {:.1} ms",
        (at - t0).as_secs_f64() * 1000.0
    );
    ensure!(
        e.diag == Diagnostic::NeighborSignaledSessionDown && e.peer_admin_down,
        "{e:?}"
    );
    ensure!(
        b.sessions()?.iter().all(|s| s.key.peer != addr(OURS_V4)),
        "b still lists the removed session"
    );
    // The IPv6 session was not disturbed.
    ensure!(a.session(PEER_V6)?.status.state == State::Up);
    Ok(())
}

/// RFC 5881 section 5 (GTSM): a packet with a TTL or Hop Limit below 255 is dropped
/// before it reaches a session; the same packet with 255 is taken. Garbage is counted,
/// not a panic.
#[test]
fn packets_without_ttl_255_are_dropped() -> Result<()> {
    let link = link()?;
    let agent = Agent::start(&link.ours)?;
    for (ours, peer) in [(OURS_V4, PEER_V4), (OURS_V6, PEER_V6)] {
        agent.add(peer, ours, link.ours_ifindex)?;
    }
    let packet = ControlPacket {
        diag: Diagnostic::NoDiagnostic,
        state: State::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x5eed,
        your_discriminator: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 100_000,
        required_min_echo_rx_us: 0,
        auth: None,
    }
    .to_bytes();
    // Sends `payload` from `peer` to `ours`:3784 with hop limit `ttl`, from inside the
    // peer's namespace.
    let send = |peer: &str, ours: &str, ttl: u32, payload: &[u8]| -> Result<()> {
        link.peer.enter(|| -> Result<()> {
            let sock = UdpSocket::bind(SocketAddr::new(addr(peer), 49200))?;
            if addr(peer).is_ipv4() {
                sock.set_ttl(ttl)?;
            } else {
                socket2::SockRef::from(&sock).set_unicast_hops_v6(ttl)?;
            }
            sock.send_to(payload, SocketAddr::new(addr(ours), 3784))?;
            Ok(())
        })?
    };
    let drops = || agent.rt.block_on(agent.handle.drops());
    for (ours, peer) in [(OURS_V4, PEER_V4), (OURS_V6, PEER_V6)] {
        let before = drops()?;
        send(peer, ours, 64, &packet)?;
        wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            Ok(drops()?.hop_limit == before.hop_limit + 1)
        })
        .with_context(|| format!("TTL 64 from {peer} not counted: {:?}", drops()))?;
        let s = agent.session(peer)?;
        ensure!(
            s.status.state == State::Down && s.counters.received == 0,
            "a TTL 64 packet reached the session: {s:?}"
        );
        send(peer, ours, 255, &packet)?;
        wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            Ok(agent.session(peer)?.status.state == State::Init)
        })
        .with_context(|| format!("TTL 255 from {peer} not taken: {:?}", agent.session(peer)))?;
        ensure!(agent.session(peer)?.status.remote_discriminator == 0x5eed);
        send(peer, ours, 255, b"\x20\x40\x03")?;
        wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            Ok(drops()?.malformed == before.malformed + 1)
        })
        .with_context(|| format!("garbage from {peer} not counted: {:?}", drops()))?;
        ensure!(drops()?.hop_limit == before.hop_limit + 1);
    }
    Ok(())
}

#[test]
fn bad_sessions_are_refused_with_a_reason() -> Result<()> {
    let link = link()?;
    let agent = Agent::start(&link.ours)?;
    let config = SessionConfig::symmetric(INTERVAL, MULTIPLIER);
    let add = |peer: &str, local: Local, config| {
        agent
            .rt
            .block_on(agent.handle.add_session(addr(peer), local, config))
    };
    let e = add(PEER_V6, Local::from(addr(OURS_V4)), config).unwrap_err();
    ensure!(e.to_string().contains("different families"), "{e}");
    let e = add("fe80::2", Local::from(addr("fe80::1")), config).unwrap_err();
    ensure!(e.to_string().contains("link-local"), "{e}");
    let e = add(
        PEER_V4,
        Local::from(addr(OURS_V4)),
        SessionConfig::symmetric(INTERVAL, 0),
    )
    .unwrap_err();
    ensure!(e.to_string().contains("multiplier"), "{e}");
    // An address this namespace does not have cannot be bound.
    let e = add(PEER_V4, Local::from(addr("10.9.9.9")), config).unwrap_err();
    ensure!(e.to_string().contains("socket"), "{e}");
    ensure!(agent.sessions()?.is_empty());
    // Adding twice updates the timers of the one session.
    add(PEER_V4, Local::from(addr(OURS_V4)), config)?;
    add(
        PEER_V4,
        Local::from(addr(OURS_V4)),
        SessionConfig::symmetric(Duration::from_millis(300), 5),
    )?;
    let sessions = agent.sessions()?;
    ensure!(sessions.len() == 1, "{sessions:?}");
    ensure!(sessions[0].config.multiplier == 5, "{sessions:?}");
    if sessions[0].status.state != State::Down {
        bail!("no peer, yet {:?}", sessions[0].status.state);
    }
    Ok(())
}
