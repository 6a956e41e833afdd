//! Transport security of our BGP sessions, between network namespaces, two of our own
//! sessions against each other (each namespace runs its session and its listener on
//! port 179 in a runtime on a thread inside the namespace):
//! - TCP MD5 (RFC 2385): matching passwords establish; a wrong or missing password gives
//!   no session, and the kernel's MD5 counters show it dropped the segments.
//! - GTSM (RFC 5082): across a router (one TTL decrement) a session with TTL security of
//!   1 hop is refused, and establishes with 2 hops.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use anyhow::{Context, Result};
use bgp_ctl::bgp::fsm::State;
use bgp_ctl::bgp::{
    Listener, LocalInfo, PeerConfig, RemoteAs, Session, SessionEvent, StatsSnapshot, TimerConfig,
};
use bgp_wire::{CeaseSubcode, NotificationCode};
use lab::Netns;
use tokio::{sync::mpsc, time::Instant};

/// What one side saw during its window.
#[derive(Debug)]
struct Outcome {
    established: bool,
    downs: u32,
    stats: StatsSnapshot,
}

fn config(remote: &str, remote_as: u32) -> PeerConfig {
    let mut c = PeerConfig::new(remote.parse().unwrap(), RemoteAs::Exact(remote_as));
    c.timers = TimerConfig {
        hold_time: 3,
        keepalive: 1,
        connect_retry: Duration::from_secs(1),
        idle_hold: Duration::from_secs(1),
        ..TimerConfig::default()
    };
    c
}

/// Runs a listener on `listen` and a session for `peer` inside `ns` until `end`.
fn run_side(
    ns: &Netns,
    listen: &str,
    local: LocalInfo,
    peer: PeerConfig,
    ready: &AtomicUsize,
    end: Instant,
) -> Result<Outcome> {
    let listen: SocketAddr = listen.parse()?;
    ns.enter(move || -> Result<Outcome> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let listener = Listener::bind(&[listen])?;
            let (tx, mut events) = mpsc::channel(64);
            let (addr, md5) = (peer.remote_addr, peer.md5_password.clone());
            // Disabled until both sides listen with their keys: a signed SYN that found
            // the other side without its key yet would count as a refused segment.
            let handle = Session::spawn(peer, local, tx, false)?;
            listener.add_peer(addr, md5.as_deref(), handle.incoming())?;
            ready.fetch_add(1, Ordering::SeqCst);
            // Bounded: a side that failed to set up never arrives.
            let give_up = Instant::now() + Duration::from_secs(10);
            while ready.load(Ordering::SeqCst) < 2 && Instant::now() < give_up {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            handle.enable().await?;
            let mut outcome = Outcome {
                established: false,
                downs: 0,
                stats: handle.stats(),
            };
            while let Ok(Some(e)) = tokio::time::timeout_at(end, events.recv()).await {
                match e {
                    SessionEvent::Established { .. } => outcome.established = true,
                    SessionEvent::Down { .. } => outcome.downs += 1,
                    _ => {}
                }
            }
            outcome.stats = handle.stats();
            handle.shutdown().await;
            Ok(outcome)
        })
    })?
}

/// Both sides at once.
fn run_pair(
    a: (&Netns, &str, LocalInfo, PeerConfig),
    b: (&Netns, &str, LocalInfo, PeerConfig),
    window: Duration,
) -> Result<(Outcome, Outcome)> {
    // One deadline for both: a side that stopped first would shut its session down
    // (Cease) while the other still counts.
    let end = Instant::now() + window;
    let ready = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let ta = s.spawn(|| run_side(a.0, a.1, a.2, a.3, &ready, end));
        let tb = s.spawn(|| run_side(b.0, b.1, b.2, b.3, &ready, end));
        let ra = ta.join().map_err(|_| anyhow::anyhow!("side A panicked"))?;
        let rb = tb.join().map_err(|_| anyhow::anyhow!("side B panicked"))?;
        Ok((ra.context("side A")?, rb.context("side B")?))
    })
}

fn local(asn: u32, id: [u8; 4]) -> LocalInfo {
    LocalInfo {
        asn,
        router_id: id.into(),
    }
}

/// a (10.0.0.1) --veth-- b (10.0.0.2)
fn link_pair() -> Result<(Netns, Netns)> {
    lab::require_root()?;
    lab::sweep_stale();
    let (a, b) = (Netns::new()?, Netns::new()?);
    lab::veth(&a, "va", &b, "vb")?;
    a.ip(&["addr", "add", "10.0.0.1/24", "dev", "va"])?;
    b.ip(&["addr", "add", "10.0.0.2/24", "dev", "vb"])?;
    Ok((a, b))
}

/// The kernel's counters of refused MD5 segments in a namespace: TCPMD5NotFound,
/// TCPMD5Unexpected, TCPMD5Failure.
fn md5_drops(ns: &Netns) -> Result<u64> {
    let netstat = ns.exec("cat", &["/proc/net/netstat"])?;
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (
        lines.next().context("no TcpExt header")?,
        lines.next().context("no TcpExt values")?,
    );
    Ok(names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter(|(n, _)| matches!(*n, "TCPMD5NotFound" | "TCPMD5Unexpected" | "TCPMD5Failure"))
        .map(|(_, v)| v.parse::<u64>().unwrap_or(0))
        .sum())
}

fn md5_case(
    key_a: Option<&str>,
    key_b: Option<&str>,
    window: Duration,
) -> Result<(Outcome, Outcome, u64)> {
    let (a, b) = link_pair()?;
    let mut ca = config("10.0.0.2", 65002);
    ca.md5_password = key_a.map(str::to_owned);
    let mut cb = config("10.0.0.1", 65001);
    cb.md5_password = key_b.map(str::to_owned);
    let (oa, ob) = run_pair(
        (&a, "10.0.0.1:179", local(65001, [10, 0, 0, 1]), ca),
        (&b, "10.0.0.2:179", local(65002, [10, 0, 0, 2]), cb),
        window,
    )?;
    let drops = md5_drops(&a)? + md5_drops(&b)?;
    Ok((oa, ob, drops))
}

#[test]
fn md5_with_matching_passwords_establishes() -> Result<()> {
    let (a, b, drops) = md5_case(
        Some("s3cret-key"),
        Some("s3cret-key"),
        Duration::from_secs(6),
    )?;
    assert!(a.established && b.established, "A: {a:?}\nB: {b:?}");
    // Up at the end, and never down but by a connection collision: both sides connect,
    // and RFC 4271 6.8 may close a connection the other side has just seen Established
    // (the resolving side still had it in OpenConfirm); the session lives on the other.
    for (side, o) in [("A", &a), ("B", &b)] {
        assert_eq!(o.stats.state, State::Established, "{side}: {o:?}");
        let by_collision = o.stats.last_error.as_ref().is_some_and(|e| {
            e.code
                == Some(NotificationCode::Cease(
                    CeaseSubcode::ConnectionCollisionResolution,
                ))
        });
        assert!(
            o.downs == 0 || (o.downs == 1 && by_collision),
            "{side} went down: {o:?}"
        );
    }
    assert_eq!(drops, 0, "the kernel refused signed segments");
    Ok(())
}

#[test]
fn md5_with_a_wrong_password_gives_no_session() -> Result<()> {
    let (a, b, drops) = md5_case(
        Some("s3cret-key"),
        Some("wrong-key"),
        Duration::from_secs(8),
    )?;
    assert!(!a.established && !b.established, "A: {a:?}\nB: {b:?}");
    assert_eq!(a.stats.received.total() + b.stats.received.total(), 0);
    assert!(drops > 0, "the kernel should count the segments it dropped");
    Ok(())
}

#[test]
fn md5_on_one_side_only_gives_no_session() -> Result<()> {
    let (a, b, drops) = md5_case(Some("s3cret-key"), None, Duration::from_secs(8))?;
    assert!(!a.established && !b.established, "A: {a:?}\nB: {b:?}");
    assert!(drops > 0, "the kernel should count the segments it dropped");
    Ok(())
}

/// a (10.0.1.1) --- router --- b (10.0.2.1): every packet loses one TTL on the way.
/// A has TTL security `hops_a`; B sends with TTL 255 (multihop).
fn gtsm_case(hops_a: u8, window: Duration) -> Result<(Outcome, Outcome)> {
    lab::require_root()?;
    lab::sweep_stale();
    let (a, r, b) = (Netns::new()?, Netns::new()?, Netns::new()?);
    lab::veth(&a, "va", &r, "ra")?;
    lab::veth(&r, "rb", &b, "vb")?;
    a.ip(&["addr", "add", "10.0.1.1/24", "dev", "va"])?;
    r.ip(&["addr", "add", "10.0.1.254/24", "dev", "ra"])?;
    r.ip(&["addr", "add", "10.0.2.254/24", "dev", "rb"])?;
    b.ip(&["addr", "add", "10.0.2.1/24", "dev", "vb"])?;
    a.ip(&["route", "add", "default", "via", "10.0.1.254"])?;
    b.ip(&["route", "add", "default", "via", "10.0.2.254"])?;
    r.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
    // The path works (and ARP is resolved) before BGP starts.
    a.exec("ping", &["-c", "1", "-W", "2", "10.0.2.1"])?;
    let mut ca = config("10.0.2.1", 65002);
    ca.ttl_security = Some(hops_a);
    let mut cb = config("10.0.1.1", 65001);
    cb.ebgp_multihop = Some(255);
    run_pair(
        (&a, "10.0.1.1:179", local(65001, [10, 0, 1, 1]), ca),
        (&b, "10.0.2.1:179", local(65002, [10, 0, 2, 1]), cb),
        window,
    )
}

#[test]
fn gtsm_refuses_a_peer_two_hops_away_when_one_is_allowed() -> Result<()> {
    let (a, b) = gtsm_case(1, Duration::from_secs(8))?;
    assert!(!a.established && !b.established, "A: {a:?}\nB: {b:?}");
    assert_eq!(a.stats.received.total(), 0, "A read nothing from B: {a:?}");
    assert!(
        a.stats.gtsm_refused > 0,
        "B's connections must have been refused by the SYN TTL check: {a:?}"
    );
    Ok(())
}

#[test]
fn gtsm_accepts_the_same_peer_when_two_hops_are_allowed() -> Result<()> {
    let (a, b) = gtsm_case(2, Duration::from_secs(6))?;
    assert!(a.established && b.established, "A: {a:?}\nB: {b:?}");
    assert_eq!(a.stats.gtsm_refused, 0);
    Ok(())
}
